"""A run killed mid-way and restarted with the same config continues exactly where it stopped."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pytest
import torch
from conftest import Crash, CrashAt, smoke_run_config
from safetensors.torch import load_file

from elysium.training.sft import train


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


def test_a_damaged_last_checkpoint_falls_back_to_the_previous_one(tmp_path, caplog):
    first = train(_config(tmp_path, "run"))  # checkpoints 4 and 8, then final/
    run = tmp_path / "run"
    expected = load_file(run / "final" / "model.safetensors")
    shutil.rmtree(run / "final")
    weights = run / "checkpoint-8" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])  # killed while it saved

    with caplog.at_level(logging.WARNING, logger="elysium.training"):
        resumed = train(_config(tmp_path, "run"))
    messages = [record.getMessage() for record in caplog.records]
    assert any(m.startswith("checkpoint-8 rejected: model.safetensors is damaged") for m in messages), messages
    assert "resuming from checkpoint-4, the newest whole checkpoint" in messages
    assert (run / "damaged-checkpoint-8").is_dir() and (run / "checkpoint-8" / "trainer_state.json").is_file()
    # Steps 5-8 again from checkpoint-4 (its log holds 1-4): the same losses and, bit for bit, the same weights.
    assert resumed.state.global_step == 8 and _losses(resumed) == _losses(first)
    final = load_file(run / "final" / "model.safetensors")
    assert final.keys() == expected.keys() and all(torch.equal(final[k], expected[k]) for k in final)


def test_every_checkpoint_damaged_is_an_error(tmp_path):
    from elysium.training.checkpoints import checkpoint_problem, resumable_checkpoint

    folder = tmp_path / "out" / "checkpoint-2"
    folder.mkdir(parents=True)
    assert checkpoint_problem(folder) == "trainer_state.json is missing"
    (folder / "trainer_state.json").write_text("{}")
    (folder / "optimizer.pt").write_bytes(b"PK\x03\x04 truncated")
    assert checkpoint_problem(folder).startswith("optimizer.pt is damaged")
    with pytest.raises(ValueError, match="no checkpoint in .* can be resumed .*checkpoint-2: optimizer.pt is damaged"):
        resumable_checkpoint(tmp_path / "out")
    assert resumable_checkpoint(tmp_path / "nothing") == (None, [])
