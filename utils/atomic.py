"""Write a file so that readers see the old file or the whole new one, never a half-written one.

Runs get killed: a results, metrics, skip-count or annotation file cut in the middle would be read as if it
were complete. The data goes to a temporary file in the target's folder (the same file system), is flushed
to disk (`fsync`), then `os.replace`s the target, which is atomic on POSIX and Windows file systems. The
temporary file is removed if anything fails. (A whole folder is published with `hub.export.atomic_folder`,
and `processing.video.write_video` streams into its own temporary file.)
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

__all__ = ["write_bytes_atomic", "write_json_atomic", "write_text_atomic"]

# mkstemp creates 0600 files; give the result the mode a plain open() would (read once, at import:
# os.umask can only be read by setting it).
_UMASK = os.umask(0)
os.umask(_UMASK)


def write_bytes_atomic(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write `data` to `path` atomically, creating parent folders; returns the path."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, temp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temp_name, 0o666 & ~_UMASK)
        os.replace(temp_name, target)
    except BaseException:
        try:
            os.unlink(temp_name)
        except FileNotFoundError:
            pass
        raise
    return target


def write_text_atomic(path: str | os.PathLike[str], text: str) -> Path:
    """Write `text` as UTF-8 to `path` atomically (see `write_bytes_atomic`); returns the path."""
    return write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(
    path: str | os.PathLike[str], data: Any, *, indent: int = 1, sort_keys: bool = False, allow_nan: bool = True
) -> Path:
    """Write `data` as JSON plus a newline to `path` atomically; returns the path.

    `allow_nan=False` raises on NaN/infinity (strict JSON) before anything is written.
    """
    text = json.dumps(data, indent=indent, sort_keys=sort_keys, allow_nan=allow_nan) + "\n"
    return write_text_atomic(path, text)
