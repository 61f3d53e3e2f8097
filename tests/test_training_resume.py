"""A run killed mid-way and restarted with the same config continues exactly where it stopped."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from conftest import Crash, CrashAt, smoke_run_config
from elysium.training.sft import train
from safetensors.torch import load_file


def _config(tmp_path: Path, name: str) -> dict:
    return smoke_run_config(tmp_path, name, 24, 8)


def _losses(trainer) -> dict[int, float]:
    return {e["step"]: e["loss"] for e in trainer.state.log_history if "loss" in e}


def test_resume_matches_uninterrupted_run(tmp_path):
    full = train(_config(tmp_path, "full"))  # 8 steps = 16 samples: crosses no epoch; 24 a epoch
    with pytest.raises(Crash):
        train(_config(tmp_path, "resumed"), callbacks=[CrashAt(6)])
    assert (tmp_path / "resumed" / "checkpoint-4").is_dir() and not (tmp_path / "resumed" / "final").exists()
    skip_json = json.loads((tmp_path / "resumed" / "checkpoint-4" / "data_skip_counts.json").read_text())
    assert skip_json["global_step"] == 4 and skip_json["validation"] == {"used": 8}

    resumed = train(_config(tmp_path, "resumed"))
    assert resumed.state.global_step == 8
    full_losses, resumed_losses = _losses(full), _losses(resumed)
    for step in range(5, 9):
        assert resumed_losses[step] == pytest.approx(full_losses[step], abs=1e-5), step

    a = load_file(tmp_path / "full" / "final" / "model.safetensors")
    b = load_file(tmp_path / "resumed" / "final" / "model.safetensors")
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(b[key], a[key], atol=1e-6, rtol=0)
