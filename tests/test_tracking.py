"""ElysiumTracker and the `elysium track/describe/ground` commands, on a tiny random model and generated videos."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from elysium.cli import main
from elysium.inference.tracker import ElysiumTracker, VideoSource
from elysium.processing.boxes import format_box, format_track
from elysium.processing.video import probe_video, write_video

WIDTH, HEIGHT, FPS = 64, 48, 10.0


def moving_square(num_frames: int) -> list[np.ndarray]:
    frames = []
    for i in range(num_frames):
        frame = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
        frame[10:20, 2 * i : 2 * i + 10] = 255
        frames.append(frame)
    return frames


@pytest.fixture(scope="module")
def video20(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("videos") / "square.mp4"
    write_video(path, moving_square(20), FPS)
    return path


@pytest.fixture()
def tracker(model, processor) -> ElysiumTracker:
    return ElysiumTracker(model, processor, max_new_tokens=12)  # random weights never stop: keep answers short


def script_generate(model, tokenizer, answers: list[str], seen: list[str]) -> None:
    """Replace `model.generate` with one that records each prompt and answers from `answers` (then garbage)."""
    queue = list(answers)

    def generate(input_ids, attention_mask=None, mm_encoder_outputs=None, **kwargs):
        rows = []
        for ids in input_ids:
            seen.append(tokenizer.decode(ids, skip_special_tokens=True))
            text = queue.pop(0) if queue else "o7^it ]]]["
            rows.append(torch.cat([ids, torch.tensor(tokenizer(text, add_special_tokens=False)["input_ids"])]))
        longest = max(len(row) for row in rows)
        pad = tokenizer.pad_token_id
        return torch.stack([torch.cat([row, torch.full((longest - len(row),), pad)]) for row in rows])

    model.generate = generate


def norm_track(start: int, count: int) -> list[list[float]]:
    """Normalized boxes moving right by 0.01 per frame, starting at x1 = start/100."""
    return [[(start + k) / 100, 0.2, (start + k + 20) / 100, 0.4] for k in range(count)]


def test_tracks_every_frame_once_with_overlapping_clips(tracker, model, video20):
    calls: list[int] = []
    model.model.vision_tower.register_forward_hook(lambda module, args, output: calls.append(args[0].shape[0]))
    result = tracker.track(video20, box=[0, 10, 10, 20])
    assert [f.index for f in result.frames] == list(range(20))
    assert [f.time for f in result.frames] == pytest.approx([i / FPS for i in range(20)])
    # clips 0-7, 7-14, 14-19: 8 + 7 + 5 new frames, each through the vision tower exactly once, one batch a clip
    assert calls == [8, 7, 5]
    assert result.num_clips == 3 and tracker.stats["clips"] == 3
    assert result.frames[0].box == [0, 10, 10, 20] and not result.frames[0].repaired
    assert result.frame_size == (WIDTH, HEIGHT)
    for frame in result.frames:
        x1, y1, x2, y2 = frame.box
        assert 0 <= x1 < x2 <= WIDTH and 0 <= y1 < y2 <= HEIGHT


def test_each_clip_starts_from_previous_clips_last_box(tracker, model, tokenizer, video20):
    clip1, clip2, clip3 = norm_track(0, 8), norm_track(30, 8), norm_track(50, 6)
    seen: list[str] = []
    script_generate(model, tokenizer, [format_track(clip1), format_track(clip2), format_track(clip3)], seen)
    result = tracker.track(video20, box=[0, 9.6, 12.8, 19.2])
    assert len(seen) == 3
    assert format_box([0, 0.2, 0.2, 0.4]) in seen[0]
    assert format_box(clip1[-1]) in seen[1] and format_box(clip2[-1]) in seen[2]
    assert seen[1].count("Frame") == 8 + 1 and seen[2].count("Frame") == 6 + 1  # frames + "in Frame 1"
    expected = [None] + clip1[1:] + clip2[1:] + clip3[1:]  # the overlap frame keeps the earlier clip's box
    for frame, box in zip(result.frames[1:], expected[1:]):
        assert frame.box == pytest.approx([box[0] * WIDTH, box[1] * HEIGHT, box[2] * WIDTH, box[3] * HEIGHT])
    assert result.num_repaired == 0


def test_malformed_generations_are_repaired_frame_by_frame(tracker, model, tokenizer, video20):
    broken = "Frame 1: [0,20,20,40], Frame 2: [5,20,25,40], Frame 3: [7,20,oops], Frame 5: [9,20,29,40]"
    script_generate(model, tokenizer, [broken, "no boxes at all", "[[[[,,,]"], [])
    result = tracker.track(video20, box=[0, 9.6, 12.8, 19.2])
    assert len(result.frames) == 20
    repaired = [f.repaired for f in result.frames]
    assert repaired[:8] == [False, False, True, True, False, True, True, True]
    assert result.frames[2].box == result.frames[1].box  # frame 3 broken: frame 2's box carried
    assert all(repaired[8:]) and result.num_repaired == 5 + 12
    assert all(f.box == result.frames[7].box for f in result.frames[7:])


def test_garbage_from_the_real_generate_never_crashes(tracker, model, tokenizer, video20):
    real = model.generate

    def garbage(**kwargs):
        out = real(**kwargs)
        return torch.cat(
            [kwargs["input_ids"], torch.randint(3, len(tokenizer), out[:, kwargs["input_ids"].shape[1] :].shape)], 1
        )

    model.generate = garbage
    result = tracker.track(video20, box=[0, 10, 10, 20])
    assert len(result.frames) == 20 and result.num_repaired >= 1


def test_rsot_asks_with_expression_until_found_then_sot(tracker, model, tokenizer, video20):
    seen: list[str] = []
    clip2 = norm_track(10, 8)
    script_generate(model, tokenizer, ["I cannot see it", format_track(clip2), format_track(norm_track(40, 6))], seen)
    result = tracker.track(video20, expression="the white square")
    assert "the white square" in seen[0] and "the white square" in seen[1]
    assert "the white square" not in seen[2] and format_box(clip2[-1]) in seen[2]
    assert [f.index for f in result.frames] == list(range(20))
    first = [clip2[0][0] * WIDTH, clip2[0][1] * HEIGHT, clip2[0][2] * WIDTH, clip2[0][3] * HEIGHT]
    assert all(f.repaired and f.box == pytest.approx(first) for f in result.frames[:7])  # back-filled
    assert not any(f.repaired for f in result.frames[7:])


def test_rsot_never_found_gives_whole_frame(tracker, model, tokenizer):
    script_generate(model, tokenizer, [], [])
    result = tracker.track(moving_square(5), expression="a ghost")
    assert [f.box for f in result.frames] == [[0, 0, WIDTH, HEIGHT]] * 5 and result.num_repaired == 5


def test_batch_of_videos_matches_one_by_one(tracker, video20):
    short = moving_square(11)
    single = [tracker.track(video20, box=[0, 10, 10, 20]).boxes, tracker.track(short, box=[2, 10, 12, 20]).boxes]
    batch = tracker.track_batch(
        [tracker.source(video20), VideoSource.from_frames(short)], boxes=[[0, 10, 10, 20], [2, 10, 12, 20]]
    )
    assert [len(r.frames) for r in batch] == [20, 11]
    assert [r.boxes for r in batch] == single


def test_one_frame_video_and_stride(tracker, video20):
    assert tracker.track(moving_square(1), box=[0, 10, 10, 20]).boxes == [[0, 10, 10, 20]]
    result = tracker.track(video20, box=[0, 10, 10, 20], stride=3, max_frames=5)
    assert [f.index for f in result.frames] == [0, 3, 6, 9, 12]


def test_describe_and_ground(tracker, model, tokenizer):
    script_generate(model, tokenizer, ["a small white square", "[25,50,75,100]"], seen := [])
    assert tracker.describe(moving_square(12), [0, 10, 10, 20]) == "a small white square"
    assert seen[0].count("<image>") == 0 and "Frame 8:" in seen[0] and "Frame 9:" not in seen[0]
    assert tracker.ground(moving_square(1)[0], "the square") == pytest.approx([16, 24, 48, 48])
    assert tracker.ground(moving_square(1)[0], "the square") is None  # garbage -> no box, no crash


# -- the CLI ------------------------------------------------------------------------------------------------------


def test_cli_track_writes_json_and_annotated_video(model_dir, video20, tmp_path, capsys):
    out = tmp_path / "out"
    code = main(
        [
            "track",
            str(video20),
            "--box",
            "0,10,10,20",
            "--model",
            str(model_dir),
            "--out",
            str(out),
            "--quiet",
            "--max-new-tokens",
            "8",
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert str(out / "track.json") in printed and str(out / "track.mp4") in printed
    data = json.loads((out / "track.json").read_text())
    assert data["num_frames"] == 20 and len(data["frames"]) == 20 and data["frame_size"] == [WIDTH, HEIGHT]
    assert data["frames"][0] == {"index": 0, "time": 0.0, "box": [0, 10, 10, 20], "repaired": False}
    assert data["num_repaired"] == sum(f["repaired"] for f in data["frames"])
    info = probe_video(out / "track.mp4")
    assert (info.width, info.height, info.num_frames) == (WIDTH, HEIGHT, 20)
    assert not list(out.glob(".*tmp*"))  # nothing half-written left behind


def test_cli_track_expression_folder_of_frames(model_dir, tmp_path, capsys):
    from PIL import Image

    folder = tmp_path / "frames"
    folder.mkdir()
    for i, frame in enumerate(moving_square(9)):
        Image.fromarray(frame).save(folder / f"{i}.png")
    out = tmp_path / "out"
    assert (
        main(
            [
                "track",
                str(folder),
                "--expression",
                "the square",
                "--model",
                str(model_dir),
                "--out",
                str(out),
                "--quiet",
                "--max-new-tokens",
                "8",
            ]
        )
        == 0
    )
    assert json.loads((out / "track.json").read_text())["num_frames"] == 9


def noise_mkv(path: Path, cut: Path) -> None:
    """A 30-frame mkv of noise (so its bytes spread over all frames) and its first half as `cut`."""
    rng = np.random.default_rng(0)
    write_video(path, [rng.integers(0, 255, (HEIGHT, WIDTH, 3), dtype=np.uint8) for _ in range(30)], FPS)
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _bad_inputs(tmp: Path, video: Path, model_dir: Path) -> dict[str, tuple[list[str], str]]:
    text = tmp / "notes.mp4"
    text.write_text("not a video")
    empty = tmp / "empty.mp4"
    empty.write_bytes(b"")
    cut = tmp / "cut.mp4"
    cut.write_bytes(video.read_bytes()[: video.stat().st_size // 2])
    cut_mkv = tmp / "cut.mkv"
    noise_mkv(tmp / "long.mkv", cut_mkv)
    m = ["--model", str(model_dir), "--quiet", "--out", str(tmp / "o"), "--max-new-tokens", "8"]
    return {
        "missing video": (["track", str(tmp / "nope.mp4"), "--box", "0,0,5,5", *m], "no such file"),
        "not a video": (["track", str(text), "--box", "0,0,5,5", *m], "cannot open"),
        "empty file": (["track", str(empty), "--box", "0,0,5,5", *m], "empty.mp4"),
        "truncated mp4": (["track", str(cut), "--box", "0,0,5,5", *m], "cut.mp4"),
        "truncated mkv": (["track", str(cut_mkv), "--box", "0,0,5,5", *m], "truncated"),
        "box outside": (["track", str(video), "--box", "0,0,65,20", *m], "outside the frame"),
        "box reversed": (["track", str(video), "--box", "10,10,0,20", *m], "x2<=x1"),
        "box not numbers": (["track", str(video), "--box", "a,b,c,d", *m], "not four numbers"),
        "empty expression": (["track", str(video), "--expression", "  ", *m], "empty"),
        "missing model": (["track", str(video), "--box", "0,0,5,5", "--model", str(tmp / "none")], "does not exist"),
        "model not saved": (["track", str(video), "--box", "0,0,5,5", "--model", str(tmp)], "config.json"),
        "ground empty": (["ground", str(video), "--expression", "", "--model", str(model_dir)], "empty"),
        "describe outside": (["describe", str(video), "--box", "0,0,99,99", "--model", str(model_dir)], "outside"),
    }


def test_cli_bad_inputs_exit_cleanly(model_dir, video20, tmp_path, capsys):
    for name, (argv, needle) in _bad_inputs(tmp_path, video20, model_dir).items():
        code = main(argv)
        err = capsys.readouterr().err
        lines = [line for line in err.splitlines() if line.strip()]
        assert code != 0, name
        assert lines and lines[-1].startswith("error: ") and needle in lines[-1], (name, err)
        assert "Traceback" not in err, name
    assert not (tmp_path / "o" / "track.json").exists()  # the truncated video saved nothing


def test_cli_allow_truncated_tracks_what_decodes(model_dir, tmp_path, capsys):
    cut = tmp_path / "cut.mkv"
    noise_mkv(tmp_path / "long.mkv", cut)
    out = tmp_path / "o"
    argv = [
        "track",
        str(cut),
        "--box",
        "0,10,10,20",
        "--model",
        str(model_dir),
        "--out",
        str(out),
        "--quiet",
        "--max-new-tokens",
        "8",
    ]
    assert main([*argv, "--allow-truncated"]) == 0
    data = json.loads((out / "track.json").read_text())
    assert data["truncated"] and 0 < data["num_frames"] < 30
    assert "truncated" in capsys.readouterr().out


def test_cli_describe_and_ground_print_answers(model_dir, video20, tmp_path, capsys):
    from PIL import Image

    assert main(["describe", str(video20), "--box", "0,10,10,20", "--model", str(model_dir)]) == 0
    assert capsys.readouterr().out.strip()
    image = tmp_path / "a.png"
    Image.fromarray(moving_square(1)[0]).save(image)
    code = main(["ground", str(image), "--expression", "the square", "--model", str(model_dir)])
    captured = capsys.readouterr()
    assert (code == 0 and len(captured.out.strip().split(",")) == 4) or (code == 1 and "no box" in captured.err)


# -- search regions -----------------------------------------------------------------------------------------------


def square_at(x: int, y: int, side: int = 10, size: tuple[int, int] = (160, 120)) -> np.ndarray:
    frame = np.zeros((size[1], size[0], 3), np.uint8)
    frame[y : y + side, x : x + side] = 255
    return frame


def test_search_regions_cut_each_clip_around_the_last_box(model, processor, tokenizer, monkeypatch):
    """With a search context of 5, a 10-px target gets a 50-px square centered on it; the prompt's box, the frames the
    model sees and its answers are all in that square, and the answers come back in frame pixels."""
    monkeypatch.setattr(model.config, "track_search_context", 5.0)
    tracker = ElysiumTracker(model, processor, max_new_tokens=12)  # "model": the model's own setting
    assert tracker.search_context == 5.0
    encoded: list[np.ndarray] = []
    real_encode = tracker._encode_frames
    monkeypatch.setattr(tracker, "_encode_frames", lambda frames: encoded.extend(frames) or real_encode(frames))
    frames = [square_at(40 + 2 * i, 50) for i in range(15)]
    seen: list[str] = []
    # every answer: the target 8 px right of the prompt's box, in the crop (28, 20)-(38, 30) of 50 px
    answer = format_track([[0.56, 0.4, 0.76, 0.6]] * 8)
    script_generate(model, tokenizer, [answer, answer], seen)
    result = tracker.track(frames, box=[40, 50, 50, 60])

    assert format_box([0.4, 0.4, 0.6, 0.6]) in seen[0]  # the first box, centered in its square (20, 30)-(70, 80)
    assert [f.shape for f in encoded] == [(50, 50, 3)] * 16  # clip 2 encodes its carried frame again, in its square
    white = np.argwhere(encoded[0][..., 0] == 255)
    assert (white.min(0).tolist(), white.max(0).tolist()) == ([20, 20], [29, 29])  # where the prompt's box says
    assert result.frames[1].box == pytest.approx([48, 50, 58, 60])  # the square's corner + the answer
    # clip 2 is cut around clip 1's last box (48, 50)-(58, 60): the square (28, 30)-(78, 80)
    white = np.argwhere(encoded[8][..., 0] == 255)  # frame 7, the target at x = 54
    assert (white.min(0).tolist(), white.max(0).tolist()) == ([20, 26], [29, 35])
    assert format_box([0.4, 0.4, 0.6, 0.6]) in seen[1]
    assert result.frames[9].box == pytest.approx([56, 50, 66, 60])


def test_search_context_is_checked_and_describe_uses_it(model, processor, tokenizer):
    with pytest.raises(ValueError, match="search_context"):
        ElysiumTracker(model, processor, search_context=0.5)
    tracker = ElysiumTracker(model, processor, search_context=2.0)
    seen: list[str] = []
    script_generate(model, tokenizer, ["a white square"], seen)
    assert tracker.describe([square_at(40, 50, side=16)] * 3, [40, 50, 56, 66]) == "a white square"
    assert format_box([0.25, 0.25, 0.75, 0.75]) in seen[0]  # a 32-px square (more than the 30-px least side)
    assert ElysiumTracker(model, processor).search_context is None  # the test model trained on whole frames


def test_cli_search_context_option(capsys):
    from elysium.cli import build_parser

    parser = build_parser()
    video = ["track", "v.mp4", "--box", "0,0,4,4"]
    assert parser.parse_args(video).search_context == "model"
    assert parser.parse_args([*video, "--search-context", "none"]).search_context is None
    assert parser.parse_args([*video, "--search-context", "2.5"]).search_context == 2.5
    for bad in ("0.5", "wide"):
        with pytest.raises(SystemExit):
            parser.parse_args([*video, "--search-context", bad])
        assert "a factor >= 1" in capsys.readouterr().err


def test_clip_len_defaults_to_the_models_own_and_is_checked(model, processor, monkeypatch):
    """A model trained on short clips records their length (`track_clip_len`); the tracker follows it unless told,
    and a model that says nothing tracks in the paper's clips of 8."""
    assert ElysiumTracker(model, processor).clip_len == 8
    monkeypatch.setattr(model.config, "track_clip_len", 4)
    assert ElysiumTracker(model, processor).clip_len == 4
    assert ElysiumTracker(model, processor, clip_len=6).clip_len == 6
    for bad in (1, 2.5, "four"):
        with pytest.raises(ValueError, match="clip_len"):
            ElysiumTracker(model, processor, clip_len=bad)
    with pytest.raises(ValueError, match="track_clip_len"):
        type(model.config)(**{**model.config.to_dict(), "track_clip_len": 1})


# -- test-time views ----------------------------------------------------------------------------------------------


def test_views_mirror_and_shift_the_square_and_take_the_median_answer(model, processor, tokenizer, monkeypatch):
    """Three views of a 50-px square (search context 5) around a 10-px target near the left edge: the square, the
    square mirrored, and the square shifted by half a patch (12 px of 50 for the test model's 2x2 patches) as far
    as it still holds the box. Each view is prompted in its own coordinates, each answers a different frame box,
    and the track is their coordinate-wise median. Expected values are worked out by hand below."""
    monkeypatch.setattr(model.config, "track_search_context", 5.0)
    tracker = ElysiumTracker(model, processor, max_new_tokens=12, views=3)
    encoded: list[np.ndarray] = []
    real_encode = tracker._encode_frames
    monkeypatch.setattr(tracker, "_encode_frames", lambda frames: encoded.extend(frames) or real_encode(frames))
    frames = [square_at(4, 50)] * 8  # one clip of 8
    # the base square is (2, 30)-(52, 80); the shifted one (4, 42)-(54, 92): +12 down, +2 right (the box's edge)
    answers = [
        format_track([[0.2, 0.4, 0.4, 0.6]] * 8),  # the square: frame box (12, 50)-(22, 60)
        format_track([[0.64, 0.4, 0.84, 0.6]] * 8),  # mirrored: (8, 20)-(18, 30) of the square -> (10, 50)-(20, 60)
        format_track([[0.04, 0.16, 0.24, 0.36]] * 8),  # shifted: (2, 8)-(12, 18) of it -> (6, 50)-(16, 60)
    ]
    seen: list[str] = []
    script_generate(model, tokenizer, answers, seen)
    result = tracker.track(frames, box=[4, 50, 14, 60])

    assert format_box([0.04, 0.4, 0.24, 0.6]) in seen[0]
    assert format_box([0.76, 0.4, 0.96, 0.6]) in seen[1]  # the prompt's box mirrored too
    assert format_box([0.0, 0.16, 0.2, 0.36]) in seen[2]
    assert [f.shape for f in encoded] == [(50, 50, 3)] * 24
    white = [np.argwhere(encoded[i][..., 0] == 255) for i in (0, 8, 16)]
    assert [(w.min(0).tolist(), w.max(0).tolist()) for w in white] == [
        ([20, 2], [29, 11]),
        ([20, 38], [29, 47]),  # mirrored: columns 2..11 -> 49-11..49-2
        ([8, 0], [17, 9]),
    ]
    assert result.frames[0].box == [4, 50, 14, 60]  # the given box
    assert all(f.box == pytest.approx([10, 50, 20, 60]) for f in result.frames[1:])  # the median of 12, 10, 6 ...
    assert result.num_repaired == 0


def test_combined_views_prefer_boxes_read_from_the_answer():
    from elysium.inference.tracker import combine_views

    read = {"boxes": [[0, 0, 10, 10], [2, 0, 12, 10]], "repaired": [False, True], "num_repaired": 1}
    other = {"boxes": [[0, 0, 10, 10], [6, 0, 16, 10]], "repaired": [False, False], "num_repaired": 0}
    carried = {"boxes": [[0, 0, 10, 10], [0, 0, 10, 10]], "repaired": [False, True], "num_repaired": 1}
    combined = combine_views([read, other, carried])
    assert combined["boxes"][1] == [6, 0, 16, 10]  # only the one view that read a box for frame 2
    assert combined["repaired"] == [False, False] and combined["num_repaired"] == 0
    lost = combine_views([{**carried, "repaired": [True, True]}] * 2)
    assert lost["repaired"] == [True, True] and lost["boxes"][1] == [0, 0, 10, 10]


def test_views_default_to_the_models_own_and_are_checked(model, processor, monkeypatch, capsys):
    from elysium.cli import build_parser

    assert ElysiumTracker(model, processor).views == 1
    monkeypatch.setattr(model.config, "track_views", 4)
    assert ElysiumTracker(model, processor).views == 4
    assert ElysiumTracker(model, processor, views=2).views == 2
    for bad in (0, 99, 1.5, "two"):
        with pytest.raises(ValueError, match="views"):
            ElysiumTracker(model, processor, views=bad)
    with pytest.raises(ValueError, match="track_views"):
        type(model.config)(**{**model.config.to_dict(), "track_views": 0})
    parser = build_parser()
    video = ["track", "v.mp4", "--box", "0,0,4,4"]
    assert parser.parse_args(video).views == "model"
    assert parser.parse_args([*video, "--views", "3"]).views == 3
    for bad in ("0", "6", "many"):
        with pytest.raises(SystemExit):
            parser.parse_args([*video, "--views", bad])
        assert "test-time views" in capsys.readouterr().err


def test_rsot_asks_its_first_clip_again_in_the_square_around_what_it_found(model, processor, tokenizer, monkeypatch):
    """RSOT with search regions: the first clip on whole frames finds a rough box; the same clip is asked again as
    SOT in the square around it, and that answer is the track, its first frame included."""
    monkeypatch.setattr(model.config, "track_search_context", 5.0)
    tracker = ElysiumTracker(model, processor, clip_len=4, max_new_tokens=12)
    frames = []
    for i in range(7):
        frame = np.zeros((120, 160, 3), np.uint8)
        frame[52:60, 40 + 4 * i : 50 + 4 * i] = 255
        frames.append(frame)
    rough = format_track([[0.2, 0.4, 0.3, 0.5]] * 4)  # frame box (32, 48)-(48, 60), whole frame
    # its square: (16, 20)-(96, 100); the target (40 + 4i, 52)-(50 + 4i, 60) there
    refined = format_track([[0.3 + 0.05 * i, 0.4, 0.425 + 0.05 * i, 0.5] for i in range(4)])
    seen: list[str] = []
    script_generate(model, tokenizer, [rough, refined, format_track(norm_track(0, 4))], seen)
    result = tracker.track(frames, expression="the white box")

    assert "the white box" in seen[0] and "the white box" not in seen[1]
    assert format_box([0.2, 0.35, 0.4, 0.5]) in seen[1]  # the found box, in its square, as an SOT prompt
    assert [f.index for f in result.frames] == list(range(7))  # every frame once, the first clip's too
    for i in range(4):
        assert result.frames[i].box == pytest.approx([40 + 4 * i, 52, 50 + 4 * i, 60], abs=0.5)
    assert len(seen) == 3  # the whole-frame clip, its second asking, then one SOT clip for frames 4-6
    assert ElysiumTracker(model, processor, refine_found=False).refine_found is False


def test_box_scale_widens_the_reported_boxes_but_not_the_one_carried(model, processor, tokenizer, monkeypatch):
    """`box_scale=1.5`: every answered box is reported 1.5 times as wide and high about its centre, cut to the
    frame; the given first box is reported as given, and the next clip is prompted with the box as answered, so
    the model is asked exactly what it is asked at 1. Expected values are worked out by hand."""
    from elysium.processing.boxes import widen_box

    monkeypatch.setattr(model.config, "track_search_context", None)
    answers = [format_track(norm_track(0, 4)), format_track(norm_track(3, 4))]
    runs = {}
    for scale in (1.0, 1.5):
        seen: list[str] = []
        script_generate(model, tokenizer, answers, seen)
        tracker = ElysiumTracker(model, processor, clip_len=4, max_new_tokens=12, box_scale=scale)
        runs[scale] = (tracker.track(moving_square(7), box=[0, 10, 10, 20]), seen)

    (plain, seen_plain), (wide, seen_wide) = runs[1.0], runs[1.5]
    assert seen_wide == seen_plain and format_box([0.03, 0.2, 0.23, 0.4]) in seen_wide[1]  # frame 3 as answered
    assert wide.frames[0].box == plain.frames[0].box == [0, 10, 10, 20]
    # frame 1 answered (0.64, 9.6)-(13.44, 19.2): centre (7.04, 14.4), 19.2 x 14.4 wide, cut at the left edge
    assert wide.frames[1].box == pytest.approx([0.0, 7.2, 16.64, 21.6])
    for a, b in zip(plain.frames[1:], wide.frames[1:]):
        assert b.box == pytest.approx(widen_box(a.box, 1.5, (WIDTH, HEIGHT)))
    assert [f.index for f in wide.frames] == list(range(7))


def test_box_scale_defaults_to_the_models_own_and_is_checked(model, processor, monkeypatch, capsys):
    from elysium.cli import build_parser

    assert ElysiumTracker(model, processor).box_scale == 1.0
    monkeypatch.setattr(model.config, "track_box_scale", 1.25)
    assert ElysiumTracker(model, processor).box_scale == 1.25
    assert ElysiumTracker(model, processor, box_scale=1).box_scale == 1.0
    for bad in (0, -1.0, 5.0, True, "wide"):
        with pytest.raises(ValueError, match="box_scale"):
            ElysiumTracker(model, processor, box_scale=bad)
    with pytest.raises(ValueError, match="track_box_scale"):
        type(model.config)(**{**model.config.to_dict(), "track_box_scale": 0.0})
    parser = build_parser()
    video = ["track", "v.mp4", "--box", "0,0,4,4"]
    assert parser.parse_args(video).box_scale == "model"
    assert parser.parse_args([*video, "--box-scale", "1.2"]).box_scale == 1.2
    for bad in ("0", "9", "wide"):
        with pytest.raises(SystemExit):
            parser.parse_args([*video, "--box-scale", bad])
        assert "a factor in (0, 4]" in capsys.readouterr().err
