"""`elysium export`: the Hub folder loads with trust_remote_code in a Python that cannot import `elysium`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import huggingface_hub
import numpy as np
import pytest
import torch
import yaml
from safetensors import safe_open
from transformers.dynamic_module_utils import get_imports, get_relative_import_files

from elysium.cli import main as cli_main
from elysium.hub.export import MODEL_AUTO_MAP, ExportError, code_files, export_model

FRAMES = 3
EXPECTED_CODE = {
    "configuration_elysium.py",
    "modeling_elysium.py",
    "processing_elysium.py",
    "image_processing_elysium.py",
    "boxes.py",
    "prompts.py",
    "released_format.py",
    "plain_text.py",
}
PIPELINE_CODE = {"video_tracking.py", "tracker.py", "video.py", "crops.py", "boxes.py", "prompts.py"}

# The start of a script for a fresh interpreter that cannot import `elysium` (the editable install's finder and any
# path entry are removed); test_convert_released.py runs its own body after it too.
BLOCK_ELYSIUM = textwrap.dedent(
    """
    import importlib.abc, importlib.util, json, sys

    class BlockElysium(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == "elysium" or name.startswith("elysium."):
                raise ModuleNotFoundError(f"blocked: {name}")
            return None

    sys.meta_path[:] = [BlockElysium()] + [f for f in sys.meta_path if "editable" not in type(f).__module__.lower()
                                          and "editable" not in getattr(f, "__name__", "").lower()]
    try:
        importlib.util.find_spec("elysium")
        raise SystemExit("elysium is importable; the test would prove nothing")
    except ModuleNotFoundError:
        pass
    """
)

# Loads the Hub folder through the Auto classes only, and writes what it computed for the parent to compare.
REMOTE_SCRIPT = BLOCK_ELYSIUM + textwrap.dedent(
    """
    import numpy as np
    import torch
    from transformers import AutoModel, AutoModelForCausalLM, AutoProcessor

    hub_dir, frames_file, out_file = sys.argv[1:4]
    frames = list(np.load(frames_file))
    processor = AutoProcessor.from_pretrained(hub_dir, trust_remote_code=True)
    prompt = processor.build_prompt("sot", num_frames=len(frames), box=[0.1, 0.2, 0.5, 0.6])
    inputs = processor(text=prompt, images=frames)
    model = AutoModel.from_pretrained(hub_dir, trust_remote_code=True).eval()
    causal = AutoModelForCausalLM.from_pretrained(hub_dir, trust_remote_code=True)
    with torch.no_grad():
        logits = model(**inputs).logits
    assert not any(m.startswith("elysium") for m in sys.modules), [m for m in sys.modules if m.startswith("elysium")]
    torch.save(
        {
            "model_class": type(model).__name__,
            "model_module": type(model).__module__,
            "causal_class": type(causal).__name__,
            "processor_class": type(processor).__name__,
            "image_processor_class": type(processor.image_processor).__name__,
            "prompt": prompt,
            "input_ids": inputs["input_ids"],
            "pixel_values": inputs["pixel_values"],
            "logits": logits,
        },
        out_file,
    )
    """
)


@pytest.fixture()
def frames() -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, size=(40, 52, 3), dtype=np.uint8) for _ in range(FRAMES)]


@pytest.fixture()
def exported(tmp_path: Path, model, processor) -> Path:
    return export_model(model, processor, tmp_path / "hub", max_shard_size="100KB", repo_id="someone/elysium-tiny")


def test_folder_layout(exported: Path, model) -> None:
    names = {p.name for p in exported.iterdir()}
    assert EXPECTED_CODE <= names
    assert not {"__init__.py", "tokenizer_training.py"} & names
    # video.py (PyAV) is there for the tracking pipeline only: no model or processor file reaches it.
    assert PIPELINE_CODE <= names
    for name in EXPECTED_CODE:
        assert {p.name for p in map(Path, get_relative_import_files(exported / name))} <= EXPECTED_CODE, name
    for name in EXPECTED_CODE:  # nothing the Hub copy runs may import our package or PyAV
        assert not {"elysium", "av"} & set(get_imports(exported / name)), name

    config = json.loads((exported / "config.json").read_text())
    assert config["auto_map"] == MODEL_AUTO_MAP
    assert config["model_type"] == "elysium"
    processor_config = json.loads((exported / "processor_config.json").read_text())
    assert processor_config["auto_map"] == {"AutoProcessor": "processing_elysium.ElysiumProcessor"}
    assert processor_config["image_processor"]["auto_map"] == {
        "AutoImageProcessor": "image_processing_elysium.ElysiumImageProcessor"
    }
    assert {"tokenizer.json", "tokenizer_config.json", "chat_template.jinja"} <= names

    # Sharded as transformers shards: an index naming every weight, each in the shard it says.
    index = json.loads((exported / "model.safetensors.index.json").read_text())
    shards = sorted(set(index["weight_map"].values()))
    assert len(shards) > 1 and all((exported / s).is_file() for s in shards)
    assert set(index["weight_map"]) == set(model.state_dict())
    for shard in shards:
        with safe_open(exported / shard, "pt") as handle:
            assert {k for k, v in index["weight_map"].items() if v == shard} == set(handle.keys())

    card = (exported / "README.md").read_text()
    front = yaml.safe_load(card.split("---")[1])
    assert front["library_name"] == "transformers"
    assert front["pipeline_tag"] and front["license"] and "elysium" in front["tags"]
    assert 'AutoModel.from_pretrained("someone/elysium-tiny", trust_remote_code=True)' in card
    assert "[x1,y1,x2,y2]" in card and "Frame 1: <image>" in card

    assert not [p for p in exported.parent.iterdir() if p.name.startswith(".")]  # no temp folder left


def test_loads_with_remote_code_without_elysium(tmp_path: Path, exported: Path, model, processor, frames) -> None:
    np.save(tmp_path / "frames.npy", np.stack(frames))
    result_file = tmp_path / "remote.pt"
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "PYTHONHOME"}}
    env.update(HF_HUB_OFFLINE="1", HF_MODULES_CACHE=str(tmp_path / "modules"), HF_HOME=str(tmp_path / "hf_home"))
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    run = subprocess.run(
        [sys.executable, "-c", REMOTE_SCRIPT, str(exported), str(tmp_path / "frames.npy"), str(result_file)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    remote = torch.load(result_file, weights_only=False)

    assert remote["model_class"] == remote["causal_class"] == "ElysiumForConditionalGeneration"
    assert remote["model_module"].startswith("transformers_modules.")  # the Hub copy, not our package
    assert remote["processor_class"] == "ElysiumProcessor"
    assert remote["image_processor_class"] == "ElysiumImageProcessor"

    prompt = processor.build_prompt("sot", num_frames=FRAMES, box=[0.1, 0.2, 0.5, 0.6])
    inputs = processor(text=prompt, images=frames)
    assert remote["prompt"] == prompt
    assert torch.equal(remote["input_ids"], inputs["input_ids"])
    assert torch.equal(remote["pixel_values"], inputs["pixel_values"])
    with torch.no_grad():
        logits = model(**inputs).logits
    torch.testing.assert_close(remote["logits"], logits, rtol=0, atol=1e-6)


def test_code_files_are_a_closed_flat_set() -> None:
    assert {p.name for p in code_files()} == EXPECTED_CODE


def test_refuses_to_overwrite_and_cleans_up_on_failure(tmp_path: Path, model, processor, monkeypatch) -> None:
    out = tmp_path / "hub"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    with pytest.raises(ExportError, match="already exists"):
        export_model(model, processor, out)

    def boom(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(type(processor), "save_pretrained", boom)
    with pytest.raises(RuntimeError, match="disk full"):
        export_model(model, processor, out, overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hub"]  # no partial folder left beside it
    assert [p.name for p in out.iterdir()] == ["keep.txt"]  # the old folder is untouched


def test_cli_export_then_push_fails_with_one_line(tmp_path: Path, model, processor, monkeypatch, capsys) -> None:
    src = tmp_path / "trained"
    model.save_pretrained(src)
    processor.save_pretrained(src)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.delenv("HUGGING_FACE_HUB_TOKEN", raising=False)
    monkeypatch.setattr(huggingface_hub, "get_token", lambda: None)  # ignore a token stored on this machine

    out = tmp_path / "hub"
    code = cli_main(["export", "--model", str(src), "--out", str(out), "--push-to-hub", "someone/elysium-tiny"])
    stderr = capsys.readouterr().err
    assert "Traceback" not in stderr
    err = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert code == 2
    assert len(err) == 1 and err[0].startswith("error: cannot push to someone/elysium-tiny")
    assert "huggingface-cli login" in err[0] and "HF_TOKEN" in err[0]
    assert (out / "config.json").is_file() and (out / "README.md").is_file()  # the local folder is complete
    assert (out / "model.safetensors").is_file() or (out / "model.safetensors.index.json").is_file()

    # With a token but no network (offline mode), the Hub error is reported as one line too, without hanging.
    monkeypatch.setattr(huggingface_hub, "get_token", lambda: "hf_not_a_real_token")
    code = cli_main(["export", "--model", str(src), "--out", str(out), "--overwrite", "--push-to-hub", "someone/x"])
    stderr = capsys.readouterr().err
    assert "Traceback" not in stderr
    err = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert code == 2 and len(err) == 1
    assert "cannot push to someone/x" in err[0] and "OfflineModeIsEnabled" in err[0] and "HF_TOKEN" in err[0]
    assert (out / "config.json").is_file()


def test_cli_export_needs_a_processor(tmp_path: Path, model, capsys) -> None:
    src = tmp_path / "model_only"
    model.save_pretrained(src)
    assert cli_main(["export", "--model", str(src), "--out", str(tmp_path / "hub")]) == 2
    assert "processor" in capsys.readouterr().err
    assert not (tmp_path / "hub").exists()


def test_exporting_the_packaged_tiny_keeps_its_card(tmp_path: Path) -> None:
    from elysium.hub.export import EXPORT_MARKER, export
    from elysium.inference.default_model import DEFAULT_MODEL

    own = (Path(DEFAULT_MODEL) / "README.md").read_text()
    out = export(DEFAULT_MODEL, tmp_path / "hub")
    card = (out / "README.md").read_text()
    front = yaml.safe_load(card.split("---")[1])
    assert front == yaml.safe_load(own.split("---")[1])  # its own front matter already holds what export adds
    # Its recipe and scores stay, word for word, before what export writes.
    kept = own.split("---", 2)[2].split(EXPORT_MARKER)[0].strip()
    assert kept and "## Held-out quality" in kept and card.split("---", 2)[2].strip().startswith(kept)
    assert card.count(EXPORT_MARKER) == 1 and card.count("## Usage") == 1
    assert 'pipeline("video-object-tracking", model=' in card and "trust_remote_code=True" in card
    config = json.loads((out / "config.json").read_text())
    assert "video-object-tracking" in config["custom_pipelines"]
    # Exporting the export again changes nothing in the card (export's part is replaced, not appended).
    again = export(out, tmp_path / "hub2")
    assert (again / "README.md").read_text() == card


def test_card_without_front_matter_gets_ours(tmp_path: Path, model, processor) -> None:
    out = export_model(model, processor, tmp_path / "hub", own_card="# My model\n\nTrained on my data.\n")
    card = (out / "README.md").read_text()
    assert yaml.safe_load(card.split("---")[1])["library_name"] == "transformers"
    assert "# My model\n\nTrained on my data." in card and "## Usage" in card
