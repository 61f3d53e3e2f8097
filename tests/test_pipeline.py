"""The `video-object-tracking` pipeline gives what ElysiumTracker (and so `elysium track`) gives."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoModelForImageTextToText, AutoProcessor, pipeline

import elysium.inference  # noqa: F401  (registers the task)
from elysium.inference import TASK, ElysiumTracker, VideoObjectTrackingPipeline
from elysium.processing.video import write_video


@pytest.fixture(scope="module")
def saved(tmp_path_factory, tokenizer) -> Path:
    from conftest import IMAGE_SIZE, T_SELECTOR_TOKENS, tiny_config

    from elysium.modeling_elysium import ElysiumForConditionalGeneration
    from elysium.processing import ElysiumImageProcessor, ElysiumProcessor

    folder = tmp_path_factory.mktemp("tiny_pipeline_model")
    torch.manual_seed(1)
    config = tiny_config(len(tokenizer), tokenizer.convert_tokens_to_ids("<image>"))
    ElysiumForConditionalGeneration(config).save_pretrained(folder)
    size = {"height": IMAGE_SIZE, "width": IMAGE_SIZE}
    ElysiumProcessor(ElysiumImageProcessor(size=size), tokenizer, num_image_tokens=T_SELECTOR_TOKENS).save_pretrained(
        folder
    )
    return folder


def frames(n: int) -> list[np.ndarray]:
    out = []
    for i in range(n):
        frame = np.zeros((40, 56, 3), np.uint8)
        frame[5:15, 3 * i : 3 * i + 8] = (200, 30, 30)
        out.append(frame)
    return out


def test_pipeline_matches_tracker(saved, tmp_path):
    video = tmp_path / "v.mp4"
    write_video(video, frames(12), 12.0)
    tracks = pipeline(TASK, model=str(saved), device="cpu")
    assert isinstance(tracks, VideoObjectTrackingPipeline)
    tracks.tracker.max_new_tokens = 12
    out = tracks(str(video), box=[0, 5, 8, 15])

    model = AutoModelForImageTextToText.from_pretrained(saved).eval()
    tracker = ElysiumTracker(model, AutoProcessor.from_pretrained(saved), max_new_tokens=12)
    expected = tracker.track(video, box=[0, 5, 8, 15])
    assert out["boxes"] == expected.boxes
    assert out["num_frames"] == 12 and [f["index"] for f in out["frames"]] == list(range(12))
    assert out["num_repaired"] == expected.num_repaired

    # a list of frames is one video (not a batch of images), RSOT works, stride applies
    in_memory = tracks(frames(12), expression="the red box", stride=2)
    assert in_memory["task"] == "rsot" and [f["index"] for f in in_memory["frames"]] == [0, 2, 4, 6, 8, 10]
    assert in_memory["boxes"] == tracker.track(frames(12), expression="the red box", stride=2).boxes
