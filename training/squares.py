"""Position-only grounding images: one square at a random place, always "the square", so a REC answer can come
only from where the square is (docs/elysium-tiny/localization.md). From scratch, a tiny Elysium learns to point
only through these: first a bright square on a plain dark image, then a saturated one on the generated set's
cluttered backgrounds, and from there the generated objects.

    elysium data squares --out DIR --images 3000 --seed 0 [--background plain|clutter]

Writes `grounding.jsonl` (`{id, image, box (normalized), expression}`, the `data.grounding` format), `images/`,
and `squares.json` (the settings; a folder made with other settings is refused, one with the same is kept). A
config's `data.squares` (one `{out_dir, images, seed, background, name}` or a list) makes them before training and
adds each as a grounding source of that `name` (default `squares`).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path
from typing import Any

import numpy as np
from elysium.atomic import write_json_atomic, write_text_atomic
from PIL import Image
from tqdm.auto import tqdm

from .synth import procedural_background

BACKGROUNDS = ("plain", "clutter")


def make_squares(
    out: str | Path,
    images: int,
    seed: int = 0,
    background: str = "plain",
    size: tuple[int, int] = (160, 120),
    progress: bool = False,
) -> Path:
    """`images` images of one square (side 14-44 px) at a random place; returns the `grounding.jsonl` path.

    `plain`: a bright square (each channel 150-255) on a dark uniform image (0-60). `clutter`: a saturated square
    (one channel 180-255, one 0-80) on `synth.procedural_background`. Same settings, same files; a finished folder
    is kept as it is."""
    if background not in BACKGROUNDS:
        raise ValueError(f"squares background {background!r}: choose from {', '.join(BACKGROUNDS)}")
    if images < 1:
        raise ValueError(f"squares images {images}: need at least 1")
    width, height = size
    if width < 48 or height < 48:
        raise ValueError(f"squares size {width}x{height}: need at least 48x48 (the largest square is 44 px)")
    out = Path(out)
    settings = {"images": images, "seed": seed, "background": background, "size": [width, height]}
    settings_path, grounding = out / "squares.json", out / "grounding.jsonl"
    if settings_path.is_file():
        made = json.loads(settings_path.read_text())
        if made != settings:
            raise ValueError(f"{out} holds squares made with {made}, not {settings}: choose another folder")
        if grounding.is_file():
            return grounding
    (out / "images").mkdir(parents=True, exist_ok=True)
    write_json_atomic(settings_path, settings, sort_keys=True)
    rng, background_rng = random.Random(seed), np.random.default_rng(seed)
    lines = []
    for number in tqdm(range(images), desc="squares", disable=not progress):
        if background == "plain":
            image = Image.new("RGB", size, (rng.randint(0, 60),) * 3)
        else:
            image = Image.fromarray(procedural_background(background_rng, width, height))
        side = rng.randint(14, 44)
        x, y = rng.randint(0, width - side), rng.randint(0, height - side)
        if background == "plain":
            color = [rng.randint(150, 255) for _ in range(3)]
        else:
            color = [rng.randint(0, 80), rng.randint(0, 255), rng.randint(180, 255)]
            rng.shuffle(color)
        image.paste(tuple(color), (x, y, x + side, y + side))
        image.save(out / "images" / f"{number}.png")
        box = [x / width, y / height, (x + side) / width, (y + side) / height]
        lines.append(
            json.dumps({"id": str(number), "image": f"images/{number}.png", "box": box, "expression": "the square"})
        )
    write_text_atomic(grounding, "\n".join(lines) + "\n")  # last: its presence means the folder is complete
    return grounding


def square_sets(data_cfg: dict[str, Any]) -> list[dict[str, Any]]:
    """`data.squares` (one `{out_dir, images, seed, background, name}` or a list), checked, defaults filled in."""
    value = data_cfg.get("squares")
    if not value:
        return []
    sets = [value] if isinstance(value, dict) else value
    keys = {"out_dir", "images", "seed", "background", "name"}
    if not isinstance(sets, list) or not all(isinstance(one, dict) and one.get("out_dir") for one in sets):
        raise ValueError(f"data.squares {value!r}: give {{out_dir, images, seed, background, name}} or a list of them")
    unknown = sorted({key for one in sets for key in one} - keys)
    if unknown:
        raise ValueError(f"data.squares: unknown keys {', '.join(unknown)}; use {', '.join(sorted(keys))}")
    defaults = {"images": 3000, "seed": 0, "background": "plain", "name": "squares"}
    return [{**defaults, **one} for one in sets]


def add_squares_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `elysium data squares`."""
    parser.add_argument("--out", required=True, help="folder to write images/ and grounding.jsonl into")
    parser.add_argument("--images", type=int, default=3000, help="number of images (default 3000)")
    parser.add_argument("--seed", type=int, default=0, help="seed (default 0); same seed, same files")
    parser.add_argument("--background", choices=BACKGROUNDS, default="plain", help="plain dark, or generated clutter")


def run_squares(args: argparse.Namespace) -> int:
    try:
        print(make_squares(args.out, args.images, args.seed, args.background, progress=True))
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0
