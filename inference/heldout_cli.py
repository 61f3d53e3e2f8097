"""`elysium heldout`: score one or more trained models on held-out generated videos, each beside trivial baselines.

Why: a model trained on generated data must be judged on videos of a seed it never saw, in the same run as the
baselines, with the hard cases (small objects, occlusion, distractors) broken out and drawn, and several trainings
side by side. Writes OUT/report.json, OUT/report.md and OUT/failures/<model>/*.png, and each model's result as
it finishes (OUT/models/<model>.json), which a re-run with the same weights, tracks and settings reuses.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import re
import sys
import time
from pathlib import Path
from typing import Any

from elysium.inference.track_cli import add_search_arguments, add_trust_argument, tracker_from_args
from elysium.utils.errors import UserError, check_at_least, check_out_folder

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
SYNTH_SIZE = (160, 120)
SYNTH_FRAMES = (24, 48)


def parse_models(specs: list[str] | None) -> dict[str, str | None]:
    """`NAME=PATH` or bare `PATH` (named after its folder) -> {name: path}; none -> the package's default model."""
    if not specs:
        from elysium.inference.default_model import DEFAULT_MODEL

        return {Path(DEFAULT_MODEL).name if DEFAULT_MODEL else "default": None}
    models: dict[str, str | None] = {}
    for spec in specs:
        if "=" in spec and not Path(spec).is_dir():
            name, path = spec.split("=", 1)
            if not _NAME.match(name) or not path:
                raise UserError(
                    f"--model {spec!r}: give NAME=PATH with a NAME of letters, digits, '.', '_' or '-' "
                    "(it names a report column and a folder) and a PATH, or a bare PATH"
                )
        else:
            path = spec
            name = re.sub(r"[^A-Za-z0-9._-]", "_", Path(spec).resolve().name) or "model"
        if name in models:
            raise UserError(f"--model: two models are named {name!r}; name them with NAME=PATH")
        if not Path(path).is_dir():
            raise UserError(f"--model {spec!r}: model folder {path} does not exist")
        models[name] = path
    return models


def _synth_seed(data: Path) -> int | None:
    """The seed a generated folder was made with (its synth_config.json), or None for other data."""
    try:
        return int(json.loads((data / "synth_config.json").read_text())["seed"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _count_videos(annotations: Path, ids: set[str]) -> int:
    """How many videos the scored tracks come from (records of one video share its `vid`)."""
    videos = set()
    for line in Path(annotations).read_text(encoding="utf-8-sig").splitlines():
        record = json.loads(line)
        if record["id"] in ids:
            videos.add(record.get("vid", record["id"]))
    return len(videos)


def _check_numbers(args: argparse.Namespace) -> None:
    check_at_least(
        [
            ("--videos", args.videos, 1),
            ("--tracks", args.tracks, 1),
            ("--max-frames", args.max_frames, 2),
            ("--clip-len", args.clip_len, 2),
            ("--batch-size", args.batch_size, 1),
            ("--failures", args.failures, 0),
            ("--max-new-tokens", args.max_new_tokens, 1),
        ]
    )
    check_out_folder(args.out)


def prepare_data(args: argparse.Namespace, out: Path) -> tuple[Path, dict[str, Any]]:
    """The annotations file to score (generating the held-out set unless `--data`) and the data's settings."""
    if args.data is not None:
        data = Path(args.data)
        if not data.is_dir():
            raise UserError(f"--data {data}: folder not found")
        if not (data / "annotations.jsonl").is_file():
            raise UserError(f"--data {data}: no annotations.jsonl in it (an ElysiumTrack-format folder is needed)")
        seed = _synth_seed(data)
        if seed is not None and seed == args.train_seed:
            raise UserError(
                f"--data {data} was generated with seed {seed}, the training seed (--train-seed): it is not held out"
            )
        return data / "annotations.jsonl", {"data": str(data), "generated": False, "seed": seed}
    if args.seed == args.train_seed:
        raise UserError(
            f"--seed {args.seed} is the training seed (--train-seed {args.train_seed}): those videos were trained on; "
            "pick another seed (1001 for the README report)"
        )
    from elysium.synthetic import synthesize

    data = out / "data"
    try:
        summary = synthesize(
            data, args.videos, args.seed, frames_per_video=SYNTH_FRAMES, size=SYNTH_SIZE, progress=not args.quiet
        )
    except ValueError as error:
        raise UserError(str(error)) from None
    settings = {
        "data": str(data),
        "generated": True,
        "seed": args.seed,
        "synth": {"size": list(SYNTH_SIZE), "frames_per_video": list(SYNTH_FRAMES), "records": summary.records},
    }
    return summary.annotations, settings


def evaluate_model(
    name: str, path: str | None, tracks: list[Any], args: argparse.Namespace, out: Path
) -> tuple[dict[str, Any], dict[str, Any]]:
    """One model's report (scores, per-track IoU, failure cases) and the baselines its run computed."""
    from elysium.evaluation.failure_cases import FAILURE_CONDITIONS, write_failure_cases
    from elysium.evaluation.heldout import CONDITIONS, mean_ious, score_heldout
    from elysium.inference.benchmark_runner import track_heldout
    from elysium.inference.loading import load_model_and_processor

    start = time.perf_counter()
    model, processor = load_model_and_processor(path, args.device, trust_remote_code=args.trust_remote_code)
    tracker = tracker_from_args(model, processor, args)
    predictions = track_heldout(tracker, tracks, args.batch_size, progress=not args.quiet)
    report = score_heldout(tracker, tracks, predictions, captions=not args.no_captions, progress=not args.quiet)
    report["search_context"] = tracker.search_context  # what "model" resolved to: None = whole frames
    report["clip_len"] = tracker.clip_len
    report["views"] = tracker.views
    report["box_scale"] = tracker.box_scale
    del tracker, model
    gc.collect()
    baselines = {
        "sot_first_box": report.pop("sot_baseline_first_box"),
        "rsot_central_box": report.pop("rsot_baseline_central_box"),
    }
    if "video_reg_baseline_most_common" in report:
        baselines["video_reg_most_common"] = report.pop("video_reg_baseline_most_common")
    sot_ious, rsot_ious = mean_ious(predictions.sot, tracks), mean_ious(predictions.rsot, tracks)
    report["per_track"] = [
        {
            "id": track.id,
            "conditions": [c for c in FAILURE_CONDITIONS if CONDITIONS[c](track)],
            "sot_mean_iou": round(sot, 4),
            "rsot_mean_iou": round(rsot, 4),
        }
        for track, sot, rsot in zip(tracks, sot_ious, rsot_ious)
    ]
    cases = write_failure_cases(
        tracks,
        {"sot": predictions.sot, "rsot": predictions.rsot},
        out / "failures" / name,
        model=name,
        per_condition=args.failures,
    )
    report["failures"] = [case.to_dict(root=out) for case in cases]
    report = {"path": str(path) if path is not None else "default", **report}
    report["elapsed_s"] = round(time.perf_counter() - start, 1)
    return report, baselines


def result_key(path: str | None, tracks: list[Any], args: argparse.Namespace) -> str:
    """What one model's finished result depends on (its weights and config as saved, the tracks, the tracker's
    settings), as a digest: a re-run with the same key reuses the result instead of tracking again."""
    from dataclasses import fields

    from elysium.evaluation.heldout import SCORING
    from elysium.inference.default_model import DEFAULT_MODEL
    from elysium.inference.loading import model_fingerprint
    from elysium.inference.tracker_settings import TrackerSettings

    key = {
        **model_fingerprint(path or DEFAULT_MODEL),
        "tracks": [[t.id, len(t.frames)] for t in tracks],
        # every tracker setting, as its flag asked (a setting without a flag: None), so a new one is never missed
        **{f.name: getattr(args, f.name, None) for f in fields(TrackerSettings)},
        "failures": args.failures,
        "device": args.device,
        "captions": not args.no_captions,
        "scoring": SCORING,
    }
    return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()


def finished_result(file: Path, key: str, out: Path) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """A model's saved `(report, baselines)` if `file` holds one for `key` whose failure images are all there."""
    try:
        saved = json.loads(file.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(saved, dict) or saved.get("key") != key:
        return None
    if not all((out / case["path"]).is_file() for case in saved["report"].get("failures", [])):
        return None
    return saved["report"], saved["baselines"]


def run_heldout(args: argparse.Namespace) -> int:
    from elysium.evaluation.heldout import PROTOCOL, breakdown, first_boxes, load_tracks
    from elysium.evaluation.heldout_report import conditions_table, markdown_report, scores_table
    from elysium.inference.loading import resolve_device
    from elysium.utils.atomic import write_json_atomic, write_text_atomic

    start = time.perf_counter()
    _check_numbers(args)
    models = parse_models(args.model)
    resolve_device(args.device)  # a bad --device fails before any work
    if not args.no_captions:
        from elysium.evaluation.captions import JavaNotFoundError, require_java

        try:
            require_java()
        except JavaNotFoundError as error:
            raise UserError(f"{error}; or pass --no-captions to skip Video-REG") from None
    out = Path(args.out)
    annotations, data_settings = prepare_data(args, out)
    try:
        tracks = load_tracks(annotations, limit=args.tracks, max_frames=args.max_frames)
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise UserError(f"{annotations}: not a readable ElysiumTrack annotations file ({error})") from None
    if not tracks:
        raise UserError(f"{annotations}: no track records")
    if not args.no_captions and len(tracks) < 2:
        raise UserError("Video-REG's CIDEr-D needs at least two tracks; raise --tracks or pass --no-captions")

    # Each model's result is saved as it finishes (OUT/models/NAME.json), so a run stopped part way, or re-run with
    # one more model, tracks only what it has not scored with these weights, tracks and settings.
    report: dict[str, Any] = {"settings": {}, "baselines": {}, "models": {}}
    for name, path in models.items():
        file, key = out / "models" / f"{name}.json", result_key(path, tracks, args)
        result = finished_result(file, key, out)
        if result is not None:
            print(f"{name}: reusing its finished result ({file})", file=sys.stderr)
        else:
            if not args.quiet:
                print(f"evaluating {name} ({path or 'the default model'}) on {len(tracks)} tracks", file=sys.stderr)
            result = evaluate_model(name, path, tracks, args, out)
            write_json_atomic(file, {"key": key, "report": result[0], "baselines": result[1]})
        report["models"][name], report["baselines"] = result
    report["baselines"]["sot_by_condition_first_box"] = breakdown(first_boxes(tracks), tracks)
    report["settings"] = {
        **data_settings,
        "train_seed": args.train_seed,
        "videos": _count_videos(annotations, {t.id for t in tracks}),
        "tracks": len(tracks),
        "max_frames": args.max_frames,
        "frames": sum(len(t.frames) for t in tracks),
        "clip_len": args.clip_len,
        "search_context": args.search_context,
        "views": args.views,
        "box_scale": args.box_scale,
        "decoder": args.decoder,
        "protocol": PROTOCOL,
        "captions": not args.no_captions,
        "batch_size": args.batch_size,
        "device": str(resolve_device(args.device)),
        "elapsed_s": round(time.perf_counter() - start, 1),
    }
    json_path = write_json_atomic(out / "report.json", report)
    md_path = write_text_atomic(out / "report.md", markdown_report(report))
    print(scores_table(report))
    print()
    print(conditions_table(report))
    print()
    print(f"wrote {json_path}")
    print(f"wrote {md_path}")
    images = {case["path"] for m in report["models"].values() for case in m["failures"]}
    print(f"wrote {len(images)} failure-case images under {out / 'failures'}")
    return 0


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "heldout",
        help="score models on held-out generated videos beside trivial baselines, with failure-case images",
        description="Generate held-out videos (a seed training never used) or read an ElysiumTrack folder, run each "
        "model for SOT (first-frame box), RSOT (expression) and Video-REG, and write OUT/report.json, OUT/report.md "
        "(each score beside its baseline, SOT by condition) and OUT/failures/<model>/*.png.",
    )
    parser.add_argument(
        "--model",
        action="append",
        metavar="NAME=PATH",
        help="a saved model, as NAME=PATH or a bare PATH (named after its folder); repeat to compare several "
        "(default: the package's model)",
    )
    parser.add_argument("--data", default=None, metavar="DIR", help="an ElysiumTrack folder with annotations.jsonl")
    parser.add_argument(
        "--seed", type=int, default=1001, help="seed of the generated held-out set (default 1001; not with --data)"
    )
    parser.add_argument("--videos", type=int, default=60, help="videos to generate (default 60; not with --data)")
    parser.add_argument("--train-seed", type=int, default=1, help="the seed training used, refused here (default 1)")
    parser.add_argument("--tracks", type=int, default=None, help="score only the first N tracks")
    parser.add_argument("--max-frames", type=int, default=16, help="frames a track (default 16)")
    parser.add_argument(
        "--clip-len", type=int, default=None, help="frames a clip (default: as each model was trained, else 8)"
    )
    add_search_arguments(parser)
    parser.add_argument("--batch-size", type=int, default=8, help="tracks tracked together (default 8)")
    parser.add_argument("--max-new-tokens", type=int, default=None, help="cap on generated tokens a clip")
    parser.add_argument("--failures", type=int, default=2, help="failure images per condition and task (default 2)")
    parser.add_argument("--no-captions", action="store_true", help="skip Video-REG (METEOR needs Java)")
    parser.add_argument("--out", default="heldout-report", metavar="DIR", help="output folder (default heldout-report)")
    parser.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: cuda if present)")
    add_trust_argument(parser)
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.set_defaults(run=run_heldout)
