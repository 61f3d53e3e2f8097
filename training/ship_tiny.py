"""Ship a trained `tiny.yaml` run as the package's default model, `models/elysium-tiny`, with its record.

    python -m elysium.training.ship_tiny --run runs/elysium-tiny --compare runs/elysium-tiny-frozen-gate \
        --heldout docs/elysium-tiny/heldout/report.json --out models/elysium-tiny

Copies the run's last stage `final/` (weights and processor; no code: the package loads it with its own classes) and
adds what a user needs to trust it:
`elysium_recipe.json` (config, data seed, stages with steps, batch, learning rate and wall time, library versions,
the held-out scores), `training_curves.json` / `.png` (the runs end to end, the compared run beside it) and a model
card with the held-out tables of `elysium heldout`. The folder is replaced atomically.

    python -m elysium.training.ship_tiny --refresh models/elysium-tiny --heldout REPORT.json [--views N] \
        [--box-scale F] [--compare runs/elysium-tiny-frozen-gate]

re-scores a shipped folder without its run: its record and card get the new held-out report, and its curves the
compared runs beside its own (kept from when it shipped). With either,
`--views` and `--box-scale` set the tracker's defaults the report was made with (`track_views`, its test-time
views, and `track_box_scale`, how much it widens the boxes it reports, in `config.json`).

A maintainer's tool, run with `python -m`, not an `elysium` subcommand: it rewrites the model the package ships.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import sys
from pathlib import Path
from typing import Any

from elysium.evaluation.heldout_report import conditions_table, scores_table
from elysium.hub.export import REMOTE_CODE_SENTENCE, atomic_folder, code_files, model_card, pipeline_files
from elysium.synthetic import square_sets
from elysium.utils.atomic import write_json_atomic

from .config import DataArgs, TrainConfig, load_config, stage_configs
from .curves import plot_runs, read_run
from .dataset_builder import clip_frames

CONFIG = "training/configs/tiny.yaml"
SIZE_LIMIT = 30 * 2**20


def recipe_record(
    run: dict[str, Any], config: TrainConfig, config_path: str, heldout: dict[str, Any] | None
) -> dict[str, Any]:
    """What produced the weights: enough to run it again and to know what to expect of it."""
    import torch
    import transformers

    stages = dict(stage_configs(config))
    synthetic = config.data.synthetic
    return {
        "config": config_path,
        "command": f"accelerate launch --num_processes 1 --cpu training/sft.py --config {config_path}",
        "data_seed": synthetic["seed"],
        "data": {k: synthetic[k] for k in ("videos", "frames_per_video", "size")},
        "stages": [_stage_record(stage, stages[stage["name"]]) for stage in run["stages"]],
        "machine": f"{platform.machine()}, CPU (torch threads per run: see README)",
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "transformers": transformers.__version__,
        },
        "heldout": None if heldout is None else compact_report(heldout),
    }


def _stage_record(stage: dict[str, Any], config: TrainConfig) -> dict[str, Any]:
    """One stage of the record: its run's steps and last loss beside what its config trained on and how."""
    data, model = config.data, config.model
    return {
        "name": stage["name"],
        "steps": stage["steps"],
        "batch_size": config.training["per_device_train_batch_size"],
        "learning_rate": config.training["learning_rate"],
        # the rate's schedule: decay_on_loss (training/decay_on_loss.py) where the stage has one, else Trainer's
        "lr_schedule": {"decay_on_loss": config.decay_on_loss}
        if config.decay_on_loss
        else config.training.get("lr_scheduler_type"),
        "sources": stage_sources(data),
        "grounding_context": data.grounding_context,
        "track_context": data.track_context,
        "track_place": data.track_place,
        # a stage that did not set it recorded null (its default, 0, is the true box)
        "track_box_jitter": data.track_box_jitter or None,
        "clip_frames": list(clip_frames(data)),
        "image_size": model.image_size,
        "t_selector_tokens": model.t_selector_tokens,
        "lr_scale": model.lr_scale,
        "t_selector_straight_through": model.t_selector_straight_through,
        "final_loss": stage["log"][-1]["loss"] if stage["log"] else None,
    }


def stage_sources(data: DataArgs) -> list[str]:
    """The sources a stage trained on: the generated set's (`track`, `grounding`) and the squares' names."""
    synthetic = data.synthetic or {}
    generated = list(synthetic.get("sources", ["track"])) if synthetic else []
    return generated + [one["name"] for one in square_sets(data.squares)]


def compact_report(report: dict[str, Any]) -> dict[str, Any]:
    """The held-out scores without the per-track rows and failure lists (those stay in the report's folder)."""
    keep = ("sot", "rsot", "video_reg", "by_condition")
    return {
        "settings": report["settings"],
        "baselines": report["baselines"],
        "models": {name: {k: m[k] for k in keep if k in m} for name, m in report["models"].items()},
    }


def _crops(stage: dict[str, Any]) -> str:
    parts = []
    if stage.get("grounding_context"):
        parts.append("images {:g}-{:g}x".format(*stage["grounding_context"]))
    if stage.get("track_context"):
        place = stage.get("track_place")
        centred = ", first box at {:g}-{:g} of the free room".format(*place) if place else ""
        jitter = stage.get("track_box_jitter")
        rough = f", SOT prompt box off by {jitter:g} of its size" if jitter else ""
        parts.append("SOT/Video-REG clips {:g}-{:g}x{}{}".format(*stage["track_context"], centred, rough))
    return ", ".join(parts)


def _clip_frames(stage: dict[str, Any]) -> str:
    return "{}-{}".format(*stage["clip_frames"]) if "track" in stage["sources"] else ""


def _vision_rate(stage: dict[str, Any]) -> str:
    scale = stage.get("lr_scale") or {}
    return f"{scale['vision_tower']:g}" if "vision_tower" in scale else ""


def _gate(stage: dict[str, Any]) -> str:
    trains = stage.get("t_selector_straight_through")
    return "" if trains is None else ("trained" if trains else "held")


# OpenCV's CSRT (opencv-contrib-python-headless 5.1, untrained, one thread) on `elysium heldout`'s own held-out set
# (seed 1001, 60 videos, 186 tracks, the first 16 frames, got10k protocol), measured once by
# `python benchmarks/csrt_baseline.py`: it depends on the data and OpenCV only, not on the model.
CSRT_HELDOUT = {"tracks": 186, "seed": 1001, "success_auc": 0.765, "precision_20px": 0.948}


def classical_tracker(report: dict[str, Any] | None) -> str:
    """The card's section with CSRT beside the model on the same tracks (only for the held-out set CSRT ran on)."""
    if report is None or report.get("settings", {}).get("seed") != CSRT_HELDOUT["seed"]:
        return ""
    name, scores = next(iter(report["models"].items()))
    baseline = report["baselines"]["sot_first_box"]
    rows = [("OpenCV CSRT", CSRT_HELDOUT), (name, scores["sot"]), ("first box repeated", baseline)]
    table = "\n".join(f"| {n} | {100 * s['success_auc']:.1f} | {100 * s['precision_20px']:.1f} |" for n, s in rows)
    return f"""### Beside a classical tracker

OpenCV's CSRT (untrained, one thread) on the same {CSRT_HELDOUT["tracks"]} held-out tracks, the same first 16 frames
and the same scoring (got10k protocol), from the first box:

| SOT (x100) | AUC | precision (20 px) |
| :-- | --: | --: |
{table}

`pip install -e ".[bench]" && python benchmarks/csrt_baseline.py --report docs/elysium-tiny/heldout/report.json`
(it generates the held-out set as `elysium heldout` does). How the model got here, version by version: the
package's `docs/elysium-tiny/history.md`.
"""


def tiny_card(generic: str, recipe: dict[str, Any], report: dict[str, Any] | None) -> str:
    """The export's card (usage, prompt and box format) with what elysium-tiny is and how well it does first."""
    head, _, rest = generic.partition("\n# Elysium\n")
    rest = rest.replace(
        REMOTE_CODE_SENTENCE,
        "This folder carries no code: the `elysium` package loads it (its classes register with the Auto classes);\n"
        "`elysium export --model models/elysium-tiny --out DIR` writes a copy that loads with `trust_remote_code`.",
    )
    stages = "\n".join(
        f"| {s['name']} | {', '.join(s['sources'])} | {_clip_frames(s)} | {_crops(s)} "
        f"| {s.get('image_size') or ''} | {s.get('t_selector_tokens') or ''} | {s['steps']} | {s['batch_size']} "
        f"| {s['learning_rate']:g} "
        f"| {_vision_rate(s)} | {_gate(s)} |"
        for s in recipe["stages"]
    )
    quality = (
        "No held-out report was given."
        if report is None
        else "\n\n".join(
            [
                "Scores x100 on held-out generated videos (a seed training never used), each beside a trivial "
                "baseline computed in the same run:",
                scores_table(report),
                "SOT success AUC with and without each condition:",
                conditions_table(report),
            ]
        )
    )
    return f"""{head}
# elysium-tiny

The default model of the `elysium` package: a small Elysium (CLIP-style vision tower and Llama, trained from
scratch) that runs on a CPU with no download. It was trained by the package's own `training/sft.py` on generated
videos only (`synthetic/`: colored shapes with nameable attributes, motion, occlusion, distractors), so it
knows those objects and nothing else: use it to try the package end to end, not on real footage.

**What it is for: a demo of the pipeline, not a tracker.** It beats trivial baselines on generated scenes, but an
untrained classical tracker (OpenCV's CSRT) beats it by far on the same held-out tracks (below), and it cannot
follow a real object such as a face: it has only ever seen coloured shapes. For real video, use Elysium-7B.

## Recipe

`{recipe["command"]}` (`{recipe["config"]}`): data seed {recipe["data_seed"]}, {recipe["data"]["videos"]} videos;
stage 1 on images (REC/REG on position-only squares, `synthetic/squares.py`, then on the videos' first frames),
stage 2 on SOT/RSOT/Video-REG clips mixed with the images ("clip frames": the clips' lengths where the stage had
clips; the model tracks in clips of the last such stage's longest, `track_clip_len` in `config.json`).
Where the table says so, images or clips were cut to a square that many times the target's size around it; a model
trained on such clips records it (`track_search_context` in `config.json`) and `ElysiumTracker` then cuts every clip
around the target's last box the same way (`--search-context none` tracks on whole frames). "Frame px": the side
frames are resized to, where a stage changed it (blank: as before; the patches keep their size, CLIP's position table is
interpolated to the new grid and a selector that kept every patch keeps every patch of it). "Tokens a frame": where
a stage changed the T-Selector's count (blank: the model's `t_selector_tokens` before it). "Vision rate": the vision
tower's and projector's learning rate as a share of the stage's. "Gate": whether the T-Selector's gate trained
(its straight-through gradient) or was held (blank: as the stage before).
Training curves: `training_curves.png` / `.json` in this folder; the full record: `elysium_recipe.json`.

| stage | data | clip frames | cut around the target | frame px | tokens a frame | steps | batch | learning rate \
| vision rate | gate |
| :-- | :-- | :-- | :-- | --: | --: | --: | --: | --: | --: | :-- |
{stages}

## Held-out quality

{quality}

Read these against the baselines: where the model does not beat them it does not track yet.

{classical_tracker(report)}

# Elysium
{rest}"""


def drop_remote_code(folder: Path) -> None:
    """Undo `make_hub_ready`'s additions: the flat code copies and the `auto_map`s pointing at them. The package
    loads its default model with its own classes, and a copy of the code beside them would only go stale."""
    for name in [path.name for path in code_files()] + list(pipeline_files()):
        (folder / name).unlink(missing_ok=True)
    for name in ("config.json", "processor_config.json", "preprocessor_config.json"):
        file = folder / name
        if file.is_file():
            data = json.loads(file.read_text())
            data.pop("auto_map", None)
            data.pop("custom_pipelines", None)
            if isinstance(data.get("image_processor"), dict):
                data["image_processor"].pop("auto_map", None)
            write_json_atomic(file, data)


def ship(
    run: Path,
    out: Path,
    heldout: Path | None = None,
    compare: list[Path] | None = None,
    config_path: str = CONFIG,
    views: int | None = None,
    box_scale: float | None = None,
) -> Path:
    """Write `out` (replaced whole) from a run folder of the recipe at `config_path` (repository-relative)."""
    config = load_config(Path(__file__).resolve().parents[1] / config_path)
    record = read_run(run)
    final = run / record["stages"][-1]["name"] / "final"
    if not (final / "config.json").is_file():
        raise FileNotFoundError(f"{final} has no saved model: let the run finish (re-run its command to resume)")
    report = json.loads(heldout.read_text()) if heldout else None
    recipe = recipe_record(record, config, config_path, report)
    runs = [record] + [read_run(other) for other in compare or []]

    from elysium.modeling_elysium import ElysiumConfig
    from elysium.processing import ElysiumProcessor

    with atomic_folder(out, overwrite=True) as tmp:
        shutil.copytree(final, tmp, dirs_exist_ok=True)
        (tmp / "training_args.bin").unlink(missing_ok=True)  # a pickle of the Trainer's arguments: not for users
        drop_remote_code(tmp)
        set_tracker_defaults(tmp, views, box_scale)
        write_json_atomic(tmp / "elysium_recipe.json", recipe)
        write_curves(tmp, runs)
        (tmp / "model.safetensors").chmod(0o644)  # save_pretrained writes 0600; installed data must be readable
        generic = model_card(
            ElysiumConfig.from_pretrained(tmp), ElysiumProcessor.from_pretrained(tmp), repo_id=str(out)
        )
        (tmp / "README.md").write_text(tiny_card(generic, recipe, report), encoding="utf-8")
        size = sum(p.stat().st_size for p in tmp.rglob("*") if p.is_file())
        if size > SIZE_LIMIT:
            raise ValueError(f"the model folder is {size / 2**20:.1f} MB; the package ships at most 30 MB")
    return out


def write_curves(folder: Path, runs: list[dict[str, Any]]) -> None:
    """The runs' logs (`training_curves.json`) and their plot (`training_curves.png`), the shipped run first."""
    write_json_atomic(folder / "training_curves.json", runs)
    plot_runs(runs, folder / "training_curves.png")


def set_tracker_defaults(folder: Path, views: int | None = None, box_scale: float | None = None) -> None:
    """`track_views` and `track_box_scale` in `folder`'s `config.json` (the tracker's defaults; checked by the
    config), where given, and only those keys: a re-save would also rewrite what the run saved."""
    keys = {k: v for k, v in (("track_views", views), ("track_box_scale", box_scale)) if v is not None}
    if not keys:
        return
    from elysium.modeling_elysium import ElysiumConfig

    config = json.loads((folder / "config.json").read_text())
    write_json_atomic(folder / "config.json", {**config, **keys})
    ElysiumConfig.from_pretrained(folder)


def refresh(
    folder: Path,
    heldout: Path,
    views: int | None = None,
    compare: list[Path] | None = None,
    box_scale: float | None = None,
) -> Path:
    """Give a shipped `folder` a new held-out report (record and card), with `views` and `box_scale` its tracker
    defaults, and with `compare` new runs drawn beside its own training curve (the shipped run's record is kept,
    its folder is gone)."""
    from elysium.modeling_elysium import ElysiumConfig
    from elysium.processing import ElysiumProcessor

    if not (folder / "elysium_recipe.json").is_file():
        raise FileNotFoundError(f"{folder} has no elysium_recipe.json: it was not shipped by this script")
    report = json.loads(heldout.read_text())
    with atomic_folder(folder, overwrite=True) as tmp:
        shutil.copytree(folder, tmp, dirs_exist_ok=True)
        recipe = json.loads((tmp / "elysium_recipe.json").read_text())
        recipe["heldout"] = compact_report(report)
        write_json_atomic(tmp / "elysium_recipe.json", recipe)
        set_tracker_defaults(tmp, views, box_scale)
        if compare:
            runs = json.loads((tmp / "training_curves.json").read_text())[:1] + [read_run(run) for run in compare]
            write_curves(tmp, runs)
        config = ElysiumConfig.from_pretrained(tmp)
        generic = model_card(config, ElysiumProcessor.from_pretrained(tmp), repo_id=str(folder))
        (tmp / "README.md").write_text(tiny_card(generic, recipe, report), encoding="utf-8")
    return folder


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--run", type=Path, help="the tiny.yaml run folder (training.output_dir)")
    source.add_argument("--refresh", type=Path, help="a shipped folder to give a new --heldout report")
    parser.add_argument("--out", default=Path("models/elysium-tiny"), type=Path)
    parser.add_argument("--heldout", type=Path, default=None, help="report.json of `elysium heldout`")
    parser.add_argument("--compare", type=Path, nargs="*", default=[], help="other runs drawn beside it")
    parser.add_argument("--views", type=int, default=None, help="the tracker's default test-time views")
    parser.add_argument(
        "--box-scale", type=float, default=None, help="the tracker's default widening of the boxes it reports"
    )
    args = parser.parse_args(argv)
    try:
        if args.refresh is not None:
            if args.heldout is None:
                raise ValueError("--refresh needs --heldout: the report to put in the record and card")
            print(refresh(args.refresh, args.heldout, args.views, args.compare, args.box_scale))
        else:
            print(ship(args.run, args.out, args.heldout, args.compare, views=args.views, box_scale=args.box_scale))
    except (FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
