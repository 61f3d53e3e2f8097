"""Two CPU ranks (torchrun, gloo) train one data-parallel run: each rank reads its own half of the samples and rank 0
alone writes. `accelerate launch --cpu --num_processes 2`, which starts a single process without MPI, is an error
that names the command to run instead."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import SUBPROCESS_ENV, smoke_overrides

REPO = Path(__file__).resolve().parents[1]
SMOKE = REPO / "training" / "configs" / "tiny-smoke.yaml"
RECORDS = 8  # 8 one-track videos


def _overrides(tmp_path: Path, *extra: str) -> list[str]:
    return smoke_overrides(tmp_path, RECORDS, 2, *extra)


def _two_ranks(tmp_path: Path, *extra: str) -> list[dict]:
    """Run tests/distributed_worker.py on 2 ranks; each rank's report (world size, samples read, writers called)."""
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        str(REPO / "tests" / "distributed_worker.py"),
        str(tmp_path),
        "--config",
        str(SMOKE),
        *_overrides(tmp_path, *extra),
    ]
    result = subprocess.run(command, cwd=tmp_path, env=SUBPROCESS_ENV, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr[-4000:]
    reports = [json.loads((tmp_path / f"rank{rank}.json").read_text()) for rank in (0, 1)]
    for rank, report in enumerate(reports):
        assert report["rank"] == rank and report["num_processes"] == 2 and report["world_size"] == 2
        assert report["distributed_type"] == "DistributedType.MULTI_CPU"
    # Our own writers (synthetic data, skip counts, the Hub-ready final folder) run on rank 0 only.
    assert {"synthesize", "write_json_atomic", "make_hub_ready"} <= set(reports[0]["writes"])
    assert reports[1]["writes"] == []
    state = json.loads((tmp_path / "run" / "checkpoint-4" / "trainer_state.json").read_text())
    assert state["global_step"] == 4 and (tmp_path / "run" / "final" / "model.safetensors").is_file()
    return reports


def test_two_cpu_ranks_train_on_disjoint_halves(tmp_path):
    reports = _two_ranks(tmp_path)
    # 4 steps x 2 samples a rank = the 16 samples of one epoch: each rank trains on its own 8 of them.
    halves = [sorted(index for epoch, index in report["indices"]) for report in reports]
    assert all(len(half) == 8 == len(set(half)) for half in halves), halves
    assert not set(halves[0]) & set(halves[1]), halves
    assert sorted(halves[0] + halves[1]) == list(range(16))


def test_two_cpu_ranks_split_a_stream(tmp_path):
    reports = _two_ranks(tmp_path, "--data.streaming", "true", "--data.shuffle_buffer", "4")
    # 8 records, 2 a rank a step: a pass is 2 steps, 4 records a rank; 4 steps are 2 passes, each split anew.
    passes = [[report["records"][i : i + 4] for i in (0, 4)] for report in reports]
    assert all(len(report["records"]) == 8 for report in reports), reports  # read = trained, nothing dropped
    for first, second in zip(*passes):
        assert not set(first) & set(second), (first, second)
        assert len(set(first) | set(second)) == RECORDS


def test_accelerate_cpu_launch_of_one_process_for_two_is_an_error(tmp_path):
    # accelerate's CPU launcher starts several processes only through MPI: without it this would train alone.
    command = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--num_processes",
        "2",
        "--cpu",
        str(REPO / "training" / "sft.py"),
        "--config",
        str(SMOKE),
        *_overrides(tmp_path),
    ]
    result = subprocess.run(command, cwd=tmp_path, env=SUBPROCESS_ENV, capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    # Our one line (accelerate's launcher then reports the exit status with a traceback of its own).
    assert "error: `accelerate launch --num_processes N` started one process: on CPU" in result.stderr
    assert "torchrun --nproc_per_node N training/sft.py" in result.stderr
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("variable", ["WORLD_SIZE", "OMPI_COMM_WORLD_SIZE"])
def test_launched_world_size_reads_the_launchers_variables(monkeypatch, variable):
    from elysium.training.distributed import check_launch, launched_world_size

    for name in ("WORLD_SIZE", "PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE", "MASTER_ADDR"):
        monkeypatch.delenv(name, raising=False)
    assert launched_world_size() == 1 and check_launch({}) == {}
    monkeypatch.setenv(variable, "2")
    assert launched_world_size() == 2
    # No accelerator: several ranks train on CPU (gloo); with one, accelerate picks it.
    assert check_launch({}) == ({} if torch.accelerator.is_available() else {"use_cpu": True})
