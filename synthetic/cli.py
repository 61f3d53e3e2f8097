"""`elysium data synth`: the options and the command that runs `synthesize`."""

from __future__ import annotations

import argparse
import json
import sys

from .scenes import SynthConfig
from .writer import synthesize

__all__ = ["add_synth_arguments", "run_synth"]


def _pair(text: str, sep: str, what: str) -> tuple[int, int]:
    try:
        a, b = (int(v) for v in text.lower().split(sep))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{what} {text!r}: give two integers as A{sep}B") from None
    return a, b


def add_synth_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `elysium data synth`."""
    parser.add_argument("--out", required=True, help="folder to write frames/ and annotations.jsonl into")
    parser.add_argument("--videos", type=int, required=True, help="number of videos")
    parser.add_argument("--seed", type=int, default=0, help="seed (default 0); same seed, same files")
    parser.add_argument(
        "--size", type=lambda s: _pair(s, "x", "size"), default=(160, 120), help="frame WxH (default 160x120)"
    )
    parser.add_argument(
        "--frames",
        type=lambda s: _pair(s, ",", "frames"),
        default=(24, 48),
        help="frames per video MIN,MAX (default 24,48)",
    )
    parser.add_argument(
        "--objects", type=lambda s: _pair(s, ",", "objects"), default=(2, 4), help="objects per video MIN,MAX"
    )
    parser.add_argument("--tracks-per-video", type=int, default=None, help="records per video (default: every object)")
    parser.add_argument("--min-track-frames", type=int, default=8, help="shortest track written (frames in view)")
    parser.add_argument("--no-photos", action="store_true", help="procedural backgrounds only (same pixels everywhere)")
    parser.add_argument("--quality", type=int, default=90, help="JPEG quality (default 90)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run_synth(args: argparse.Namespace) -> int:
    """Run `synthesize` from parsed CLI options; prints a one-line JSON summary. Exit code 2 on bad settings."""
    config = SynthConfig(
        objects_per_video=tuple(args.objects),
        tracks_per_video=args.tracks_per_video,
        min_track_frames=args.min_track_frames,
        photos=not args.no_photos,
        jpeg_quality=args.quality,
    )
    try:
        summary = synthesize(
            args.out,
            args.videos,
            args.seed,
            frames_per_video=tuple(args.frames),
            size=tuple(args.size),
            config=config,
            progress=not args.no_progress,
        )
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(json.dumps(summary.as_dict()))
    return 0
