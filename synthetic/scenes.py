"""Procedurally generated tracking videos in the ElysiumTrack-1M record format.

Why: a tiny model must be trainable and testable on CPU with ground truth that is exact, so the
loaders, training and evaluation can be exercised end to end without the 1.27M-record corpus.
Every video holds 2..4 nameable objects (color, shape, size, texture) that move smoothly or
abruptly, change scale, pass over each other (a fixed z-order), leave and re-enter the frame, and
share a color or a shape with a distractor, on a cluttered background.

Layout written under ``out_dir`` (the same as ElysiumTrack-1M, so ``FrameStore(out_dir)`` reads it)::

    frames/<vid>/000000.jpg ...     JPEG frames
    annotations.jsonl               one record per track (object), written atomically at the end
    synth_config.json               the settings; a resumed run must use the same ones

Conventions:

* Boxes are the tight box of the object's drawn pixels (the whole shape, also where another object
  covers it: amodal, as tracking datasets annotate), clipped to the frame, ``[x1,y1,x2,y2]``
  normalized by the frame size with ``x2 = (last column + 1) / W``.
* Frames where the object is out of view (less than 2 px of it inside the frame in either
  direction) are **dropped** from its record, so every box is valid for the loader; a record's
  frames can therefore skip indices (``metadata.frame_indices`` gives the original ones), which a
  clip sampler reads like a longer stride: the object is seen leaving and coming back. Every object
  starts fully in view, so each record's first frame is frame 0, where the expression is checked.
  Tracks with fewer than ``min_track_frames`` frames in view are not written.
* ``expression`` is checked to pick exactly one object of the video in frame 0 (see
  :func:`expression_matches`); ``object_description`` is the Video-REG text of the whole track.
* Each video is drawn from its own ``numpy`` generator seeded by ``(seed, video index)``, so a
  video does not depend on how many were made before it (resuming and extending give the same
  files). Real photographs are used as some backgrounds when an installed package ships them
  (``skimage`` data, matplotlib's sample photo); the objects and texts do not depend on that, but
  the pixels then differ between machines with and without those packages (``photos=False``
  makes them identical everywhere).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import math
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from elysium.utils.track_folder import frame_file

from .wording import _STILL, _choose_expression, _description

__all__ = [
    "COLORS",
    "SHAPES",
    "SIZES",
    "SOURCE",
    "TEXTURES",
    "SynthConfig",
    "grounding_rows",
    "plan_video",
    "procedural_background",
    "render_frames",
    "render_video",
    "texture_color",
    "track_records",
]


SOURCE = "elysium-synth"
VERSION = 1

# Well separated in RGB (the closest pair, orange/yellow, is ~80 levels apart) and easy to name.
COLORS: dict[str, tuple[int, int, int]] = {
    "red": (215, 35, 35),
    "green": (40, 170, 60),
    "blue": (40, 80, 220),
    "yellow": (240, 215, 40),
    "purple": (140, 60, 190),
    "orange": (245, 135, 30),
    "white": (245, 245, 245),
    "black": (20, 20, 20),
}
SHAPES = ("circle", "square", "triangle", "star", "diamond", "cross")
# Side of the shape's bounding square as a fraction of min(W, H) in frame 0; gaps between the
# ranges keep the size words visually distinct.
SIZES: dict[str, tuple[float, float]] = {"small": (0.13, 0.16), "medium": (0.21, 0.25), "large": (0.30, 0.35)}
TEXTURES = ("plain", "striped", "dotted")

# Speed in fractions of the frame diagonal per frame: generation ranges (clear of `wording`'s bin edges, so the
# words match what is drawn).
_SPEEDS = {"slow": (0.005, 0.010), "normal": (0.014, 0.022), "fast": (0.028, 0.036)}
_MIN_VISIBLE_PX = 2  # an object with less than this inside the frame (either way) is out of view
_BG_PAD = 8  # background is drawn larger than the frame and panned by up to this many pixels


def texture_color(color: str) -> tuple[int, int, int]:
    """The second color of striped/dotted textures: a shade of the same hue, so the color word stays true."""
    r, g, b = COLORS[color]
    if color == "black":
        return (105, 105, 105)
    if color == "white":
        return (160, 160, 160)
    return (int(r * 0.55), int(g * 0.55), int(b * 0.55))


@dataclass(frozen=True)
class SynthConfig:
    """Generator settings (all but the seed and video count); saved beside the data to make resuming safe."""

    size: tuple[int, int] = (160, 120)
    frames_per_video: tuple[int, int] = (24, 48)
    objects_per_video: tuple[int, int] = (2, 4)
    tracks_per_video: int | None = None  # None: every object is a track; else that many (the rest only distract)
    min_track_frames: int = 8
    photos: bool = True
    jpeg_quality: int = 90
    p_abrupt: float = 0.35
    p_scale: float = 0.3
    p_leave: float = 0.25
    p_distractor: float = 0.6
    p_occlusion: float = 0.4
    p_photo: float = 0.3

    def check(self) -> None:
        """Reject settings that cannot make valid videos, with the fix in the message."""
        w, h = self.size
        if w < 32 or h < 32:
            raise ValueError(f"size {w}x{h} is too small; use at least 32x32 (default 160x120)")
        lo, hi = self.frames_per_video
        if not 2 <= lo <= hi:
            raise ValueError(f"frames per video {lo},{hi}: need 2 <= MIN <= MAX")
        a, b = self.objects_per_video
        if not 1 <= a <= b <= 6:
            raise ValueError(f"objects per video {a},{b}: need 1 <= MIN <= MAX <= 6")
        if self.tracks_per_video is not None and self.tracks_per_video < 1:
            raise ValueError("tracks per video must be >= 1 (or None for every object)")
        if self.min_track_frames < 1 or self.min_track_frames > lo:
            raise ValueError(f"min_track_frames must be in 1..{lo} (the shortest video)")
        if not 1 <= self.jpeg_quality <= 100:
            raise ValueError("jpeg_quality must be in 1..100")

    def as_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in data.items()}


# ----------------------------------------------------------------------------------------------
# planning: objects, trajectories, background


@dataclass
class _Object:
    index: int
    color: str
    shape: str
    size_name: str
    texture: str
    z: int
    centers: np.ndarray  # (T, 2) float pixel centers
    sizes: np.ndarray  # (T,) side of the bounding square in pixels
    angle: float  # texture orientation, radians
    abrupt_frames: list[int]
    scale_change: float  # last/first size

    @property
    def attrs(self) -> dict[str, str]:
        return {"color": self.color, "shape": self.shape, "size": self.size_name, "texture": self.texture}


@dataclass
class _Plan:
    vid: str
    seed: int
    index: int
    width: int
    height: int
    num_frames: int
    objects: list[_Object]
    tracks: list[int]  # object indices written as records
    background: np.ndarray  # (H + 2 pad, W + 2 pad, 3) uint8
    background_name: str
    pan: np.ndarray  # (T, 2) int offsets into the background
    render_seed: np.random.SeedSequence


def _video_rngs(seed: int, index: int) -> tuple[np.random.Generator, np.random.Generator, np.random.SeedSequence]:
    """Independent streams for objects and background, so photo availability cannot change the objects."""
    objects, background, render = np.random.SeedSequence([seed, index, VERSION]).spawn(3)
    return np.random.default_rng(objects), np.random.default_rng(background), render


def _sample_attributes(rng: np.random.Generator, count: int, p_distractor: float) -> list[dict[str, str]]:
    """Distinct attribute tuples; later objects often share a color or a shape with an earlier one."""
    chosen: list[dict[str, str]] = []
    while len(chosen) < count:
        attrs = {
            "color": str(rng.choice(list(COLORS))),
            "shape": str(rng.choice(SHAPES)),
            "size": str(rng.choice(list(SIZES))),
            "texture": str(rng.choice(TEXTURES, p=[0.5, 0.25, 0.25])),
        }
        if chosen and rng.random() < p_distractor:
            other = chosen[int(rng.integers(len(chosen)))]
            key = "color" if rng.random() < 0.5 else "shape"
            attrs[key] = other[key]
        if all(attrs != c for c in chosen):
            chosen.append(attrs)
    return chosen


def _place(rng: np.random.Generator, sizes: list[float], width: int, height: int) -> list[np.ndarray] | None:
    """Frame-0 centers with every object fully inside and at most ~25% covered by another (box overlap)."""
    centers: list[np.ndarray] = []
    for s in sizes:
        half = s / 2 + 1
        for _ in range(200):
            c = np.array([rng.uniform(half, width - half), rng.uniform(half, height - half)])
            ok = True
            for c2, s2 in zip(centers, sizes):
                ox = max(0.0, min(c[0] + s / 2, c2[0] + s2 / 2) - max(c[0] - s / 2, c2[0] - s2 / 2))
                oy = max(0.0, min(c[1] + s / 2, c2[1] + s2 / 2) - max(c[1] - s / 2, c2[1] - s2 / 2))
                if ox * oy > 0.2 * min(s, s2) ** 2:
                    ok = False
                    break
            if ok:
                centers.append(c)
                break
        else:
            return None
    return centers


def _unit(angle: float) -> np.ndarray:
    return np.array([math.cos(angle), math.sin(angle)])


def _trajectory(
    rng: np.random.Generator,
    start: np.ndarray,
    base: float,
    num_frames: int,
    width: int,
    height: int,
    cfg: SynthConfig,
    aim: np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray, list[int], float, bool]:
    """Constant velocity + small noise, optional abrupt changes, bounces at the walls (or beyond them for an
    object meant to leave and come back), and a log-linear scale change."""
    diag = math.hypot(width, height)
    leaves = rng.random() < cfg.p_leave
    kind = "fast" if leaves else str(rng.choice(list(_SPEEDS), p=[0.3, 0.4, 0.3]))
    speed = rng.uniform(*_SPEEDS[kind]) * diag
    if rng.random() < 0.08 and not leaves:
        speed = rng.uniform(0.0, 0.5 * _STILL) * diag  # a still object
    if leaves:  # head for the nearest wall, more or less
        dists = [start[0], width - start[0], start[1], height - start[1]]
        angle = (math.pi, 0.0, -math.pi / 2, math.pi / 2)[int(np.argmin(dists))] + rng.uniform(-0.4, 0.4)
    elif aim is not None:  # head for another object so they cross (occlusion)
        d = aim - start
        angle = math.atan2(d[1], d[0]) + rng.uniform(-0.2, 0.2)
    else:
        angle = rng.uniform(-math.pi, math.pi)
    velocity = _unit(angle) * speed

    abrupt: list[int] = []
    if num_frames >= 8 and rng.random() < cfg.p_abrupt:
        n = 1 if num_frames < 20 or rng.random() < 0.6 else 2
        abrupt = sorted({int(t) for t in rng.integers(num_frames // 4, 3 * num_frames // 4, size=n)})
    scale_change = 1.0
    if rng.random() < cfg.p_scale:
        scale_change = rng.uniform(1.3, 1.6) if rng.random() < 0.5 else rng.uniform(0.6, 0.77)
    sizes = base * scale_change ** (np.arange(num_frames) / max(num_frames - 1, 1))
    # Beyond-the-wall bounce: the object is fully out for 2..6 frames before it turns back.
    beyond = (base * 0.6 + speed * rng.uniform(2, 6)) if leaves else 0.0

    centers = np.zeros((num_frames, 2))
    pos = start.astype(float).copy()
    for t in range(num_frames):
        if t in abrupt:
            turn = rng.uniform(math.pi / 3, math.pi) * (1 if rng.random() < 0.5 else -1)
            new_kind = str(rng.choice(list(_SPEEDS)))
            new_speed = rng.uniform(*_SPEEDS[new_kind]) * diag
            velocity = _unit(math.atan2(velocity[1], velocity[0]) + turn) * new_speed
        if t > 0:
            pos = pos + velocity + rng.normal(0.0, 0.04 * np.linalg.norm(velocity) + 0.05, size=2)
            half = sizes[t] / 2
            for axis, extent in ((0, width), (1, height)):
                lo, hi = half - beyond, extent - half + beyond
                if pos[axis] < lo:
                    pos[axis], velocity[axis] = 2 * lo - pos[axis], abs(velocity[axis])
                elif pos[axis] > hi:
                    pos[axis], velocity[axis] = 2 * hi - pos[axis], -abs(velocity[axis])
        centers[t] = pos
    return centers, sizes, abrupt, float(scale_change), leaves


def _photo_paths() -> list[Path]:
    """Photographs shipped inside installed packages (found by path: nothing is imported or downloaded)."""
    found = []
    spec = importlib.util.find_spec("skimage")
    if spec is not None and spec.origin:
        data = Path(spec.origin).parent / "data"
        names = ("astronaut.png", "coffee.png", "chelsea.png", "rocket.jpg", "motorcycle_left.png")
        for name in names:
            if (data / name).is_file():
                found.append(data / name)
    spec = importlib.util.find_spec("matplotlib")
    if spec is not None and spec.origin:
        photo = Path(spec.origin).parent / "mpl-data" / "sample_data" / "grace_hopper.jpg"
        if photo.is_file():
            found.append(photo)
    return found


@lru_cache(maxsize=8)
def _load_photo(path: str) -> Image.Image:
    with Image.open(path) as image:
        return image.convert("RGB")


def procedural_background(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """A muted two-color gradient, grain, and faint random shapes: clutter without nameable objects."""
    a, b = rng.uniform(70, 190, size=3), rng.uniform(70, 190, size=3)
    angle = rng.uniform(0, 2 * math.pi)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    ramp = (xs * math.cos(angle) + ys * math.sin(angle)).astype(np.float32)
    ramp = (ramp - ramp.min()) / max(float(np.ptp(ramp)), 1.0)
    image = a[None, None, :] * (1 - ramp[..., None]) + b[None, None, :] * ramp[..., None]
    canvas = Image.fromarray(np.clip(image, 0, 255).astype(np.uint8))
    for _ in range(int(rng.integers(2, 4))):  # layers of faint shapes, each blended in at a low alpha
        layer = canvas.copy()
        draw = ImageDraw.Draw(layer)
        for _ in range(int(rng.integers(3, 7))):
            fill = tuple(int(v) for v in rng.integers(0, 256, size=3))
            x0, y0 = rng.uniform(-10, width), rng.uniform(-10, height)
            w, h = rng.uniform(5, width / 2), rng.uniform(5, height / 2)
            kind = int(rng.integers(4))
            if kind == 0:
                draw.ellipse([x0, y0, x0 + w, y0 + h], fill=fill)
            elif kind == 1:
                draw.rectangle([x0, y0, x0 + w, y0 + h], fill=fill)
            elif kind == 2:
                pts = [(float(rng.uniform(x0, x0 + w)), float(rng.uniform(y0, y0 + h))) for _ in range(3)]
                draw.polygon(pts, fill=fill)
            else:
                draw.line([x0, y0, x0 + w, y0 + h], fill=fill, width=int(rng.integers(1, 4)))
        canvas = Image.blend(canvas, layer, float(rng.uniform(0.12, 0.3)))
    out = np.asarray(canvas).astype(np.float32) + rng.normal(0.0, 5.0, size=(height, width, 3))
    return np.clip(out, 0, 255).astype(np.uint8)


def _photo_background(rng: np.random.Generator, path: Path, width: int, height: int) -> np.ndarray:
    """A random crop of a photograph (random scale, mirror), resized to the background size."""
    photo = _load_photo(str(path))
    pw, ph = photo.size
    aspect = width / height
    ch = min(ph, pw / aspect) * rng.uniform(0.45, 1.0)
    cw = ch * aspect
    x0, y0 = rng.uniform(0, pw - cw), rng.uniform(0, ph - ch)
    crop = photo.resize((width, height), Image.BILINEAR, box=(x0, y0, x0 + cw, y0 + ch))
    if rng.random() < 0.5:
        crop = crop.transpose(Image.FLIP_LEFT_RIGHT)
    return np.asarray(crop, dtype=np.uint8).copy()


def plan_video(seed: int, index: int, cfg: SynthConfig, num_frames: int | None = None) -> _Plan:
    """Everything about one video except its pixels; deterministic from (seed, index)."""
    rng, bg_rng, render_seed = _video_rngs(seed, index)
    width, height = cfg.size
    lo, hi = cfg.frames_per_video
    t_count = int(rng.integers(lo, hi + 1)) if num_frames is None else num_frames
    while True:  # re-draw the scene until every object fits in frame 0
        count = int(rng.integers(cfg.objects_per_video[0], cfg.objects_per_video[1] + 1))
        attrs = _sample_attributes(rng, count, cfg.p_distractor)
        base = [rng.uniform(*SIZES[a["size"]]) * min(width, height) for a in attrs]
        starts = _place(rng, base, width, height)
        if starts is not None:
            break
    z_order = rng.permutation(count)
    objects = []
    for i, a in enumerate(attrs):
        aim = None
        if count > 1 and rng.random() < cfg.p_occlusion:
            aim = starts[(i + 1 + int(rng.integers(count - 1))) % count]
        centers, sizes, abrupt, scale, _ = _trajectory(rng, starts[i], base[i], t_count, width, height, cfg, aim)
        objects.append(
            _Object(
                index=i,
                color=a["color"],
                shape=a["shape"],
                size_name=a["size"],
                texture=a["texture"],
                z=int(z_order[i]),
                centers=centers,
                sizes=sizes,
                angle=float(rng.choice([0.0, math.pi / 4, math.pi / 2, 3 * math.pi / 4])),
                abrupt_frames=abrupt,
                scale_change=scale,
            )
        )
    if cfg.tracks_per_video is None or cfg.tracks_per_video >= count:
        tracks = list(range(count))
    else:
        tracks = sorted(int(i) for i in rng.choice(count, size=cfg.tracks_per_video, replace=False))

    bw, bh = width + 2 * _BG_PAD, height + 2 * _BG_PAD
    photos = _photo_paths() if cfg.photos else []
    use_photo = bg_rng.random() < cfg.p_photo  # drawn always, so the stream does not depend on the photos found
    if use_photo and photos:
        path = photos[int(bg_rng.integers(len(photos)))]
        background, name = _photo_background(bg_rng, path, bw, bh), f"photo:{path.name}"
    else:
        background, name = procedural_background(bg_rng, bw, bh), "procedural"
    p0, p1 = bg_rng.integers(0, 2 * _BG_PAD + 1, size=2), bg_rng.integers(0, 2 * _BG_PAD + 1, size=2)
    steps = np.linspace(0.0, 1.0, t_count)[:, None]
    pan = np.rint(p0[None, :] * (1 - steps) + p1[None, :] * steps).astype(int)
    return _Plan(
        vid=f"synth-s{seed}-{index:06d}",
        seed=seed,
        index=index,
        width=width,
        height=height,
        num_frames=t_count,
        objects=objects,
        tracks=tracks,
        background=background,
        background_name=name,
        pan=pan,
        render_seed=render_seed,
    )


# ----------------------------------------------------------------------------------------------
# rendering


def _shape_mask(shape: str, size: float, cx: float, cy: float, canvas: int) -> np.ndarray:
    """Boolean mask of one shape on a small square canvas (centered at (cx, cy) in canvas pixels)."""
    image = Image.new("L", (canvas, canvas), 0)
    draw = ImageDraw.Draw(image)
    r = size / 2
    if shape == "circle":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=255)
    elif shape == "square":
        q = r * 0.88
        draw.rectangle([cx - q, cy - q, cx + q, cy + q], fill=255)
    elif shape == "triangle":
        h = size * math.sqrt(3) / 2
        draw.polygon([(cx, cy - h / 2 - r * 0.07), (cx - r, cy + h / 2), (cx + r, cy + h / 2)], fill=255)
    elif shape == "star":
        pts = []
        for k in range(10):
            radius = r if k % 2 == 0 else r * 0.45
            a = -math.pi / 2 + k * math.pi / 5
            pts.append((cx + radius * math.cos(a), cy + radius * math.sin(a)))
        draw.polygon(pts, fill=255)
    elif shape == "diamond":
        draw.polygon([(cx, cy - r), (cx + r * 0.8, cy), (cx, cy + r), (cx - r * 0.8, cy)], fill=255)
    elif shape == "cross":
        arm = r * 0.36
        draw.rectangle([cx - r, cy - arm, cx + r, cy + arm], fill=255)
        draw.rectangle([cx - arm, cy - r, cx + arm, cy + r], fill=255)
    else:
        raise ValueError(f"unknown shape {shape!r}; use one of {', '.join(SHAPES)}")
    return np.asarray(image) > 127


def _texture_pattern(texture: str, size: float, angle: float, cx: float, cy: float, canvas: int) -> np.ndarray:
    """Where the second color goes: stripes or dots that move and scale with the object."""
    if texture == "plain":
        return np.zeros((canvas, canvas), dtype=bool)
    ys, xs = np.mgrid[0:canvas, 0:canvas].astype(np.float32)
    u, v = xs + 0.5 - cx, ys + 0.5 - cy
    a = u * math.cos(angle) + v * math.sin(angle)
    if texture == "striped":
        period = max(4.0, size / 4)
        return np.mod(a, period) < max(1.6, 0.4 * period)
    b = -u * math.sin(angle) + v * math.cos(angle)
    period = max(5.0, size / 3.5)
    da, db = np.mod(a, period) - period / 2, np.mod(b, period) - period / 2
    return da * da + db * db < max(1.3, 0.24 * period) ** 2


@dataclass
class _FrameStats:
    """Per object in one frame: its clipped pixel box (or None), pixel counts, who covers it."""

    boxes: list[tuple[int, int, int, int] | None]
    full: list[int]
    in_frame: list[int]
    visible: list[int]
    covered_by: list[dict[int, int]]


def render_frames(plan: _Plan) -> Iterator[tuple[np.ndarray, _FrameStats]]:
    """Draw the video frame by frame (objects in z-order on the panned background) with ground truth."""
    rng = np.random.default_rng(plan.render_seed)
    w, h = plan.width, plan.height
    order = sorted(plan.objects, key=lambda o: o.z)
    n = len(plan.objects)
    for t in range(plan.num_frames):
        px, py = plan.pan[t]
        frame = plan.background[py : py + h, px : px + w].astype(np.int16)
        frame += rng.normal(0.0, 2.0, size=frame.shape).astype(np.int16)
        frame = np.clip(frame, 0, 255).astype(np.uint8)
        owner = np.full((h, w), -1, dtype=np.int16)
        stats = _FrameStats([None] * n, [0] * n, [0] * n, [0] * n, [{} for _ in range(n)])
        for obj in order:
            size = float(obj.sizes[t])
            cx, cy = obj.centers[t]
            canvas = int(math.ceil(size)) + 4
            ox, oy = int(math.floor(cx)) - canvas // 2, int(math.floor(cy)) - canvas // 2
            lcx, lcy = cx - ox, cy - oy
            mask = _shape_mask(obj.shape, size, lcx, lcy, canvas)
            stats.full[obj.index] = int(mask.sum())
            fx0, fy0, fx1, fy1 = max(ox, 0), max(oy, 0), min(ox + canvas, w), min(oy + canvas, h)
            if fx1 <= fx0 or fy1 <= fy0:
                continue
            local = mask[fy0 - oy : fy1 - oy, fx0 - ox : fx1 - ox]
            if not local.any():
                continue
            pattern = _texture_pattern(obj.texture, size, obj.angle, lcx, lcy, canvas)[
                fy0 - oy : fy1 - oy, fx0 - ox : fx1 - ox
            ]
            colors = np.where(pattern[..., None], texture_color(obj.color), COLORS[obj.color]).astype(np.uint8)
            region = frame[fy0:fy1, fx0:fx1]
            region[local] = colors[local]
            owned = owner[fy0:fy1, fx0:fx1]
            beneath = owned[local]
            for other, count in zip(*np.unique(beneath[beneath >= 0], return_counts=True)):
                stats.covered_by[int(other)][obj.index] = int(count)
            owned[local] = obj.index
            stats.in_frame[obj.index] = int(local.sum())
            rows, cols = np.nonzero(local)
            stats.boxes[obj.index] = (
                fx0 + int(cols.min()),
                fy0 + int(rows.min()),
                fx0 + int(cols.max()) + 1,
                fy0 + int(rows.max()) + 1,
            )
        counts = np.bincount(owner.ravel() + 1, minlength=n + 1)
        stats.visible = [int(c) for c in counts[1:]]
        yield frame, stats


# ----------------------------------------------------------------------------------------------
# records


def track_records(plan: _Plan, stats: list[_FrameStats], cfg: SynthConfig) -> tuple[list[dict[str, Any]], int]:
    """The plan's track records (and how many tracks were too short to write)."""
    w, h = plan.width, plan.height
    diag = math.hypot(w, h)
    scene = [
        {**o.attrs, "index": o.index, "z": o.z, "center0": [round(o.centers[0][k] / (w, h)[k], 4) for k in (0, 1)]}
        for o in plan.objects
    ]
    text_rng = np.random.default_rng(np.random.SeedSequence([plan.seed, plan.index, VERSION, 7]))
    records, dropped = [], 0
    for i in plan.tracks:
        obj = plan.objects[i]
        kept = [
            t
            for t, st in enumerate(stats)
            if st.boxes[i] is not None
            and st.boxes[i][2] - st.boxes[i][0] >= _MIN_VISIBLE_PX
            and st.boxes[i][3] - st.boxes[i][1] >= _MIN_VISIBLE_PX
        ]
        expression, parts = _choose_expression(text_rng, scene[i], scene, (w, h))  # drawn for every track: stable
        if len(kept) < cfg.min_track_frames:
            dropped += 1
            continue
        assert kept[0] == 0, "objects start fully in view"
        occlusion = [1 - stats[t].visible[i] / max(stats[t].in_frame[i], 1) for t in kept]
        covered = Counter()
        for t in kept:
            for other, count in stats[t].covered_by[i].items():
                if count > 0.15 * stats[t].full[i]:
                    covered[other] += 1
        occluder = covered.most_common(1)[0][0] if covered else None
        distractors = [o.index for o in plan.objects if o.index != i and (o.color == obj.color or o.shape == obj.shape)]
        flags = {
            "occluded": max(occlusion) > 0.1,
            "fully_occluded": any(stats[t].visible[i] == 0 for t in kept),
            "truncated": any(stats[t].in_frame[i] < 0.95 * stats[t].full[i] for t in kept),
            "leaves_frame": len(kept) < kept[-1] - kept[0] + 1 or kept[-1] < plan.num_frames - 1,
            "reenters": len(kept) < kept[-1] - kept[0] + 1,
            "exits": kept[-1] < plan.num_frames - 1,
            "abrupt_motion": bool(obj.abrupt_frames),
            "scale_change": obj.scale_change > 1.25 or obj.scale_change < 0.8,
            "has_distractor": bool(distractors),
        }
        boxes = []
        for t in kept:
            x1, y1, x2, y2 = stats[t].boxes[i]
            boxes.append([round(x1 / w, 6), round(y1 / h, 6), round(x2 / w, 6), round(y2 / h, 6)])
        records.append(
            {
                "source": SOURCE,
                "id": f"{plan.vid}-o{i}",
                "vid": plan.vid,
                "metadata": {
                    "seed": plan.seed,
                    "video_index": plan.index,
                    "object_index": i,
                    "attributes": {**obj.attrs, "rgb": list(COLORS[obj.color])},
                    "z": obj.z,
                    "flags": flags,
                    "distractors": distractors,
                    "occluder": occluder,
                    "expression_parts": parts,
                    "frame_indices": kept,
                    "visibility": [round(stats[t].visible[i] / max(stats[t].full[i], 1), 3) for t in kept],
                    "num_frames": plan.num_frames,
                    "num_tracks": 0,  # filled below
                    "background": plan.background_name,
                    "scene": scene,
                    "generator": f"elysium.training.synth v{VERSION}",  # the data's label (its first module)
                },
                "frames": [frame_file(plan.vid, t) for t in kept],
                "object_class": obj.shape,
                "box": boxes,
                "object_description": _description(obj, scene, kept, flags, occluder, diag),
                "expression": expression,
                "frame_size": [w, h],
            }
        )
    for record in records:
        record["metadata"]["num_tracks"] = len(records)
    return records, dropped


def render_video(seed: int, index: int = 0, config: SynthConfig | None = None) -> tuple[list[np.ndarray], list[dict]]:
    """One video in memory: its RGB frames and its records (frame paths as they would be written)."""
    cfg = config or SynthConfig()
    cfg.check()
    plan = plan_video(seed, index, cfg)
    frames, stats = [], []
    for frame, st in render_frames(plan):
        frames.append(frame)
        stats.append(st)
    records, _ = track_records(plan, stats, cfg)
    return frames, records


def _looks(attributes: dict[str, Any]) -> str:
    """ "small red striped circle": every attribute word, as the descriptions start (no texture word for plain)."""
    texture = "" if attributes["texture"] == "plain" else attributes["texture"]
    return " ".join(x for x in (attributes["size"], attributes["color"], texture, attributes["shape"]) if x)


def grounding_rows(records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Image grounding rows (`{image, box, expression}`, as `GroundingSource` reads) from the first frame of each
    track, the frame its referring expression was written for: that expression, and "the <every attribute>"
    where no other object looks the same. The image data of the paper's stage 1.

    The attribute phrase has no position word, so it can only be read from (REG) or found in (REC) the pixels;
    the minimal expressions alone ("the shape at the bottom") let a model answer from the box's numbers."""
    rows = []
    for record in records:
        meta = record["metadata"]
        if not record.get("expression") or meta["frame_indices"][0] != 0:
            continue
        first = {"image": record["frames"][0], "box": record["box"][0]}
        rows.append({"id": record["id"], **first, "expression": record["expression"]})
        looks = _looks(meta["attributes"])
        if sum(_looks(other) == looks for other in meta["scene"]) == 1:
            rows.append({"id": f"{record['id']}-looks", **first, "expression": f"the {looks}"})
    return rows
