"""Bad input through the `elysium` CLI (in process, `main(argv)`): each case's exit code and a phrase of its message.

Every case of issue #32's list is here: a clear one-line error (exit 2) instead of a traceback, a silently wrong
result made right or refused, and no code from a model folder run unless asked. Cases that are not one command
(temporary files, publishing order, frame times, tokenization) follow the table.
"""

from __future__ import annotations

import builtins
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from elysium.cli import UserError, main
from elysium.processing.video import write_video

WIDTH, HEIGHT, FPS = 64, 48, 10.0
EVIL_MARKER = "EVIL_CODE_RAN"


def moving_square(count: int, width: int = WIDTH, height: int = HEIGHT) -> list[np.ndarray]:
    frames = []
    for i in range(count):
        frame = np.zeros((height, width, 3), np.uint8)
        frame[10:20, 2 * i : 2 * i + 10] = 255
        frames.append(frame)
    return frames


def otb_sequence(root: Path, name: str, sizes: list[tuple[int, int]]) -> None:
    """An OTB-layout sequence, one frame per entry of `sizes` (w, h), a 10x10 square moving right."""
    (root / name / "img").mkdir(parents=True)
    for i, (width, height) in enumerate(sizes):
        Image.fromarray(moving_square(i + 1, width, height)[-1]).save(root / name / "img" / f"{i + 1:04d}.jpg")
    rows = [f"{2 * i},10,10,10" for i in range(len(sizes))]
    (root / name / "groundtruth_rect.txt").write_text("\n".join(rows) + "\n")


def evil_folder(base: Path, model_dir: Path) -> Path:
    """A model folder of an unknown type with an `auto_map`: loading it runs `evil.py`, which leaves a marker."""
    folder = base / "evil"
    shutil.copytree(model_dir, folder)
    config = json.loads((folder / "config.json").read_text())
    config.update(model_type="evil_net", auto_map={"AutoConfig": "evil.EvilConfig", "AutoModel": "evil.EvilModel"})
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "evil.py").write_text(
        f"from pathlib import Path\nPath(__file__).with_name({EVIL_MARKER!r}).write_text('ran')\n"
        "from transformers import PretrainedConfig\n"
        "class EvilConfig(PretrainedConfig):\n    model_type = 'evil_net'\n"
    )
    return folder


@pytest.fixture(scope="module")
def files(tmp_path_factory, model_dir) -> dict[str, Path]:
    return make_files(tmp_path_factory.mktemp("bad"), model_dir)


def make_files(tmp: Path, model_dir: Path) -> dict[str, Path]:
    """Every input the table needs, made once: videos, model folders, benchmarks, result and data files."""
    f: dict[str, Path] = {"tmp": tmp, "model": model_dir}
    f["video"] = tmp / "square.mp4"
    write_video(f["video"], moving_square(12), FPS)
    rng = np.random.default_rng(0)
    noise = tmp / "noise.mkv"
    write_video(noise, [rng.integers(0, 255, (HEIGHT, WIDTH, 3), dtype=np.uint8) for _ in range(30)], FPS)
    f["cut"] = tmp / "cut.mkv"
    f["cut"].write_bytes(noise.read_bytes()[: noise.stat().st_size // 2])
    f["a_file"] = tmp / "a_file.txt"
    f["a_file"].write_text("not a folder")

    f["evil"] = evil_folder(tmp, model_dir)
    for name, cut in (("empty_weights", 0), ("cut_weights", None)):
        folder = tmp / name
        shutil.copytree(model_dir, folder)
        weights = folder / "model.safetensors"
        data = weights.read_bytes()
        weights.write_bytes(data[: (len(data) // 2 if cut is None else cut)])
        f[name] = folder
    f["wrong_config"] = tmp / "wrong_config"
    shutil.copytree(model_dir, f["wrong_config"])
    config = json.loads((f["wrong_config"] / "config.json").read_text())
    config["text_config"]["intermediate_size"] = config["text_config"]["intermediate_size"] * 2
    (f["wrong_config"] / "config.json").write_text(json.dumps(config))
    f["fewer_layers"] = tmp / "fewer_layers"
    shutil.copytree(model_dir, f["fewer_layers"])
    config = json.loads((f["fewer_layers"] / "config.json").read_text())
    config["text_config"]["num_hidden_layers"] = 1  # the weights hold 2: a model with half of them unread
    (f["fewer_layers"] / "config.json").write_text(json.dumps(config))
    f["other_model"] = tmp / "other_model"
    shutil.copytree(model_dir, f["other_model"])  # same weights, another folder: results of "another model"

    f["otb"] = tmp / "otb"
    otb_sequence(f["otb"], "Square", [(WIDTH, HEIGHT)] * 6)
    f["otb_mixed"] = tmp / "otb_mixed"
    otb_sequence(f["otb_mixed"], "Mixed", [(WIDTH, HEIGHT), (WIDTH + 16, HEIGHT), (WIDTH, HEIGHT)])
    f["short_results"] = tmp / "short_results"
    f["short_results"].mkdir()
    (f["short_results"] / "Square.txt").write_text("0,10,10,10\n")  # 1 box for 6 frames
    f["long_results"] = tmp / "long_results"
    f["long_results"].mkdir()
    (f["long_results"] / "Square.txt").write_text("".join(f"{2 * i},10,10,10\n" for i in range(8)))
    f["bom_results"] = tmp / "bom_results"
    f["bom_results"].mkdir()
    (f["bom_results"] / "Square.txt").write_bytes(
        b"\xef\xbb\xbf" + "".join(f"{2 * i},10,10,10\n" for i in range(6)).encode()
    )

    f["empty_jsonl"] = tmp / "empty.jsonl"
    f["empty_jsonl"].write_text("")
    f["binary_jsonl"] = tmp / "binary.jsonl"
    f["binary_jsonl"].write_bytes(bytes(range(256)) * 8)
    frames_root = tmp / "frames_root"
    (frames_root / "frames" / "v").mkdir(parents=True)
    Image.fromarray(moving_square(1)[0]).save(frames_root / "frames" / "v" / "000000.jpg")
    f["frames_root"] = frames_root
    record = {
        "id": "r1",
        "vid": "v",
        "frames": ["../../etc/hostname", "frames/v/000000.jpg"],
        "box": [[0.1, 0.2, 0.3, 0.4]] * 2,
        "object_description": "a white square",
        "frame_size": [WIDTH, HEIGHT],
    }
    f["escape_jsonl"] = tmp / "escape.jsonl"
    f["escape_jsonl"].write_text(json.dumps(record) + "\n")
    return f


M = "--max-new-tokens"
NOWHERE = "/nonexistent/model"  # argument checks must fail before any model loads: this one would not load


def _cases() -> dict[str, tuple[Callable[[dict[str, Path]], list[str]], int, str]]:
    """name -> (argv from the files, expected exit code, a phrase of the output)."""

    def track(f: dict[str, Path], *extra: str, model: str | None = None) -> list[str]:
        out = ["--out", str(f["tmp"] / "track_out")] if "--out" not in extra else []
        return ["track", str(f["video"]), *extra, "--model", model or str(f["model"]), "--quiet", M, "8", *out]

    def describe(f: dict[str, Path], *extra: str, model: str | None = None) -> list[str]:
        return ["describe", str(f["video"]), "--box", "0,10,10,20", *extra, "--model", model or str(f["model"])]

    def score(f: dict[str, Path], results: str, *extra: str) -> list[str]:
        return ["score", "--results", str(f[results]), "--benchmark", "otb", "--root", str(f["otb"]), *extra]

    def evaluate(f: dict[str, Path], root: str, out: str, *extra: str, model: str = "model") -> list[str]:
        args = ["eval", "--benchmark", "otb", "--root", str(f[root]), "--out", str(f["tmp"] / out)]
        return [*args, "--model", str(f[model]), "--quiet", M, "8", *extra]

    return {
        # -- security: a model folder's code runs only when asked
        "remote code, track": (
            lambda f: track(f, "--box", "0,10,10,20", model=str(f["evil"])),
            2,
            "--trust-remote-code",
        ),
        "remote code, describe": (lambda f: describe(f, model=str(f["evil"])), 2, "needs its own code"),
        "remote code, eval": (lambda f: evaluate(f, "otb", "e_evil", model="evil"), 2, "--trust-remote-code"),
        # -- silently wrong before
        "score, 1 box for 6 frames": (lambda f: score(f, "short_results"), 2, "1 result boxes for 6 frames"),
        "score, 8 boxes for 6 frames": (lambda f: score(f, "long_results"), 2, "8 result boxes for 6 frames"),
        "score, missing frames as failures": (
            lambda f: score(f, "short_results", "--missing-as-failure"),
            0,
            "5 missing frames scored as failures (IoU 0)",
        ),
        "score, longer even with the flag": (
            lambda f: score(f, "long_results", "--missing-as-failure"),
            2,
            "one box per frame",
        ),
        "eval into another model's results": (
            lambda f: evaluate(f, "otb", "e_shared", model="other_model"),  # after "eval, first run" below
            2,
            "not reused",
        ),
        "describe, truncated video": (
            lambda f: ["describe", str(f["cut"]), "--box", "0,10,10,20", "--model", str(f["model"])],
            2,
            "--allow-truncated",
        ),
        "track, normalized box": (lambda f: track(f, "--box", "0.25,0.33,0.41,0.58"), 2, "looks normalized"),
        "describe, normalized box": (
            lambda f: ["describe", str(f["video"]), "--box", "0.25,0.33,0.41,0.58", "--model", NOWHERE],
            2,
            "looks normalized",
        ),
        "describe --frames 0": (lambda f: describe(f, "--frames", "0", model=NOWHERE), 2, "--frames must be >= 1"),
        "eval --batch-size 0": (
            lambda f: [*evaluate(f, "otb", "e_batch"), "--batch-size", "0", "--model", NOWHERE],
            2,
            "--batch-size must be >= 1",
        ),
        "eval, OTB frames of mixed sizes": (
            lambda f: evaluate(f, "otb_mixed", "e_mixed"),
            2,
            "resize its frames to one size",
        ),
        "data check, frame path leaves --frames-root": (
            lambda f: ["data", "check", str(f["escape_jsonl"]), "--frames-root", str(f["frames_root"])],
            1,
            '"frame_path_outside_root": 1',
        ),
        # -- tracebacks before
        "data check, missing file": (lambda f: ["data", "check", str(f["tmp"] / "none.jsonl")], 2, "no such file"),
        "data check, empty file": (lambda f: ["data", "check", str(f["empty_jsonl"])], 2, "is empty"),
        "data check, binary file": (lambda f: ["data", "check", str(f["binary_jsonl"])], 2, "not JSON lines"),
        "empty model.safetensors": (
            lambda f: track(f, "--box", "0,10,10,20", model=str(f["empty_weights"])),
            2,
            "copy or download the weights again",
        ),
        "truncated model.safetensors": (
            lambda f: describe(f, model=str(f["cut_weights"])),
            2,
            "copy or download the weights again",
        ),
        "config not matching its weights": (
            lambda f: describe(f, model=str(f["wrong_config"])),
            2,
            "does not match its weights",
        ),
        "config with fewer layers than its weights": (
            lambda f: describe(f, model=str(f["fewer_layers"])),
            2,
            "does not match its weights",
        ),
        "export, truncated model.safetensors": (
            lambda f: ["export", "--model", str(f["cut_weights"]), "--out", str(f["tmp"] / "export_cut")],
            2,
            "copy or download the weights again",
        ),
        "export, config not matching its weights": (
            lambda f: ["export", "--model", str(f["wrong_config"]), "--out", str(f["tmp"] / "export_wrong")],
            2,
            "does not match its weights",
        ),
        "<image> in an expression": (lambda f: track(f, "--expression", "the <image> square"), 0, "tracked 12"),
        "</s> in an expression": (lambda f: track(f, "--expression", "the </s> square"), 0, "tracked 12"),
        "<image> in a ground expression": (
            lambda f: [
                "ground",
                str(f["tmp"] / "frame.png"),
                "--expression",
                "<image></s><s>",
                "--model",
                str(f["model"]),
            ],
            None,  # 0 (a box) or 1 (no box in a random model's answer): either way, no traceback
            "",
        ),
        "non-UTF-8 expression": (
            lambda f: track(f, "--expression", b"the caf\xe9 sign".decode("utf-8", "surrogateescape")),
            2,
            "not valid UTF-8",
        ),
        "--clip-len 0": (lambda f: track(f, "--box", "0,10,10,20", "--clip-len", "0", model=NOWHERE), 2, "--clip-len"),
        "--clip-len 1": (lambda f: track(f, "--box", "0,10,10,20", "--clip-len", "1", model=NOWHERE), 2, ">= 2"),
        "--max-new-tokens 0": (
            lambda f: [*track(f, "--box", "0,10,10,20", model=NOWHERE), M, "0"],
            2,
            "--max-new-tokens must be >= 1",
        ),
        "eval --clip-len 1": (
            lambda f: [*evaluate(f, "otb", "e_clip"), "--clip-len", "1", "--model", NOWHERE],
            2,
            "--clip-len must be >= 2",
        ),
        "describe --max-new-tokens 0": (lambda f: [*describe(f, model=NOWHERE), M, "0"], 2, "--max-new-tokens"),
        "track --out a file": (
            lambda f: track(f, "--box", "0,10,10,20", "--out", str(f["a_file"]), model=NOWHERE),
            2,
            "is a file, not a folder",
        ),
        "eval --out a file": (
            lambda f: [*evaluate(f, "otb", "x"), "--out", str(f["a_file"]), "--model", NOWHERE],
            2,
            "is a file",
        ),
        "demo --out a file": (lambda f: ["demo", "--out", str(f["a_file"]), "--model", NOWHERE], 2, "is a file"),
        "heldout --out a file": (
            lambda f: ["heldout", "--out", str(f["a_file"]), "--model", str(f["model"]), "--no-captions"],
            2,
            "is a file",
        ),
        "data synth --out a file": (
            lambda f: ["data", "synth", "--out", str(f["a_file"]), "--videos", "1"],
            2,
            "is a file",
        ),
        "data squares --out a file": (
            lambda f: ["data", "squares", "--out", str(f["a_file"]), "--images", "1"],
            2,
            "is a file",
        ),
        "UTF-8 BOM in a result file": (
            lambda f: score(f, "bom_results", "--json"),
            0,
            '"precision_20px": 1.0, "norm_precision": 1.0, "sequences": 1',  # the BOM line is read as a box
        ),
    }


CASES = _cases()


def run_cli(argv: list[str], capsys) -> tuple[int, str]:
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out + captured.err


@pytest.fixture(scope="module")
def first_eval(files) -> None:
    prepare_runs(files)


def prepare_runs(files: dict[str, Path]) -> None:
    """One model's results in e_shared, which another model's eval must not reuse; an image to ground."""
    assert main(["eval", "--benchmark", "otb", "--root", str(files["otb"]), "--out", str(files["tmp"] / "e_shared"),
                 "--model", str(files["model"]), "--quiet", M, "8"]) == 0  # fmt: skip
    Image.fromarray(moving_square(1)[0]).save(files["tmp"] / "frame.png")


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input(name, files, first_eval, capsys, monkeypatch):
    def no_prompt(*args, **kwargs):
        raise AssertionError("transformers asked the user whether to run a folder's code")

    monkeypatch.setattr(builtins, "input", no_prompt)
    build, expected_code, phrase = CASES[name]
    code, output = run_cli(build(files), capsys)
    assert "Traceback" not in output, output
    if expected_code is None:
        assert code in (0, 1), output
    else:
        assert code == expected_code, output
    assert phrase in output, output
    if expected_code == 2:
        errors = [line for line in output.splitlines() if line.startswith("error: ")]
        assert len(errors) == 1 and phrase in errors[0], output  # one line names the problem and the fix
    assert not (files["evil"] / EVIL_MARKER).exists()  # no case ran the folder's code


def test_missing_as_failure_scores_missing_frames_as_iou_zero(files, capsys):
    """1 correct box of 6 frames, the rest scored as failures: the got10k AUC of frame 1 alone, not 0.95.

    got10k counts IoU > t on 21 thresholds 0..1, so a perfect frame succeeds on 20 of them: AUC = (20/21) / 6."""
    code, output = run_cli(
        ["score", "--results", str(files["short_results"]), "--benchmark", "otb", "--root", str(files["otb"]),
         "--missing-as-failure", "--json"], capsys)  # fmt: skip
    summary = json.loads(output.splitlines()[0])
    assert code == 0 and summary["missing_frames_scored_as_failures"] == 5
    assert summary["success_auc"] == pytest.approx(20 / 21 / 6, abs=1e-9)  # frame 1 (ground truth) succeeds, 5 fail


def test_trust_remote_code_flag_on_every_model_loading_command():
    from elysium.cli import build_parser

    parser = build_parser()
    commands = {
        "track": ["track", "v.mp4", "--box", "1,1,5,5"],
        "describe": ["describe", "v.mp4", "--box", "1,1,5,5"],
        "ground": ["ground", "i.png", "--expression", "x"],
        "demo": ["demo"],
        "eval": ["eval", "--benchmark", "otb", "--root", "r"],
        "heldout": ["heldout"],
    }
    for name, argv in commands.items():
        assert parser.parse_args(argv).trust_remote_code is False, name
        assert parser.parse_args([*argv, "--trust-remote-code"]).trust_remote_code is True, name


def test_python_api_refuses_remote_code_unless_asked(files, monkeypatch):
    from elysium.inference import ElysiumTracker, tracking_pipeline
    from elysium.inference.loading import load_model_and_processor

    monkeypatch.setattr(builtins, "input", lambda *a: pytest.fail("prompted"))
    for load in (
        lambda: load_model_and_processor(files["evil"]),
        lambda: ElysiumTracker.from_pretrained(files["evil"]),
        lambda: tracking_pipeline(files["evil"]),
    ):
        with pytest.raises(UserError, match="trust_remote_code=True"):
            load()
    assert not (files["evil"] / EVIL_MARKER).exists()


def test_own_model_type_loads_without_the_flag_even_with_an_auto_map(files, tmp_path):
    """A Hub export of our model has an auto_map too; with the package installed its type is registered, so it
    loads without --trust-remote-code and without running any file of the folder."""
    from elysium.inference import ElysiumTracker

    folder = tmp_path / "hub_like"
    shutil.copytree(files["model"], folder)
    config = json.loads((folder / "config.json").read_text())
    config["auto_map"] = {"AutoConfig": "configuration_elysium.ElysiumConfig"}
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "configuration_elysium.py").write_text(f"raise SystemExit({EVIL_MARKER!r})\n")
    tracker = ElysiumTracker.from_pretrained(folder, max_new_tokens=4)
    assert type(tracker.model).__name__ == "ElysiumForConditionalGeneration"


def test_describe_allow_truncated_uses_the_frames_that_decode(files, capsys):
    argv = ["describe", str(files["cut"]), "--box", "0,10,10,20", "--model", str(files["model"]), M, "4"]
    code, output = run_cli([*argv, "--allow-truncated"], capsys)
    assert code == 0 and "Traceback" not in output


# -- track's files: temporaries, publishing order, frame times ---------------------------------------------------


def test_a_killed_track_leaves_temps_the_next_run_removes(files, tmp_path):
    """SIGKILL (a real process) once the video is written but before it is published, then a run in the same
    folder: the dead run's temporaries are gone."""
    out = tmp_path / "killed"
    script = (
        "import os, signal, sys\n"
        "from elysium.inference import track_cli\n"
        "track_cli._publish_together = lambda pairs: os.kill(os.getpid(), signal.SIGKILL)\n"
        "from elysium.cli import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    argv = ["track", str(files["video"]), "--box", "0,10,10,20", "--model", str(files["model"]), "--quiet"]
    done = subprocess.run([sys.executable, "-c", script, *argv, M, "4", "--out", str(out)], capture_output=True)
    assert done.returncode == -9, done.stderr.decode()[-2000:]
    left = [p.name for p in out.iterdir()]
    assert left and all(name.startswith(".") for name in left), left  # hidden temporaries, nothing published
    assert main([*argv, M, "4", "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["track.json", "track.mp4"]


def test_track_json_is_published_after_the_video_and_a_run_without_it_is_unfinished(files, tmp_path, monkeypatch):
    """Both files are written to temporaries and moved together, track.json last; a failure before the json is in
    place leaves no new track.mp4 beside an old track.json."""
    import elysium.inference.track_cli as track_cli

    out = tmp_path / "publish"
    argv = ["track", str(files["video"]), "--box", "0,10,10,20", "--model", str(files["model"]), "--quiet", M, "4"]
    assert main([*argv, "--out", str(out)]) == 0
    moves = []
    real_replace = os.replace

    def recording_replace(src, dst):
        if not Path(dst).name.startswith("."):  # not the temporaries' own atomic writes
            moves.append(Path(dst).name)
        if Path(dst).name == "track.json":
            raise OSError("disk full")
        return real_replace(src, dst)

    monkeypatch.setattr(track_cli.os, "replace", recording_replace)
    with pytest.raises(OSError):
        main([*argv, "--out", str(out)])
    assert moves == ["track.mp4", "track.json"]
    assert not (out / "track.json").exists()  # the old marker went first: the folder reads as unfinished
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporaries left


def test_variable_frame_rate_video_keeps_its_frame_times(files, tmp_path):
    source = tmp_path / "vfr.mkv"
    times = [0.0, 0.1, 0.15, 0.5, 0.55, 1.2, 1.25, 1.3]
    write_video(source, list(zip(moving_square(len(times)), times)), 10.0, timed=True)
    out = tmp_path / "vfr_out"
    argv = ["track", str(source), "--box", "0,10,10,20", "--model", str(files["model"]), "--quiet", M, "4"]
    assert main([*argv, "--out", str(out)]) == 0
    track = json.loads((out / "track.json").read_text())
    assert [frame["time"] for frame in track["frames"]] == pytest.approx(times, abs=1e-3)
    with av.open(str(out / "track.mp4")) as container:
        stream = container.streams.video[0]
        written = [float(frame.pts * frame.time_base) for frame in container.decode(stream)]
    assert written == pytest.approx(times, abs=2e-3)


# -- special-token strings in user text ------------------------------------------------------------------------


def llama_style_tokenizer():
    """A Llama tokenizer (transformers' own class: Metaspace, byte fallback, <s> </s> <unk>) on a BPE vocabulary
    trained here, with `<image>` added as the package adds it to Vicuna's."""
    from tokenizers import SentencePieceBPETokenizer
    from transformers import LlamaTokenizer

    trainer = SentencePieceBPETokenizer()
    texts = ["the red car moves left in each frame", "Please find the object and give coordinates", "<>/s image"]
    trainer.train_from_iterator(texts * 20, vocab_size=300, special_tokens=["<unk>", "<s>", "</s>"])
    vocab = trainer.get_vocab()
    model = json.loads(trainer.to_str())["model"]
    tokenizer = LlamaTokenizer(vocab=vocab, merges=[tuple(m.split(" ")) if isinstance(m, str) else tuple(m)
                                                    for m in model["merges"]])  # fmt: skip
    tokenizer.add_tokens(["<image>"], special_tokens=True)
    tokenizer.pad_token = tokenizer.unk_token
    return tokenizer


@pytest.mark.parametrize("which", ["tiny", "llama"])
def test_user_text_is_never_parsed_for_special_tokens(which, tokenizer):
    from elysium.processing import ElysiumImageProcessor, ElysiumProcessor

    tok = tokenizer if which == "tiny" else llama_style_tokenizer()
    processor = ElysiumProcessor(ElysiumImageProcessor(size={"height": 28, "width": 28}), tok, num_image_tokens=2)
    special = {tok.convert_tokens_to_ids(t) for t in ("<image>", "</s>", "<s>")}
    frames = [np.zeros((28, 28, 3), np.uint8)] * 3
    clean = processor.build_prompt("rsot", 3, expression="the red car")
    tricky = processor.build_prompt("rsot", 3, expression="the <image> red </s> car <s>")
    clean_ids = processor(text=clean, images=frames)["input_ids"][0].tolist()
    tricky_ids = processor(text=tricky, images=frames)["input_ids"][0].tolist()
    # the prompt's own special tokens are exactly the clean prompt's (BOS, 3 frames x 2 image tokens), no more
    assert [i for i in tricky_ids if i in special] == [i for i in clean_ids if i in special]
    assert tricky_ids.count(processor.image_token_id) == 6
    # the user's strings are there as text
    text = tok.decode(tricky_ids, skip_special_tokens=True).replace(" ", "")
    assert "<image>red</s>car<s>" in text
    # a prompt without such strings tokenizes exactly as the tokenizer alone does (nothing changed for the models)
    expanded = clean.replace("<image>", "<image>" * 2)
    assert clean_ids == tok(expanded)["input_ids"]
