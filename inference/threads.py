"""How many threads torch uses: from the cores this process may run on, less those other work keeps busy.

torch starts with one thread per core of the machine. Where other processes share those cores, its threads wait on
each other and tracking collapses: on the team's 2-core machine under load, 2 threads tracked at 0.68 frames/s where
1 thread tracked at 13.9 (issue #35). So the default counts the cores in this process's affinity mask
(`os.sched_getaffinity`: what `taskset`, cgroups' cpusets and job schedulers grant) and leaves out as many as the
1-minute load average says are busy, keeping at least one; `--threads N` sets it outright.
"""

from __future__ import annotations

import argparse
import os

import torch

__all__ = ["add_thread_argument", "available_cores", "default_threads", "use_threads"]


def available_cores() -> int:
    """Cores this process may run on (its affinity mask), else the machine's count."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # macOS and Windows have no affinity masks
        return os.cpu_count() or 1


def default_threads(cores: int | None = None, load: float | None = None) -> int:
    """Threads for `cores` (default: `available_cores()`) when other work keeps `load` of them busy (default: the
    1-minute load average, measured before this process starts working)."""
    cores = available_cores() if cores is None else cores
    if load is None:
        try:
            load = os.getloadavg()[0]
        except (AttributeError, OSError):
            load = 0.0
    return max(1, min(cores, int(cores - load + 0.5)))


def use_threads(threads: int | None = None) -> int:
    """Set torch's intra-op threads to `threads` (None: `default_threads()`); returns the number set."""
    chosen = default_threads() if threads is None else int(threads)
    if chosen < 1:
        raise ValueError(f"threads={threads!r}: give at least 1.")
    torch.set_num_threads(chosen)
    return chosen


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of threads; give a whole number >= 1")
    return value


def add_thread_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--threads",
        type=_positive,
        default=None,
        help="torch threads (default: the cores this process may use, less those the load average says are busy)",
    )
