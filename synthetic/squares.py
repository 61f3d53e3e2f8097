"""Position-only grounding images: one square at a random place, always "the square", so a REC answer can come
only from where the square is (docs/elysium-tiny/history.md). From scratch, a tiny Elysium learns to point
only through these: first a bright square on a plain dark image, then a saturated one on the generated set's
cluttered backgrounds, and from there the generated objects.

With `--count LO HI` an image holds LO-HI squares, each of its own named colour (the generated set's `COLORS`),
and the expression picks one: "the red square", or by place among them, "the leftmost square" / "the square on
the left" (the generated set's words and margin). Whole frames of several objects are where RSOT starts, and a
model trained on one square an image never learnt to choose among them (docs/elysium-tiny/history.md).

    elysium data squares --out DIR --images 3000 --seed 0 [--background plain|clutter] [--count 2 4]

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
from PIL import Image
from tqdm.auto import tqdm

from elysium.utils.atomic import write_json_atomic, write_text_atomic

from .scenes import COLORS, procedural_background
from .wording import expression_matches

BACKGROUNDS = ("plain", "clutter")
_GAP = 4  # px between two squares of one image, so each box holds one square's pixels only
_SUPERLATIVES = {"left": "leftmost", "right": "rightmost", "top": "topmost", "bottom": "lowest"}
_BY_PLACE = {"left": "on the left", "right": "on the right", "top": "at the top", "bottom": "at the bottom"}


def make_squares(
    out: str | Path,
    images: int,
    seed: int = 0,
    background: str = "plain",
    size: tuple[int, int] = (160, 120),
    progress: bool = False,
    count: tuple[int, int] = (1, 1),
) -> Path:
    """`images` images of squares (side 14-44 px) at random places; returns the `grounding.jsonl` path.

    One square an image (`count` (1, 1)): `plain`, a bright square (each channel 150-255) on a dark uniform image
    (0-60); `clutter`, a saturated square (one channel 180-255, one 0-80) on `scenes.procedural_background`; always
    "the square". Several (`count` (LO, HI)): apart, each of a different `scenes.COLORS` colour (no black on a plain
    image), one of them named by its colour or, two times in five where one is that far out, by its place. Same
    settings, same files; a finished folder is kept as it is."""
    if background not in BACKGROUNDS:
        raise ValueError(f"squares background {background!r}: choose from {', '.join(BACKGROUNDS)}")
    if images < 1:
        raise ValueError(f"squares images {images}: need at least 1")
    low, high = (int(n) for n in count)
    if not 1 <= low <= high <= 4:
        raise ValueError(f"squares count {list(count)}: give [LO, HI] with 1 <= LO <= HI <= 4")
    width, height = size
    if width < 48 or height < 48:
        raise ValueError(f"squares size {width}x{height}: need at least 48x48 (the largest square is 44 px)")
    out = Path(out)
    settings = {"images": images, "seed": seed, "background": background, "size": [width, height]}
    if high > 1:  # one-square folders keep the settings file they were made with
        settings["count"] = [low, high]
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
        if high == 1:
            side = rng.randint(14, 44)
            x, y = rng.randint(0, width - side), rng.randint(0, height - side)
            if background == "plain":
                color = [rng.randint(150, 255) for _ in range(3)]
            else:
                color = [rng.randint(0, 80), rng.randint(0, 255), rng.randint(180, 255)]
                rng.shuffle(color)
            image.paste(tuple(color), (x, y, x + side, y + side))
            box, expression = (x, y, x + side, y + side), "the square"
        else:
            box, expression = _paste_named_squares(image, rng, rng.randint(low, high), background)
        image.save(out / "images" / f"{number}.png")
        box = [box[0] / width, box[1] / height, box[2] / width, box[3] / height]
        lines.append(
            json.dumps({"id": str(number), "image": f"images/{number}.png", "box": box, "expression": expression})
        )
    write_text_atomic(grounding, "\n".join(lines) + "\n")  # last: its presence means the folder is complete
    return grounding


def _paste_named_squares(
    image: Image.Image, rng: random.Random, count: int, background: str
) -> tuple[tuple[int, int, int, int], str]:
    """Paste up to `count` squares apart, each of its own colour; returns one's pixel box and an expression that
    picks it alone (its colour, or its place where `synth.expression_matches` finds it alone that far out)."""
    width, height = image.size
    names = [name for name in COLORS if not (background == "plain" and name == "black")]
    boxes: list[tuple[int, int, int, int]] = []
    for _ in range(50 * count):  # rejection sampling; a crowded image may hold fewer than `count`
        if len(boxes) == count:
            break
        side = rng.randint(14, 44)
        x, y = rng.randint(0, width - side), rng.randint(0, height - side)
        box = (x, y, x + side, y + side)
        if all(
            box[2] + _GAP <= o[0] or o[2] + _GAP <= box[0] or box[3] + _GAP <= o[1] or o[3] + _GAP <= box[1]
            for o in boxes
        ):
            boxes.append(box)
    colors = rng.sample(names, len(boxes))
    for box, name in zip(boxes, colors):
        image.paste(COLORS[name], box)
    target = rng.randrange(len(boxes))
    scene = [
        {
            "index": i,
            "color": name,
            "shape": "square",
            "size": None,
            "texture": None,
            "center0": [(b[0] + b[2]) / 2 / width, (b[1] + b[3]) / 2 / height],
        }
        for i, (b, name) in enumerate(zip(boxes, colors))
    ]
    places = [
        place
        for place in _SUPERLATIVES
        if len(boxes) > 1 and expression_matches({"position": place}, scene, (width, height)) == [target]
    ]
    if places and rng.random() < 0.4:
        place = rng.choice(places)
        if len(boxes) >= 3:
            return boxes[target], f"the {_SUPERLATIVES[place]} square"
        return boxes[target], f"the square {_BY_PLACE[place]}"
    return boxes[target], f"the {colors[target]} square"


def square_sets(value: dict[str, Any] | list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    """A training config's `data.squares` (one `{out_dir, images, seed, background, name}` or a list), checked,
    defaults filled in."""
    if not value:
        return []
    sets = [value] if isinstance(value, dict) else value
    keys = {"out_dir", "images", "seed", "background", "name", "count"}
    if not isinstance(sets, list) or not all(isinstance(one, dict) and one.get("out_dir") for one in sets):
        raise ValueError(
            f"data.squares {value!r}: give {{out_dir, images, seed, background, name, count}} or a list of them"
        )
    unknown = sorted({key for one in sets for key in one} - keys)
    if unknown:
        raise ValueError(f"data.squares: unknown keys {', '.join(unknown)}; use {', '.join(sorted(keys))}")
    defaults = {"images": 3000, "seed": 0, "background": "plain", "name": "squares", "count": [1, 1]}
    return [{**defaults, **one} for one in sets]


def add_squares_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `elysium data squares`."""
    parser.add_argument("--out", required=True, help="folder to write images/ and grounding.jsonl into")
    parser.add_argument("--images", type=int, default=3000, help="number of images (default 3000)")
    parser.add_argument("--seed", type=int, default=0, help="seed (default 0); same seed, same files")
    parser.add_argument("--background", choices=BACKGROUNDS, default="plain", help="plain dark, or generated clutter")
    parser.add_argument(
        "--count",
        type=int,
        nargs=2,
        default=(1, 1),
        metavar=("LO", "HI"),
        help="squares an image (default 1 1: one, 'the square'); more: each its own colour, one of them named",
    )


def run_squares(args: argparse.Namespace) -> int:
    try:
        print(make_squares(args.out, args.images, args.seed, args.background, progress=True, count=args.count))
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0
