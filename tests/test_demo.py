"""`elysium demo` and what it stands on: the bundled demo video, its ground truth, and the packaged default model.

The model here is tiny and random (its boxes mean nothing); what is checked is that one command tracks the bundled
video by box and by expression into files a user can open, and that a missing default model is one clear line.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import pipeline

import elysium.inference  # noqa: F401  (registers the pipeline task)
import elysium.models
from elysium.assets import DEMO_JSON, DEMO_VIDEO
from elysium.cli import main
from elysium.inference import TASK, VideoObjectTrackingPipeline, default_model
from elysium.processing.video import probe_video, read_video
from elysium.synthetic.demo import make_demo


@pytest.fixture(scope="module")
def demo() -> dict:
    return json.loads(DEMO_JSON.read_text())


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, tokenizer) -> Path:
    """A tiny random Elysium exported as the shipped model is: a Hub-ready folder with auto_map and flat code."""
    from conftest import IMAGE_SIZE, T_SELECTOR_TOKENS, tiny_config

    from elysium.hub.export import export_model
    from elysium.modeling_elysium import ElysiumForConditionalGeneration
    from elysium.processing import ElysiumImageProcessor, ElysiumProcessor

    torch.manual_seed(0)
    model = ElysiumForConditionalGeneration(tiny_config(len(tokenizer), tokenizer.convert_tokens_to_ids("<image>")))
    size = {"height": IMAGE_SIZE, "width": IMAGE_SIZE}
    processor = ElysiumProcessor(ElysiumImageProcessor(size=size), tokenizer, num_image_tokens=T_SELECTOR_TOKENS)
    return export_model(model, processor, tmp_path_factory.mktemp("demo_model") / "elysium-tiny")


def test_demo_tracks_by_box_and_by_expression(model_dir, demo, tmp_path, capsys):
    out = tmp_path / "demo-out"
    argv = ["demo", "--model", str(model_dir), "--out", str(out), "--quiet", "--max-new-tokens", "8"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    for folder, task in (("by-box", "sot"), ("by-expression", "rsot")):
        json_path, video_path = out / folder / "track.json", out / folder / "track.mp4"
        assert str(json_path) in printed and str(video_path) in printed
        data = json.loads(json_path.read_text())
        assert data["task"] == task and data["model"] == str(model_dir)
        assert [frame["index"] for frame in data["frames"]] == list(range(demo["num_frames"]))
        assert all(len(frame["box"]) == 4 for frame in data["frames"])
        assert 0.0 <= data["mean_iou"] <= 1.0
        annotated = read_video(video_path, size=None)
        assert len(annotated) == demo["num_frames"] and annotated.original_size == tuple(demo["frame_size"])
    by_box = json.loads((out / "by-box" / "track.json").read_text())
    assert by_box["frames"][0]["box"] == demo["box"] and by_box["initial_box"] == demo["box"]
    assert json.loads((out / "by-expression" / "track.json").read_text())["expression"] == demo["expression"]
    assert printed.count("mean IoU with the ground truth") == 2
    assert f"reference:   {demo['description']!r}" in printed


def test_default_model_is_the_folder_installed_with_the_package():
    assert isinstance(default_model.DEFAULT_MODEL, str)
    assert Path(default_model.DEFAULT_MODEL) == Path(elysium.models.__file__).parent / "elysium-tiny"


def test_missing_default_model_is_one_clear_line(tmp_path, monkeypatch, capsys):
    empty = tmp_path / "elysium-tiny"
    empty.mkdir()
    monkeypatch.setattr(default_model, "DEFAULT_MODEL", str(empty))
    for argv in (
        ["demo", "--out", str(tmp_path / "out")],
        ["track", str(DEMO_VIDEO), "--box", "16,56,49,89", "--out", str(tmp_path / "out")],
        ["describe", str(DEMO_VIDEO), "--box", "16,56,49,89"],
    ):
        assert main(argv) == 2
        err = capsys.readouterr().err
        lines = [line for line in err.splitlines() if line.strip()]
        assert len(lines) == 1 and "Traceback" not in err, err
        assert lines[0].startswith("error: the default model is missing from this install") and "--model" in lines[0]
    assert not (tmp_path / "out").exists()
    with pytest.raises(FileNotFoundError, match="default model is missing from this install"):
        pipeline(TASK)


def test_pipeline_without_a_model_loads_the_default(model_dir, demo, monkeypatch):
    monkeypatch.setattr(default_model, "DEFAULT_MODEL", str(model_dir))
    tracks = pipeline(TASK, device="cpu")
    assert isinstance(tracks, VideoObjectTrackingPipeline)
    tracks.tracker.max_new_tokens = 8
    out = tracks(str(DEMO_VIDEO), box=demo["box"], max_frames=3)
    assert out["num_frames"] == 3 and out["boxes"][0] == demo["box"]


def test_demo_json_describes_the_demo_video(demo):
    info = probe_video(DEMO_VIDEO)
    assert (info.width, info.height) == tuple(demo["frame_size"]) == (160, 120)
    assert info.num_frames == demo["num_frames"] == len(demo["boxes"]) == 48 and info.fps == demo["fps"] == 16
    assert DEMO_VIDEO.stat().st_size < 1_000_000
    assert demo["seed"] not in (1, 1001)  # the training and held-out seeds: the model never saw this video
    assert demo["boxes"][0] == demo["box"] and demo["expression"] and demo["description"]
    frames = read_video(DEMO_VIDEO, size=None).frames.astype(float)
    for frame, (x1, y1, x2, y2) in zip(frames, np.round(demo["boxes"]).astype(int)):
        assert 0 <= x1 < x2 <= 160 and 0 <= y1 < y2 <= 120  # in view in every frame
        # The box is on the object: its inside differs from a thin ring just outside it.
        inside = frame[y1 + 3 : y2 - 3, x1 + 3 : x2 - 3].reshape(-1, 3).mean(0)
        ring = np.concatenate(
            [
                frame[max(y1 - 4, 0) : y1 - 1, x1:x2].reshape(-1, 3),
                frame[y2 + 1 : y2 + 4, x1:x2].reshape(-1, 3),
                frame[y1:y2, max(x1 - 4, 0) : x1 - 1].reshape(-1, 3),
                frame[y1:y2, x2 + 1 : x2 + 4].reshape(-1, 3),
            ]
        ).mean(0)
        assert np.abs(inside - ring).max() > 50


def test_make_demo_rewrites_the_bundled_demo(tmp_path, demo):
    assert make_demo(tmp_path) == demo, "the generator changed: rerun `python -m elysium.synthetic.demo`"
    assert probe_video(tmp_path / "demo.mp4").num_frames == demo["num_frames"]
