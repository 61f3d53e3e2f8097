"""`elysium data check FILE.jsonl --frames-root DIR`: how many ElysiumTrack records are usable, and why not;
`elysium data synth --out DIR --videos N`: generate synthetic tracking videos in that format (`elysium.synthetic`);
`elysium data squares --out DIR --images N`: position-only grounding images (`elysium.synthetic.squares`)."""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path
from typing import Any

from elysium.synthetic.cli import add_synth_arguments, run_synth
from elysium.synthetic.squares import add_squares_arguments, run_squares
from elysium.utils.atomic import write_json_atomic

from .records import REASONS


def check(args: argparse.Namespace) -> int:
    """Print the summary (and write it with `--output`); exit 1 only if no record is usable."""
    from .records import load_track_records

    dataset = load_track_records(args.files, frames_root=args.frames_root)
    tally = Counter(dataset["_problem"])
    used = tally.get("", 0)
    summary: dict[str, Any] = {
        "records": len(dataset),
        "usable": used,
        "skipped": len(dataset) - used,
        "by_reason": {reason: tally.get(reason, 0) for reason in REASONS if tally.get(reason)},
    }
    if args.decode:
        unreadable = _decode_check(dataset, args.frames_root)
        summary["by_reason"].update(unreadable)
        used -= sum(unreadable.values())
        summary.update(usable=used, skipped=len(dataset) - used)
    print(json.dumps(summary, indent=1))
    if args.output:
        write_json_atomic(args.output, summary, sort_keys=True)
    return 0 if used else 1


def _decode_check(dataset: Any, frames_root: str | None) -> dict[str, int]:
    """Decode every frame of the usable records (slow; `--decode`) and count those with unreadable images."""
    from .frames import FrameStore
    from .records import UNREADABLE

    frames = FrameStore.from_path(frames_root)
    bad = 0
    for row in dataset.filter(lambda p: p == "", input_columns="_problem"):
        try:
            for path in row["frames"]:
                frames.open_image(path)
        except OSError:
            bad += 1
    return {UNREADABLE: bad} if bad else {}


def add_parser(subparsers: Any) -> None:
    """Register `data check`, `data synth` and `data squares` with the `elysium` command."""
    data = subparsers.add_parser("data", help="inspect or generate training data")
    data_sub = data.add_subparsers(dest="data_command", metavar="SUBCOMMAND")
    check_parser = data_sub.add_parser("check", help="validate ElysiumTrack JSONL records and count bad ones by reason")
    check_parser.add_argument("files", nargs="+", help="ElysiumTrack-1M JSON lines file(s)")
    check_parser.add_argument("--frames-root", help="folder of frames, or of .tar/.tar.gz shards (frames/<vid>/...)")
    check_parser.add_argument("--decode", action="store_true", help="also decode every frame (slow)")
    check_parser.add_argument("--output", type=Path, help="write the summary JSON here too (atomically)")
    check_parser.set_defaults(run=check)
    synth_parser = data_sub.add_parser(
        "synth", help="generate synthetic tracking videos with exact boxes, expressions and descriptions"
    )
    add_synth_arguments(synth_parser)
    synth_parser.set_defaults(run=run_synth)
    squares_parser = data_sub.add_parser("squares", help="generate position-only grounding images of one square")
    add_squares_arguments(squares_parser)
    squares_parser.set_defaults(run=run_squares)
