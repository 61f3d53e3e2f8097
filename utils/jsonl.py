"""Read JSON lines one line at a time, so a line that is not UTF-8 is one bad line, not the end of the file."""

from __future__ import annotations

import os
from collections.abc import Iterator

__all__ = ["jsonl_lines", "numbered_jsonl_lines"]


def numbered_jsonl_lines(path: str | os.PathLike) -> Iterator[tuple[int, str | None]]:
    """`(line number from 1, text)` of each non-blank line of a JSONL file; the text is None for a line that is
    not UTF-8 (a byte-order mark at a line's start is dropped)."""
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, 1):
            if not raw.strip():
                continue
            try:
                yield number, raw.decode("utf-8-sig")
            except UnicodeDecodeError:
                yield number, None


def jsonl_lines(path: str | os.PathLike) -> Iterator[str | None]:
    """The non-blank lines of a JSONL file as text, or None for a line that is not UTF-8 (a byte-order mark at a
    line's start is dropped)."""
    for _, line in numbered_jsonl_lines(path):
        yield line
