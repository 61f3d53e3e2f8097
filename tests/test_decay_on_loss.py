"""`decay_on_loss`: the rate holds until the logged loss has fallen, then decays and the stage ends, resumably."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from conftest import Crash, CrashAt, smoke_run_config
from safetensors.torch import load_file

from elysium.training.decay_on_loss import DecayOnLoss, DecayOnLossSchedule
from elysium.training.sft import train

BASE_LR = 3.0e-3  # tiny-smoke.yaml's, with warmup_steps 4


def _log(*pairs: tuple[int, float]) -> list[dict]:
    return [{"step": step, "loss": loss, "learning_rate": 1.0} for step, loss in pairs]


def test_the_rate_warms_up_holds_and_decays_by_a_half_cosine_from_where_the_loss_fell():
    schedule = DecayOnLossSchedule(DecayOnLoss(below=0.9, decay_steps=100, window=100), warmup_steps=10, max_steps=1000)
    assert schedule.factor(0) == pytest.approx(1 / 11) and schedule.factor(9) == pytest.approx(10 / 11)
    assert schedule.factor(10) == 1.0 and schedule.factor(899) == 1.0  # holds up to the latest start
    assert schedule.factor(950) == pytest.approx(0.5) and schedule.factor(1000) == pytest.approx(0.0)


def test_find_start_reads_the_mean_of_the_window_past_warmup():
    schedule = DecayOnLossSchedule(DecayOnLoss(below=0.9, decay_steps=100, window=100), warmup_steps=10, max_steps=1000)
    history = _log((50, 3.1), (100, 1.05), (150, 1.03), (200, 0.96), (250, 0.86), (300, 0.80))
    # 250 averages 0.91, 300 averages 0.83; one low log beside a high one is not enough (1.85 at 100)
    assert schedule.find_start(_log((50, 3.1), (100, 0.6))) is None
    assert schedule.find_start(history[:5]) is None
    assert schedule.find_start(history) == 300
    assert schedule.find_start(history + _log((350, 0.5))) == 300  # the first crossing, not the latest
    late = _log((100, 1.0), (950, 0.1), (1000, 0.1))
    assert schedule.find_start(late) is None  # past the latest start (900) the decay has begun already
    schedule.decay_from = 300
    assert schedule.factor(300) == 1.0 and schedule.factor(350) == pytest.approx(0.5)
    assert schedule.factor(400) == 0.0 and schedule.factor(900) == 0.0


@pytest.mark.parametrize(
    "section, message",
    [
        ({"below": 0.9}, "decay_steps"),
        ({"below": 0.9, "decay_steps": 10, "patience": 3}, "patience"),
        ({"below": 0.9, "decay_steps": 10, "window": 100}, "max_steps"),
        ({"below": 0.9, "decay_steps": 10, "window": 2}, "logging_steps"),
    ],
)
def test_a_bad_section_is_one_clear_message(section, message):
    max_steps = 1 if message == "max_steps" else 40
    with pytest.raises(ValueError, match=message):
        DecayOnLoss.from_config(section, max_steps=max_steps, logging_steps=5)
    assert DecayOnLoss.from_config(None, max_steps=40, logging_steps=5) is None


def test_a_run_shortened_below_its_decay_decays_over_its_second_half():
    rule = DecayOnLoss.from_config({"below": 0.9, "decay_steps": 800}, max_steps=10, logging_steps=1)
    assert rule == DecayOnLoss(below=0.9, decay_steps=5, window=100)


def _config(tmp_path: Path, name: str, below: float, max_steps: int = 12) -> dict:
    return smoke_run_config(
        tmp_path, name, 48, max_steps, "--decay_on_loss", f"{{below: {below}, decay_steps: 3, window: 2}}"
    )


def _rates(trainer) -> dict[int, float]:
    """The logged rate at each step: the one that step trained at, the schedule's factor of the step before."""
    return {e["step"]: e["learning_rate"] for e in trainer.state.log_history if "learning_rate" in e}


def test_a_stage_whose_loss_falls_decays_from_there_and_ends_early(tmp_path):
    trainer = train(_config(tmp_path, "run", below=1e9))  # any loss is below: the decay starts at step 4
    rates = _rates(trainer)
    assert trainer.state.global_step == 7 and (tmp_path / "run" / "final" / "config.json").is_file()
    assert (tmp_path / "run" / "checkpoint-7" / "trainer_state.json").is_file()  # the curve's last step is kept
    assert rates[4] == pytest.approx(BASE_LR * 4 / 5)  # the last warmup step
    for step in (5, 6, 7):  # the decay from step 4's log: 1, 0.75, 0.25 of the rate, and the stage ends
        assert rates[step] == pytest.approx(BASE_LR * 0.5 * (1 + math.cos(math.pi * (step - 5) / 3)), abs=1e-9)


def test_a_stage_whose_loss_never_falls_decays_to_end_at_max_steps(tmp_path):
    trainer = train(_config(tmp_path, "run", below=1e-9))
    rates = _rates(trainer)
    assert trainer.state.global_step == 12
    assert rates[10] == pytest.approx(BASE_LR)  # held to the latest start, 12 - 3
    assert rates[11] == pytest.approx(BASE_LR * 0.75) and rates[12] == pytest.approx(BASE_LR * 0.25)


def test_a_run_killed_during_the_decay_resumes_into_the_same_decay(tmp_path):
    full = train(_config(tmp_path, "full", below=1e9))
    with pytest.raises(Crash):
        train(_config(tmp_path, "resumed", below=1e9), callbacks=[CrashAt(6)])
    assert (tmp_path / "resumed" / "checkpoint-4").is_dir()
    resumed = train(_config(tmp_path, "resumed", below=1e9))
    assert resumed.state.global_step == 7
    assert _rates(resumed) == pytest.approx(_rates(full))
    a = load_file(tmp_path / "full" / "final" / "model.safetensors")
    b = load_file(tmp_path / "resumed" / "final" / "model.safetensors")
    for key in a:
        torch.testing.assert_close(b[key], a[key], atol=1e-6, rtol=0)
