"""Position-only grounding data for docs/elysium-tiny/localization.md: one bright square (14-44 px) at a random place
on a plain dark 160x120 image, always "the square", so a REC answer can only come from where the square is.

    python docs/elysium-tiny/localization/make_squares.py --out runs/squares --images 3000 --seed 0
    python docs/elysium-tiny/localization/make_squares.py --out runs/squares-test --images 100 --seed 12345

Writes `grounding.jsonl` (`{id, image, box (normalized), expression}`, the `data.grounding` format) and `images/`.
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

from PIL import Image


def make_squares(out: Path, images: int, seed: int, size: tuple[int, int] = (160, 120)) -> Path:
    rng = random.Random(seed)
    (out / "images").mkdir(parents=True, exist_ok=True)
    width, height = size
    lines = []
    for number in range(images):
        image = Image.new("RGB", size, (rng.randint(0, 60),) * 3)
        side = rng.randint(14, 44)
        x, y = rng.randint(0, width - side), rng.randint(0, height - side)
        image.paste(tuple(rng.randint(150, 255) for _ in range(3)), (x, y, x + side, y + side))
        image.save(out / "images" / f"{number}.png")
        box = [x / width, y / height, (x + side) / width, (y + side) / height]
        lines.append(
            json.dumps({"id": str(number), "image": f"images/{number}.png", "box": box, "expression": "the square"})
        )
    (out / "grounding.jsonl").write_text("\n".join(lines) + "\n")
    return out / "grounding.jsonl"


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--images", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(make_squares(args.out, args.images, args.seed))
