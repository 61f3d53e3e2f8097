"""The error type of the `elysium` command's subcommands and the argument checks that raise it, importable without
loading a model."""

from __future__ import annotations

from pathlib import Path

__all__ = ["UserError", "check_at_least", "check_out_folder"]


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
    if path is not None and Path(path).exists() and not Path(path).is_dir():
        raise UserError(f"{option} {path} is a file, not a folder; give a folder (it is created if missing).")
