"""`data.streaming: true`: the tiny model trains on a stream of track records, skips and counts bad ones, and a
killed run resumes on the stream with the same losses as an uninterrupted one."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import pytest
from conftest import Crash, CrashAt

from elysium.synthetic import SynthConfig, synthesize
from elysium.training.config import load_config
from elysium.training.sft import train

TINY_SMOKE = Path(__file__).resolve().parents[1] / "training" / "configs" / "tiny-smoke.yaml"
VIDEOS = 8


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """8 tiny videos, one track each, plus one malformed line in the JSONL."""
    root = tmp_path_factory.mktemp("stream-data")
    config = SynthConfig(tracks_per_video=1, min_track_frames=2, photos=False)
    summary = synthesize(root, VIDEOS, 0, (10, 10), (64, 48), config=config, progress=False)
    with summary.annotations.open("a", encoding="utf-8") as handle:
        handle.write('{"frames": "not a list", "box": 3\n')  # not even JSON
    return root


def _config(data: Path, output_dir: Path, **overrides) -> dict:
    flags = {
        "data.streaming": "true",
        "data.track": json.dumps([str(data / "annotations.jsonl")]),
        "data.frames_root": str(data),
        "data.shuffle_buffer": "4",
        "training.output_dir": str(output_dir),
        "training.max_steps": "6",
        "training.save_steps": "3",
        "training.logging_steps": "1",
        "training.per_device_train_batch_size": "2",
        "training.warmup_steps": "0",
        **overrides,
    }
    config = load_config(TINY_SMOKE, [item for key, value in flags.items() for item in (f"--{key}", value)])
    return dataclasses.replace(config, data=dataclasses.replace(config.data, synthetic=None, samples_per_epoch=None))


def _losses(trainer) -> dict[int, float]:
    return {e["step"]: e["loss"] for e in trainer.state.log_history if "loss" in e}


def test_streaming_trains_skips_bad_records_and_resumes(data, tmp_path):
    # 8 usable records, 2 a batch: 4 steps a pass, so 6 steps cross into a second (reshuffled) pass.
    full = train(_config(data, tmp_path / "full"))
    losses = _losses(full)
    assert full.state.global_step == 6 and sorted(losses) == list(range(1, 7))
    assert all(math.isfinite(v) for v in losses.values())

    from transformers import AutoModel

    import elysium.modeling_elysium  # noqa: F401  (registers Elysium with the Auto classes)

    model = AutoModel.from_pretrained(tmp_path / "full" / "final")
    assert type(model).__name__ == "ElysiumForConditionalGeneration"

    skips = json.loads((tmp_path / "full" / "data_skip_counts.json").read_text())
    assert skips["validation_so_far"] is True
    assert skips["validation"]["malformed_record"] >= 1 and skips["validation"]["used"] >= VIDEOS
    assert skips["skipped"] >= 1

    # Killed after the checkpoint at step 3, rerun: Trainer skips 3 batches of the stream and goes on identically.
    with pytest.raises(Crash):
        train(_config(data, tmp_path / "resumed"), callbacks=[CrashAt(4)])
    checkpoint = json.loads((tmp_path / "resumed" / "checkpoint-3" / "data_skip_counts.json").read_text())
    assert checkpoint["global_step"] == 3 and checkpoint["validation"]["used"] >= 6
    resumed = train(_config(data, tmp_path / "resumed"))
    assert resumed.state.global_step == 6
    resumed_losses = _losses(resumed)
    for step in range(4, 7):
        assert resumed_losses[step] == pytest.approx(losses[step], abs=1e-5), step


def test_streaming_needs_max_steps_and_track_only(data, tmp_path):
    with pytest.raises(ValueError, match="max_steps"):
        train(_config(data, tmp_path / "a", **{"training.max_steps": "-1"}))
    grounding = json.dumps({"file": str(data / "annotations.jsonl")})
    with pytest.raises(ValueError, match="map-style only"):
        train(_config(data, tmp_path / "b", **{"data.grounding": grounding}))
