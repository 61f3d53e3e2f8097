"""Write a file so that readers see the old file or the whole new one, never a half-written one.

Benchmark runs are long and get interrupted; a result or metrics file cut in the middle would be
scored as if it were complete. Writing to a temporary file beside the target and ``os.replace``-ing
it in is atomic on POSIX and Windows file systems.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

# mkstemp creates 0600 files; give the result the mode a plain open() would (read once, at import:
# os.umask can only be read by setting it).
_UMASK = os.umask(0)
os.umask(_UMASK)


def write_atomic(path: str | os.PathLike[str], data: str | bytes) -> Path:
    """Write ``data`` (text as UTF-8) to ``path`` atomically, creating parent folders; returns the path."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    payload = data.encode("utf-8") if isinstance(data, str) else data
    fd, temp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
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
