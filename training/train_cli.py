"""`elysium train --config training/configs/NAME.yaml [--section.key value ...]`: a thin front to the training entry
point, `training/sft.py` (the same config and overrides; see `training/config.py`).

Without launcher options it trains in this process, as `accelerate launch --num_processes 1 training/sft.py` does
(one process: on CPU, or on one GPU). With `--accelerate-config FILE` and/or `--num-processes N` it runs
`accelerate launch [those] -m elysium.training.sft ...` with the same arguments, so that several GPUs (or ranks)
train as one run; its exit code is the command's.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from typing import Any


def add_parser(subparsers: Any) -> None:
    """Register `train` with the `elysium` command."""
    parser = subparsers.add_parser(
        "train",
        help="train or finetune Elysium from a YAML config (accelerate / TRL SFTTrainer)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
        epilog="Any --section.key VALUE after these overrides the config (e.g. --training.max_steps 10, "
        "--data.track_context '[2, 3]'); a stage recipe applies them to every stage.",
    )
    parser.add_argument("--config", required=True, help="a training config, e.g. training/configs/tiny-smoke.yaml")
    parser.add_argument(
        "--accelerate-config", default=None, help="launch through `accelerate launch --config_file FILE`"
    )
    parser.add_argument(
        "--num-processes", type=int, default=None, help="launch N processes through `accelerate launch`"
    )
    parser.set_defaults(run=run_train, overrides=True)


def launch_command(args: argparse.Namespace) -> list[str] | None:
    """The `accelerate launch` command for `args`, or None to train in this process."""
    if args.accelerate_config is None and args.num_processes is None:
        return None
    command = [sys.executable, "-m", "accelerate.commands.launch"]
    if args.accelerate_config is not None:
        command += ["--config_file", args.accelerate_config]
    if args.num_processes is not None:
        command += ["--num_processes", str(args.num_processes)]
    return [*command, "-m", "elysium.training.sft", "--config", args.config, *args.overrides]


def run_train(args: argparse.Namespace) -> int:
    from elysium.utils.errors import check_at_least

    check_at_least([("--num-processes", args.num_processes, 1)])
    command = launch_command(args)
    if command is not None:
        return subprocess.call(command)
    from elysium.training.sft import main

    return main(["--config", args.config, *args.overrides])
