"""The ``elysium`` command: one entry point, each subcommand defined beside the code it drives.

Each module listed in ``COMMAND_MODULES`` has ``add_parser(subparsers)`` that registers its subcommands with
``set_defaults(run=callable)``; the callable takes the parsed args and returns an exit code. A subcommand that
passes ``--section.key value`` overrides on (``train``) also sets ``overrides=True``: the arguments the parser does
not know reach it as ``args.overrides``. Errors a user can fix are raised as ``UserError`` (``elysium.utils.errors``)
or one of ``user_errors()`` and printed as one line, never as a traceback, with exit code 2.

This package is the top of the layout: it may import every other folder, and none imports it.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from elysium.utils.errors import UserError

__all__ = ["COMMAND_MODULES", "UserError", "build_parser", "main"]

COMMAND_MODULES = [
    "elysium.hub.cli",
    "elysium.inference.track_cli",
    "elysium.inference.demo_cli",
    "elysium.inference.eval_cli",
    "elysium.evaluation.cli",
    "elysium.inference.heldout_cli",
    "elysium.training.data_cli",
    "elysium.training.train_cli",
    "elysium.training.curves",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="elysium", description="Track, describe and ground objects in videos with Elysium."
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as error:
            if error.name != name:  # a real missing dependency inside the module
                raise
            continue
        module.add_parser(subparsers)
    return parser


def user_errors() -> tuple[type[Exception], ...]:
    """The errors a user can fix: printed as one line with exit code 2 (processing's own error types stay
    importable without this package's utils, so they are named here)."""
    from elysium.processing.boxes import BoxError
    from elysium.processing.video import VideoError

    return (UserError, BoxError, VideoError, FileNotFoundError)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and not getattr(args, "overrides", False):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if getattr(args, "overrides", False):
        args.overrides = extra
    if not getattr(args, "run", None):
        parser.print_help()
        return 2
    try:
        return int(args.run(args) or 0)
    except user_errors() as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
