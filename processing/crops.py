"""Square regions around a target, and boxes moved between a frame and such a region.

At elysium-tiny's 64-px input a small object of a whole frame is one patch and the LLM learns to answer from the
text alone; the same object at a third of a crop is read within a few hundred steps
(docs/elysium-tiny/history.md). So training can crop images and clips around the target
(`data.grounding_context`, `data.track_context`), and a tracker crops each clip around the target's last box (a
search region, as Siamese trackers do). Every region here is normalized `[x1, y1, x2, y2]` of its frame.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

import numpy as np
import PIL.Image

from .boxes import denormalize_box, normalize_box

Region = tuple[float, float, float, float]


def square_around(
    box: Sequence[float],
    frame_size: tuple[int, int],
    context: float,
    place: tuple[float, float] = (0.5, 0.5),
    min_side: float = 0.0,
) -> Region:
    """A square (in pixels) `context` times the longer side of normalized `box` (at least `min_side` pixels),
    holding the whole box, cut to the frame. `place` in [0, 1]^2 slides it over the positions that keep the box
    inside: (0.5, 0.5) centers the box where the frame allows; (0, 0) puts the box at the square's bottom-right."""
    width, height = frame_size
    x1, y1, x2, y2 = denormalize_box(box, frame_size)
    side = max(max(x2 - x1, y2 - y1, 1.0) * context, min_side)
    crop_w, crop_h = min(max(side, x2 - x1), width), min(max(side, y2 - y1), height)
    lo_x, hi_x = max(0.0, x2 - crop_w), min(x1, width - crop_w)
    lo_y, hi_y = max(0.0, y2 - crop_h), min(y1, height - crop_h)
    left, top = lo_x + place[0] * (hi_x - lo_x), lo_y + place[1] * (hi_y - lo_y)
    return left / width, top / height, (left + crop_w) / width, (top + crop_h) / height


ANYWHERE = (0.0, 1.0)  # `target_crop`'s place range: the box anywhere in its crop


def target_crop(
    box: Sequence[float],
    frame_size: tuple[int, int],
    context: float,
    rng: random.Random,
    place: tuple[float, float] = ANYWHERE,
) -> Region:
    """`square_around` at a random place, uniform in the `place` range of `square_around`'s (0 to 1, 0.5
    centred): training sees the target where a tracker's last box, off by its error, puts it. The full range puts
    it anywhere in the crop; a narrow one near the centre, where a tracker that centres each clip puts it."""
    return square_around(box, frame_size, context, (rng.uniform(*place), rng.uniform(*place)))


def box_in_crop(box: Sequence[float], crop: Sequence[float], clip: bool = False) -> list[float]:
    """A normalized frame box in the normalized coordinates of `crop`; `clip` cuts it to the crop (an object
    that moved out of a clip's crop is answered at the crop's edge)."""
    x0, y0 = crop[0], crop[1]
    inside = normalize_box([box[0] - x0, box[1] - y0, box[2] - x0, box[3] - y0], (crop[2] - x0, crop[3] - y0))
    return [min(1.0, max(0.0, v)) for v in inside] if clip else inside


def pixel_region(crop: Sequence[float], frame_size: tuple[int, int]) -> tuple[int, int, int, int]:
    """The whole pixels `(left, top, right, bottom)` a normalized region covers, at least one pixel each way."""
    width, height = frame_size
    left, top = min(round(crop[0] * width), width - 1), min(round(crop[1] * height), height - 1)
    return left, top, max(round(crop[2] * width), left + 1), max(round(crop[3] * height), top + 1)


def crop_image(image: PIL.Image.Image | np.ndarray, crop: Sequence[float]) -> PIL.Image.Image | np.ndarray:
    """The part of a PIL image or an `(H, W, 3)` array inside a normalized region (same type back)."""
    if isinstance(image, np.ndarray):
        left, top, right, bottom = pixel_region(crop, (image.shape[1], image.shape[0]))
        return image[top:bottom, left:right]
    return image.crop(pixel_region(crop, image.size))
