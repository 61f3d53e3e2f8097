"""How many ranks a training run was launched with, and a setup that really trains with all of them.

`accelerate launch --cpu --num_processes N` starts ONE process unless MPI runs it (accelerate 1.16's CPU
launcher is `mpirun`, `--mpirun_hostfile`); `torchrun --nproc_per_node N` on a machine without an accelerator
starts N processes that each set up `DistributedType.NO` unless told `use_cpu`, so they train N independent
copies and race when they save. Here `torchrun` (or `accelerate launch --multi_gpu`, which runs torchrun) on a
CPU-only machine trains data-parallel over gloo, and the one-process case is an error that says what to run.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import torch
from accelerate.utils import get_int_from_env

logger = logging.getLogger("elysium.training")

# What torchrun, mpirun (Intel MPI / MPICH's PMI, Open MPI, MVAPICH) set in every rank; accelerate reads the same.
WORLD_SIZE_VARIABLES = ("WORLD_SIZE", "PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE")


def launched_world_size() -> int:
    """The number of ranks the launcher started (1 for a plain `python`)."""
    return get_int_from_env(list(WORLD_SIZE_VARIABLES), 1)


def check_launch(training: dict[str, Any]) -> dict[str, Any]:
    """`training` (the SFTConfig section) ready for how this process was launched.

    Several ranks and no accelerator: `use_cpu: true`, so accelerate sets up `MULTI_CPU` over gloo. One process
    from `accelerate launch --cpu` with several asked for (its simple launcher then sets `MASTER_ADDR` but no
    world size): an error, since that run would silently train alone.
    """
    world = launched_world_size()
    # accelerate's simple launcher (the one that runs a single process) always sets ACCELERATE_USE_CPU, and sets
    # MASTER_ADDR only when more than one process was asked for; its torchrun and MPI launchers set a world size.
    if world == 1 and "ACCELERATE_USE_CPU" in os.environ and os.environ.get("MASTER_ADDR"):
        raise ValueError(
            "`accelerate launch --num_processes N` started one process: on CPU (--cpu, or no GPU) accelerate runs "
            "several processes only through MPI (--mpirun_hostfile). Launch the ranks with torch instead: "
            "`torchrun --nproc_per_node N training/sft.py --config ...` (gloo, data-parallel), or drop "
            "--num_processes to train in one process"
        )
    if world > 1 and not training.get("use_cpu") and not torch.accelerator.is_available():
        if os.environ.get("RANK", "0") == "0":
            logger.info("%d ranks and no accelerator: training data-parallel on CPU (gloo)", world)
        training = {**training, "use_cpu": True}
    return training


def check_world_size(num_processes: int) -> None:
    """After the distributed setup: every launched rank must be one process of the same run."""
    world = launched_world_size()
    if num_processes != world:
        raise ValueError(
            f"launched {world} ranks but training set up {num_processes} process(es); they would train separate "
            "copies and overwrite each other's checkpoints. Launch with torchrun or accelerate launch on a "
            "machine whose devices match --nproc_per_node, or set training.use_cpu: true"
        )
