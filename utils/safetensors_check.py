"""Whether a safetensors file is whole: one check for loading a model and for choosing a checkpoint to resume."""

from __future__ import annotations

from pathlib import Path

__all__ = ["safetensors_problem"]


def safetensors_problem(path: str | Path) -> str | None:
    """Why `path` is not a whole safetensors file (one line: empty, cut short, not safetensors, unreadable), or None.

    `safe_open` reads the header and checks that its tensors cover the file exactly, so an empty file, one cut
    anywhere (in the header or the data) and one with bytes appended all fail here; no tensor is read."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt"):
            pass
    except (SafetensorError, OSError, ValueError) as error:
        text = str(error).strip()
        return text.splitlines()[0] if text else type(error).__name__
    return None
