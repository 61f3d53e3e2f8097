"""Training curves of recipe runs, as a JSON record and a PNG: what `tiny.yaml` did, step by step.

    elysium curves runs/elysium-tiny runs/elysium-tiny-frozen-gate --out docs/elysium-tiny

Reads each stage's newest checkpoint (`<run>/<stage>/checkpoint-N/trainer_state.json` holds the whole log of the
stage) and lays the stages end to end, so step counts continue across stages. Writes `<out>/training_curves.json`
and `<out>/training_curves.png` (loss against step, a line per run, stage boundaries marked).
"""

from __future__ import annotations

import argparse
import io
import json
import re
from pathlib import Path
from typing import Any

from elysium.utils.atomic import write_bytes_atomic, write_json_atomic


def _newest_checkpoint(stage_dir: Path) -> Path | None:
    steps = [
        (int(m.group(1)), p) for p in stage_dir.glob("checkpoint-*") if (m := re.fullmatch(r"checkpoint-(\d+)", p.name))
    ]
    return max(steps)[1] if steps else None


def read_run(run_dir: str | Path) -> dict[str, Any]:
    """`{"run", "stages": [{"name", "first_step", "steps", "log": [{step, loss, learning_rate, ...}]}]}` of a run
    folder (one stage per subfolder with checkpoints, in the order they ran; a one-stage run is its own stage)."""
    run = Path(run_dir)
    if not run.is_dir():
        raise FileNotFoundError(f"{run} is not a folder; pass a training output_dir")
    folders = [run] if _newest_checkpoint(run) else [p for p in sorted(run.iterdir()) if _newest_checkpoint(p)]
    if not folders:
        raise FileNotFoundError(f"{run} holds no checkpoint-N folder (with trainer_state.json) to read a log from")
    stages, offset = [], 0
    for folder in sorted(folders, key=lambda p: _newest_checkpoint(p).stat().st_mtime):  # the order they ran in
        state = json.loads((_newest_checkpoint(folder) / "trainer_state.json").read_text())
        log = [
            {k: v for k, v in entry.items() if k in ("step", "loss", "learning_rate", "grad_norm", "tokens_per_second")}
            for entry in state["log_history"]
            if "loss" in entry
        ]
        stages.append(
            {
                "name": folder.name,
                "first_step": offset,
                "steps": state["global_step"],
                "log": log,
            }
        )
        offset += state["global_step"]
    return {"run": run.name, "stages": stages}


def plot_runs(runs: list[dict[str, Any]], path: str | Path) -> Path:
    """Loss against the recipe's step (stages end to end), a line per run; dotted lines at stage boundaries."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7.5, 4.2), dpi=110)
    axes = figure.add_subplot(1, 1, 1)
    for run in runs:
        steps = [s["first_step"] + e["step"] for s in run["stages"] for e in s["log"]]
        losses = [e["loss"] for s in run["stages"] for e in s["log"]]
        axes.plot(steps, losses, label=run["run"], linewidth=1.2)
    for stage in runs[0]["stages"][1:]:
        axes.axvline(stage["first_step"], color="grey", linestyle=":", linewidth=1)
        axes.text(stage["first_step"], axes.get_ylim()[1], f" {stage['name']}", va="top", fontsize=8, color="grey")
    axes.set_xlabel("step (stages end to end)")
    axes.set_ylabel("training loss")
    axes.set_title("elysium-tiny training curves")
    axes.grid(alpha=0.3)
    axes.legend()
    buffer = io.BytesIO()
    FigureCanvasAgg(figure).print_png(buffer)
    return write_bytes_atomic(Path(path), buffer.getvalue())


def add_parser(subparsers: Any) -> None:
    """Register `curves` with the `elysium` command."""
    parser = subparsers.add_parser(
        "curves", help="training curves of runs (JSON and PNG)", description=__doc__.splitlines()[0]
    )
    parser.add_argument("runs", nargs="+", help="training output_dir folders (a recipe's, with one folder a stage)")
    parser.add_argument("--out", required=True, help="folder for training_curves.json and training_curves.png")
    parser.set_defaults(run=run_curves)


def run_curves(args: argparse.Namespace) -> int:
    from elysium.utils.errors import UserError, check_out_folder

    check_out_folder(args.out)
    try:
        runs = [read_run(run) for run in args.runs]
    except (KeyError, ValueError) as error:  # a trainer_state.json that is not one
        raise UserError(str(error)) from None
    out = Path(args.out)
    write_json_atomic(out / "training_curves.json", runs)
    print(plot_runs(runs, out / "training_curves.png"))
    return 0
