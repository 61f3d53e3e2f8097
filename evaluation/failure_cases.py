"""Failure cases as images: for each hard condition, the held-out tracks a model tracked worst, as strips of frames.

Why: a success AUC says how often a tracker fails, not how. A strip of evenly spaced frames with the ground truth
(green) and the prediction (red) shows whether it drifted to a distractor, lost a small object or stayed behind an
occluder. The frames are upscaled (generated frames are 160x120) and each panel carries its frame number and IoU.
"""

from __future__ import annotations

import io
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from elysium.processing.video import draw_boxes
from elysium.utils.atomic import write_bytes_atomic

from .heldout import CONDITIONS, Track, frame_ious, mean_ious

# The conditions drawn, in report order; a condition no track has gives no image.
FAILURE_CONDITIONS = ("small", "occluded", "has_distractor", "abrupt_motion", "leaves_frame")
GROUND_TRUTH = (40, 220, 60)
PREDICTION = (235, 40, 40)
PANELS = 6
SCALE = 2
GAP = 4
FONT_SIZE = 12


@dataclass(frozen=True)
class FailureCase:
    """One drawn track: which model, condition and task it shows, and where the image is."""

    model: str
    condition: str
    task: str
    track_id: str
    expression: str
    mean_iou: float
    path: Path

    def to_dict(self, root: Path | None = None) -> dict[str, Any]:
        """JSON-ready, with `path` relative to `root` (the report's folder) when given."""
        path = self.path.relative_to(root) if root is not None else self.path
        return {
            "model": self.model,
            "condition": self.condition,
            "task": self.task,
            "track_id": self.track_id,
            "expression": self.expression,
            "mean_iou": round(self.mean_iou, 4),
            "path": path.as_posix(),
        }


def worst_tracks(tracks: Sequence[Track], ious: Sequence[float], condition: str, count: int = 2) -> list[int]:
    """Indices of the `count` tracks with `condition` that have the lowest mean IoU, worst first."""
    test = CONDITIONS[condition]
    chosen = [i for i, track in enumerate(tracks) if test(track)]
    return sorted(chosen, key=lambda i: (ious[i], i))[:count]


def panel_frames(num_frames: int, panels: int = PANELS) -> list[int]:
    """Up to `panels` evenly spaced positions in a track, first and last included."""
    return sorted({int(i) for i in np.linspace(0, num_frames - 1, min(panels, num_frames)).round()})


def _font() -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=FONT_SIZE)
    except TypeError:  # Pillow < 10.1: one bitmap size
        return ImageFont.load_default()


def _line_height(font: ImageFont.ImageFont | ImageFont.FreeTypeFont) -> int:
    left, top, right, bottom = ImageDraw.Draw(Image.new("RGB", (1, 1))).textbbox((0, 0), "Ag|", font=font)
    return bottom - top + 4


def strip_size(frame_size: tuple[int, int], panels: int, scale: int = SCALE) -> tuple[int, int]:
    """`(width, height)` of a strip of `panels` frames of `frame_size`: a title of two lines, a label under each."""
    line = _line_height(_font())
    width, height = frame_size
    return GAP + panels * (width * scale + GAP), 2 * line + GAP + height * scale + line + GAP


def _fit(text: str, width: int, draw: ImageDraw.ImageDraw, font: Any) -> str:
    """`text`, cut with an ellipsis to fit `width` pixels."""
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "...", font=font) > width:
        text = text[:-1]
    return text + "..."


def draw_strip(
    track: Track, prediction: np.ndarray, title: str, subtitle: str = "", panels: int = PANELS, scale: int = SCALE
) -> Image.Image:
    """Evenly spaced frames of `track`, upscaled, ground truth green and `prediction` red, frame number and IoU."""
    picks = panel_frames(len(track.frames), panels)
    ious = frame_ious(prediction, track)
    font = _font()
    line = _line_height(font)
    width, height = track.frame_size
    strip = Image.new("RGB", strip_size((width, height), len(picks), scale), (255, 255, 255))
    draw = ImageDraw.Draw(strip)
    room = strip.width - 2 * GAP
    draw.text((GAP, GAP // 2), _fit(title, room, draw, font), fill=(0, 0, 0), font=font)
    draw.text((GAP, GAP // 2 + line), _fit(subtitle, room, draw, font), fill=(60, 60, 60), font=font)
    top = 2 * line + GAP
    for slot, k in enumerate(picks):
        frame = Image.fromarray(np.ascontiguousarray(track.frames[k][:, :, :3]))
        big = np.asarray(frame.resize((width * scale, height * scale), Image.Resampling.NEAREST))
        boxes = [track.boxes[k] * scale]
        if k < len(prediction):
            boxes.append(np.asarray(prediction[k], dtype=np.float64) * scale)
        panel = draw_boxes(big, boxes, [GROUND_TRUTH, PREDICTION][: len(boxes)], thickness=2)
        left = GAP + slot * (width * scale + GAP)
        strip.paste(Image.fromarray(panel), (left, top))
        number = track.frame_indices[k] if k < len(track.frame_indices) else k
        label = f"frame {number}  IoU {ious[k]:.2f}"
        draw.text((left, top + height * scale + 2), _fit(label, width * scale, draw, font), fill=(0, 0, 0), font=font)
    return strip


def _file_name(condition: str, task: str, track_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", f"{condition}-{task}-{track_id}") + ".png"


def write_failure_cases(
    tracks: Sequence[Track],
    predictions: Mapping[str, Sequence[np.ndarray]],
    out_dir: str | Path,
    model: str = "model",
    per_condition: int = 2,
    conditions: Sequence[str] = FAILURE_CONDITIONS,
) -> list[FailureCase]:
    """For each condition and task (`predictions`: task name -> one box array per track), draw the worst tracks.

    Images go to `out_dir/<condition>-<task>-<track id>.png`. A track that is among the worst for several conditions
    is drawn once (named after the first) and listed under each. PNGs left in `out_dir` by an earlier run are removed
    first, so the folder holds exactly the cases listed. Images are saved with a 256-colour palette: a quarter of the
    bytes, for a report that is committed beside the code.
    """
    folder = Path(out_dir)
    if folder.is_dir():
        for old in folder.glob("*.png"):
            old.unlink()
    cases = []
    for task, boxes in predictions.items():
        ious = mean_ious(boxes, tracks)
        drawn: dict[int, Path] = {}
        for condition in conditions:
            for i in worst_tracks(tracks, ious, condition, per_condition):
                track = tracks[i]
                if i not in drawn:
                    has = ", ".join(name for name in FAILURE_CONDITIONS if CONDITIONS[name](track)) or "none"
                    title = f"{model}: {task.upper()}, track {track.id}, mean IoU {ious[i]:.2f}, worst with {condition}"
                    subtitle = f'"{track.expression}"  (green: ground truth, red: prediction; conditions: {has})'
                    image = draw_strip(track, boxes[i], title, subtitle)
                    buffer = io.BytesIO()
                    image.quantize(256, method=Image.Quantize.FASTOCTREE).save(buffer, format="PNG")
                    drawn[i] = write_bytes_atomic(folder / _file_name(condition, task, track.id), buffer.getvalue())
                cases.append(FailureCase(model, condition, task, track.id, track.expression, ious[i], drawn[i]))
    return cases
