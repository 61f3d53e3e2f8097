"""`elysium data check FILE.jsonl --frames-root DIR`: how many ElysiumTrack records are usable, and why not;
`elysium data synth --out DIR --videos N`: generate synthetic tracking videos in that format (`elysium.synthetic`);
`elysium data squares --out DIR --images N`: position-only grounding images (`elysium.synthetic.squares`);
`elysium data build --captions FILE --detector M --tracker M --out DIR`: the ElysiumTrack data engine (data_engine/)."""

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


def check_jsonl_files(files: list[str]) -> None:
    """Each file must exist and be non-empty text (JSON lines), else one line naming it and the fix; bad lines in a
    text file are counted by the check, not refused here."""
    from elysium.utils.errors import UserError

    for name in files:
        path = Path(name)
        if not path.exists():
            raise UserError(f"{path}: no such file; give an ElysiumTrack JSON-lines file (one record a line).")
        if not path.is_file():
            raise UserError(f"{path} is not a file; give an ElysiumTrack JSON-lines file (one record a line).")
        with open(path, "rb") as handle:
            head = handle.read(1 << 16)
        if not head.strip():
            raise UserError(f"{path} is empty; give an ElysiumTrack JSON-lines file with at least one record.")
        # Binary data (an image, weights) has no line that starts a JSON object; a text file with a few bad lines
        # (NUL bytes, another encoding) has, and its bad lines are counted by the check instead.
        if not any(line.lstrip(b"\xef\xbb\xbf \t").startswith(b"{") for line in head.splitlines()):
            raise UserError(
                f"{path} is not JSON lines (binary data or no JSON object); give an ElysiumTrack JSON-lines file "
                "(one record a line, UTF-8 text)."
            )


def check(args: argparse.Namespace) -> int:
    """Print the summary (and write it with `--output`); exit 1 only if no record is usable."""
    from .records import load_track_records

    check_jsonl_files(args.files)
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


def _out_checked(run: Any) -> Any:
    """`run` after checking that `--out` does not name a file (it would fail part way with a traceback)."""

    def checked(args: argparse.Namespace) -> int:
        from elysium.utils.errors import check_out_folder

        check_out_folder(args.out)
        return run(args)

    return checked


def add_parser(subparsers: Any) -> None:
    """Register `data check`, `data synth`, `data squares`, `data build` and `data replay-captions` with the
    `elysium` command."""
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
    synth_parser.set_defaults(run=_out_checked(run_synth))
    squares_parser = data_sub.add_parser("squares", help="generate position-only grounding images of one square")
    add_squares_arguments(squares_parser)
    squares_parser.set_defaults(run=_out_checked(run_squares))
    from elysium.data_engine.cli import add_build_arguments, run_build

    build_parser = data_sub.add_parser(
        "build", help="build ElysiumTrack records from your videos and captions (the paper's data engine)"
    )
    add_build_arguments(build_parser)
    build_parser.set_defaults(run=_out_checked(run_build))
    from elysium.data_engine.replay import replay_captions, run_replay_captions

    replay_parser = data_sub.add_parser(
        "replay-captions",
        help="captions.jsonl for a synth folder, to run `data build` with replay:ANNOTATIONS models (no weights)",
        description=replay_captions.__doc__,
    )
    replay_parser.add_argument("synth_dir", help="a folder written by `elysium data synth`")
    replay_parser.set_defaults(run=run_replay_captions)
