"""`elysium data build`: options and the run (registered beside `data check` in training/data_cli.py).

Heavy imports (transformers, spaCy, datasets) happen in `run_build`, so `elysium --help` stays fast.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from .filters import KALMAN_GATE_999, PAPER_DETECTOR_THRESHOLD, PAPER_IOU_THRESHOLD, PAPER_TRACKER_THRESHOLD

REPLAY = "replay:"


def add_build_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `elysium data build`."""
    parser.add_argument("--videos", help="folder of videos (files or frame folders); caption paths are relative to it")
    parser.add_argument(
        "--captions",
        required=True,
        help="JSON lines: {video, caption[, id][, chunks]}; `chunks` (a list) skips spaCy for that line",
    )
    parser.add_argument(
        "--detector",
        required=True,
        help="zero-shot detector: Hub name or folder (AutoModelForZeroShotObjectDetection: Grounding DINO, "
        "OWLv2), e.g. IDEA-Research/grounding-dino-base; or replay:ANNOTATIONS.jsonl (known boxes, for tests)",
    )
    parser.add_argument(
        "--tracker",
        required=True,
        help="video tracker: Hub name or folder (SAM 2 video, EdgeTAM), e.g. facebook/sam2.1-hiera-tiny; "
        "or replay:ANNOTATIONS.jsonl",
    )
    parser.add_argument("--out", required=True, type=Path, help="output folder (rerun the command to resume)")
    parser.add_argument("--spacy-model", default="en_core_web_sm", help="spaCy pipeline (default en_core_web_sm)")
    parser.add_argument(
        "--detector-threshold",
        type=float,
        default=PAPER_DETECTOR_THRESHOLD,
        help="keep a chunk when the detector scores it above this on the first, middle and last frames "
        "(default %(default)s, the paper's)",
    )
    parser.add_argument(
        "--tracker-threshold",
        type=float,
        default=PAPER_TRACKER_THRESHOLD,
        help="keep a trajectory whose tracking confidence (SAM 2: sigmoid of the object score) stays above this on "
        "every frame (default %(default)s, the paper's)",
    )
    parser.add_argument(
        "--iou-threshold",
        type=float,
        default=PAPER_IOU_THRESHOLD,
        help="drop a trajectory whose IoU with the detector's box at the middle or last frame is below this "
        "(default %(default)s, the paper's)",
    )
    parser.add_argument(
        "--kalman-gate",
        type=float,
        default=KALMAN_GATE_999,
        help="drop a trajectory whose Kalman-filter innovation (NIS, chi-square with 4 dof) exceeds this on a frame "
        "(default %(default)s: the 99.9%% quantile; the paper gives no number)",
    )
    parser.add_argument("--stride", type=int, default=1, help="use every STRIDE-th frame (default 1)")
    parser.add_argument("--max-frames", type=int, default=None, help="at most this many frames per video")
    parser.add_argument("--min-frames", type=int, default=8, help="skip videos shorter than this (default 8)")
    parser.add_argument("--shard-size", type=int, default=16, help="videos per shard, the unit of resuming (16)")
    parser.add_argument("--batch-videos", type=int, default=4, help="videos per map batch (detector batch) (4)")
    parser.add_argument("--detector-batch-size", type=int, default=8, help="images per detector forward (8)")
    parser.add_argument("--dtype", choices=("float32", "bfloat16", "float16"), default="float32", help="model dtype")
    parser.add_argument("--preview", type=int, default=0, metavar="N", help="write N annotated clips to OUT/preview")
    parser.add_argument("--source", default="elysium-data-engine", help="the records' `source` field")
    parser.add_argument("--replay-noise", type=float, default=0.01, help="replay stand-ins: box noise (box sizes)")
    parser.add_argument("--replay-drift", type=float, default=0.0, help="replay tracker: fraction of drifting tracks")
    parser.add_argument("--replay-drift-kind", choices=("slide", "jump"), default="slide", help="replay drift kind")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def _components(args: argparse.Namespace, device: Any) -> tuple[Any, Any]:
    import torch

    from .detect import TransformersDetector
    from .replay import ReplayDetector, ReplayTracker
    from .track import TransformersVideoTracker

    dtype = getattr(torch, args.dtype)
    if args.detector.startswith(REPLAY):
        detector = ReplayDetector(args.detector[len(REPLAY) :], noise=args.replay_noise)
    else:
        detector = TransformersDetector.from_pretrained(
            args.detector, device=device, dtype=dtype, batch_size=args.detector_batch_size
        )
    if args.tracker.startswith(REPLAY):
        tracker = ReplayTracker(
            args.tracker[len(REPLAY) :],
            noise=args.replay_noise,
            drift_fraction=args.replay_drift,
            drift=args.replay_drift_kind,
        )
    else:
        tracker = TransformersVideoTracker.from_pretrained(args.tracker, device=device, dtype=dtype)
    return detector, tracker


def run_build(args: argparse.Namespace) -> int:
    """Build the dataset; prints the summary (funnel counts) as JSON. Exit 2 on bad input, 1 if nothing was kept."""
    from accelerate import PartialState

    from .chunks import SpacyChunker
    from .engine import BuildConfig, build, read_inputs
    from .filters import FunnelThresholds

    thresholds = FunnelThresholds(args.detector_threshold, args.tracker_threshold, args.iou_threshold, args.kalman_gate)
    try:
        thresholds.check()
        if args.stride < 1 or args.shard_size < 1 or args.batch_videos < 1 or args.min_frames < 2:
            raise ValueError("--stride, --shard-size and --batch-videos must be >= 1, --min-frames >= 2")
        if not Path(args.captions).is_file():
            raise ValueError(f"--captions {args.captions}: no such file")
        if args.videos is not None and not Path(args.videos).is_dir():
            raise ValueError(f"--videos {args.videos}: no such folder")
        rows = read_inputs(args.captions, args.videos)
        if not rows:
            raise ValueError(f"--captions {args.captions} lists no video")
        needs_parse = any(json.loads(row["chunks"]) is None and not row["problem"] for row in rows)
        chunker = SpacyChunker.load(args.spacy_model) if needs_parse else None
    except (ValueError, ImportError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    from accelerate.utils import parse_flag_from_env

    # As `Accelerator` does: `accelerate launch --cpu` (or ACCELERATE_USE_CPU=1) asks for CPU processes (gloo).
    state = PartialState(cpu=parse_flag_from_env("ACCELERATE_USE_CPU"))
    detector, tracker = _components(args, state.device)
    config = BuildConfig(
        out=args.out,
        shard_size=args.shard_size,
        batch_videos=args.batch_videos,
        stride=args.stride,
        max_frames=args.max_frames,
        min_frames=args.min_frames,
        preview=args.preview,
        source=args.source,
        thresholds=thresholds,
        progress=not args.no_progress,
    )
    try:
        summary = build(rows, chunker, detector, tracker, config, state)
    except RuntimeError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if summary is None:
        return 0
    print(json.dumps(summary, indent=1))
    return 0 if summary["funnel"]["trajectories_written"] else 1
