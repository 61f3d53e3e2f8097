"""The released model's box text: ``[x1,y1,x2,y2]`` with each value ``round(100 * normalized)``.

A box costs 13 LLaMA tokens this way (the paper, Sec. 4). Parsing model output must never
crash: malformed, missing or extra boxes are repaired (the previous frame's box is carried)
and counted, so a long tracking run survives a bad clip.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

# The largest value a coordinate takes in text: boxes live in 0..99 (issue #2, DESIGN.md).
MAX_BIN = 99

_NUMBER = r"-?\d+(?:\.\d+)?"
_BOX_RE = re.compile(rf"\[\s*({_NUMBER})\s*,\s*({_NUMBER})\s*,\s*({_NUMBER})\s*,\s*({_NUMBER})\s*\]")
# A box also stops at a letter or the next "[", so a broken box cannot swallow the next frame's box.
_FRAME_BOX_RE = re.compile(r"Frame\s*(\d+)\s*:\s*(\[[^\]\[A-Za-z]*\]?)", re.IGNORECASE)


class BoxError(ValueError):
    """A box given by a user or a record that cannot be used as it is."""


def check_box(box: Sequence[float], frame_size: tuple[int, int] | None = None, *, what: str = "box") -> list[float]:
    """Validate one ``[x1,y1,x2,y2]`` box, in pixels when ``frame_size=(w, h)`` is given, else normalized.

    Raises :class:`BoxError` naming the problem and the fix; returns the box as floats.
    """
    try:
        values = [float(v) for v in box]
    except (TypeError, ValueError):
        raise BoxError(f"{what} {box!r} is not four numbers; give it as x1,y1,x2,y2.") from None
    if len(values) != 4:
        raise BoxError(f"{what} {box!r} has {len(values)} values; give four: x1,y1,x2,y2.")
    if not all(math.isfinite(v) for v in values):
        raise BoxError(f"{what} {box!r} has a value that is not a finite number.")
    x1, y1, x2, y2 = values
    if x2 <= x1 or y2 <= y1:
        raise BoxError(
            f"{what} {box!r} has x2<=x1 or y2<=y1; give the top-left corner first, then the bottom-right one."
        )
    width, height = frame_size if frame_size is not None else (1.0, 1.0)
    unit = "pixels" if frame_size is not None else "normalized units"
    if frame_size is not None and min(width, height) > 16 and max(abs(v) for v in values) <= 1.0:
        # Under one pixel on a real frame: almost surely a normalized box where pixels are expected.
        example = ",".join(f"{v * s:g}" for v, s in zip(values, (width, height, width, height)))
        raise BoxError(
            f"{what} {box!r} looks normalized (every value is within 0..1) but pixels of the {width:g}x{height:g} "
            f"frame are expected; give it in pixels, e.g. {example}."
        )
    tolerance = 1e-6 * max(width, height)
    if x1 < -tolerance or y1 < -tolerance or x2 > width + tolerance or y2 > height + tolerance:
        raise BoxError(f"{what} {box!r} lies outside the frame (0,0)-({width:g},{height:g}) in {unit}.")
    return values


def normalize_box(box: Sequence[float], frame_size: tuple[int, int]) -> list[float]:
    """Pixels ``[x1,y1,x2,y2]`` of a ``(w, h)`` frame to fractions of the frame."""
    width, height = frame_size
    return [box[0] / width, box[1] / height, box[2] / width, box[3] / height]


def denormalize_box(box: Sequence[float], frame_size: tuple[int, int]) -> list[float]:
    """Fractions of the frame to pixels ``[x1,y1,x2,y2]`` of a ``(w, h)`` frame."""
    width, height = frame_size
    return [box[0] * width, box[1] * height, box[2] * width, box[3] * height]


def widen_box(box: Sequence[float], factor: float, frame_size: tuple[int, int]) -> list[float]:
    """Pixels ``[x1,y1,x2,y2]`` with width and height times `factor` about the same centre, cut to the frame."""
    width, height = frame_size
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    half_w, half_h = (box[2] - box[0]) * factor / 2, (box[3] - box[1]) * factor / 2
    x1, y1 = max(0.0, cx - half_w), max(0.0, cy - half_h)
    return [x1, y1, min(float(width), cx + half_w), min(float(height), cy + half_h)]


def check_box_scale(factor: object, *, what: str = "box_scale") -> float:
    """A factor to widen reported boxes by (`widen_box`), in (0, 4]; a clear error otherwise."""
    if isinstance(factor, bool) or not isinstance(factor, (int, float)) or not 0 < factor <= 4:
        raise ValueError(
            f"{what}={factor!r}: give a factor in (0, 4] the reported boxes are widened by (1: as answered)."
        )
    return float(factor)


def format_box(box: Sequence[float]) -> str:
    """Normalized box to the released text, e.g. ``[0.23,0.45,0.46,0.72]`` -> ``"[23,45,46,72]"``."""
    bins = [min(MAX_BIN, max(0, round(100 * float(v)))) for v in box]
    return "[" + ",".join(str(b) for b in bins) + "]"


def format_track(boxes: Sequence[Sequence[float]]) -> str:
    """Normalized boxes, one a frame, to the released answer: ``"Frame 1: [..], Frame 2: [..]."``."""
    return ", ".join(f"Frame {i}: {format_box(box)}" for i, box in enumerate(boxes, start=1)) + "."


def parse_box(text: str) -> list[float] | None:
    """The first well-formed box in ``text`` as normalized floats, or ``None``."""
    match = _BOX_RE.search(text)
    if match is None:
        return None
    box = [float(v) / 100.0 for v in match.groups()]
    return box if _is_usable(box) else None


def _is_usable(box: Sequence[float]) -> bool:
    x1, y1, x2, y2 = box
    return 0.0 <= x1 < x2 <= 1.0 + 1e-9 and 0.0 <= y1 < y2 <= 1.0 + 1e-9


@dataclass
class ParsedTrack:
    """Per-frame normalized boxes read from generated text, with what had to be repaired."""

    boxes: list[list[float] | None]
    repaired: list[bool] = field(default_factory=list)
    extra: int = 0  # boxes for frames beyond the clip, dropped

    @property
    def num_repaired(self) -> int:
        return sum(self.repaired)


def parse_track(text: str, num_frames: int | None = None, initial_box: Sequence[float] | None = None) -> ParsedTrack:
    """Read ``num_frames`` boxes from ``"Frame 1: [..], Frame 2: [..]"``; never raises.

    ``num_frames=None`` reads as many frames as the text names (at least one).

    A frame whose box is missing or malformed (wrong count, x2<x1, out of 0..100) gets the
    previous frame's box, or ``initial_box`` for the first frame, and is marked repaired. Text
    without ``Frame i:`` labels is read as boxes in order. Where nothing can be carried (no
    box anywhere before and no ``initial_box``) the box stays ``None`` and is marked repaired.
    """
    text = text if isinstance(text, str) else ""
    found: dict[int, list[float] | None] = {}
    extra = 0
    labelled = list(_FRAME_BOX_RE.finditer(text))
    if num_frames is None:
        named = [int(m.group(1)) for m in labelled] or [len(_BOX_RE.findall(text))]
        num_frames = max(1, min(max(named), 10_000))
    if labelled:
        for match in labelled:
            index = int(match.group(1)) - 1
            if 0 <= index < num_frames:
                found.setdefault(index, parse_box(match.group(2)))
            else:
                extra += 1
    else:
        for index, match in enumerate(_BOX_RE.finditer(text)):
            if index < num_frames:
                found[index] = parse_box(match.group(0))
            else:
                extra += 1

    boxes: list[list[float] | None] = []
    repaired: list[bool] = []
    previous = list(initial_box) if initial_box is not None else None
    for index in range(num_frames):
        box = found.get(index)
        if box is None:
            boxes.append(list(previous) if previous is not None else None)
            repaired.append(True)
        else:
            boxes.append(box)
            repaired.append(False)
            previous = box
    # Carry backwards too, so a missing first frame takes the first box that was read.
    first = next((b for b in boxes if b is not None), None)
    if first is not None:
        boxes = [b if b is not None else list(first) for b in boxes]
    return ParsedTrack(boxes=boxes, repaired=repaired, extra=extra)
