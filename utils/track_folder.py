"""The frame files of an ElysiumTrack folder: `frames/<vid>/<index:06d>.jpg`, relative to the folder that holds
`annotations.jsonl` (what `elysium data synth` and `elysium data build` write and the training reader reads)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["frame_file", "write_frame"]


def frame_file(vid: str, index: int) -> str:
    """Frame `index` of video `vid`, as a record's `frames` entry names it."""
    return f"frames/{vid}/{index:06d}.jpg"


def write_frame(root: Path, vid: str, index: int, frame: Any, quality: int) -> None:
    """Write an RGB array as frame `index` of `vid` under `root`, as JPEG of that quality."""
    from PIL import Image

    path = Path(root) / frame_file(vid, index)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(frame).save(path, quality=quality)
