"""Paths read from data files stay inside the folder they are relative to.

A record names its frames by relative path (`frames/<vid>/000000.jpg`); a path like `../../etc/hostname` or an
absolute one would read a file outside the data folder (`--frames-root`, the annotations' folder). Such a record
is refused, never followed.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["PathOutsideRootError", "inside_root"]


class PathOutsideRootError(ValueError):
    """A relative path from a data file that leads outside its root folder."""


def inside_root(root: str | os.PathLike[str], relative: str | os.PathLike[str]) -> Path:
    """`root / relative`, or `PathOutsideRootError` if that path (symlinks not followed) leaves `root`."""
    base = Path(os.path.abspath(root))
    target = Path(os.path.abspath(base / relative))
    if Path(relative).is_absolute() or (target != base and base not in target.parents):
        raise PathOutsideRootError(
            f"frame path {str(relative)!r} leads outside {base}; frame paths must be relative to that folder "
            "(no '..' or absolute paths)"
        )
    return target
