"""The error type of the `elysium` command's subcommands, importable without loading a model."""

from __future__ import annotations

__all__ = ["UserError"]


class UserError(Exception):
    """A problem with the user's input: printed as ``error: ...`` with exit code 2."""
