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

from elysium.utils.errors import UserError

_COMMAND_MODULES = [
    "elysium.hub.cli",
    "elysium.inference.track_cli",
    "elysium.inference.demo_cli",
    "elysium.inference.eval_cli",
    "elysium.evaluation.cli",
    "elysium.inference.heldout_cli",
    "elysium.training.data_cli",
]


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
