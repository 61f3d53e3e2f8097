"""The ``elysium`` command: one entry point, each subcommand defined beside the code it drives.

Each module listed in ``_COMMAND_MODULES`` has ``add_parser(subparsers)`` that registers its
subcommands with ``set_defaults(run=callable)``; the callable takes the parsed args and returns
an exit code. Errors a user can fix are raised as ``UserError`` (or a ``ValueError`` subclass
named in ``_USER_ERRORS``) and printed as one line, never as a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys

_COMMAND_MODULES = [
    "elysium.hub.cli",
    "elysium.inference.track_cli",
    "elysium.inference.demo_cli",
    "elysium.inference.eval_cli",
    "elysium.evaluation.cli",
    "elysium.evaluation.heldout_cli",
    "elysium.training.data_cli",
]


class UserError(Exception):
    """A problem with the user's input: printed as ``error: ...`` with exit code 2."""


def check_at_least(checks: list[tuple[str, int | None, int]]) -> None:
    """`(option, value, least)` triples: a UserError for the first value below its least (None: not given).
    Run right after parsing, before any model loads, so a bad number fails in a second."""
    for option, value, least in checks:
        if value is not None and value < least:
            raise UserError(f"{option} must be >= {least}, got {value}.")


def check_out_folder(path: str | None, option: str = "--out") -> None:
    """An output folder option must not name an existing file (it would fail only after the work is done)."""
    from pathlib import Path

    if path is not None and Path(path).exists() and not Path(path).is_dir():
        raise UserError(f"{option} {path} is a file, not a folder; give a folder (it is created if missing).")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="elysium", description="Track, describe and ground objects in videos with Elysium."
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as error:
            if error.name != name:  # a real missing dependency inside the module
                raise
            continue
        module.add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "run", None):
        parser.print_help()
        return 2
    from elysium.processing.boxes import BoxError
    from elysium.processing.video import VideoError

    try:
        return int(args.run(args) or 0)
    except (UserError, BoxError, VideoError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
