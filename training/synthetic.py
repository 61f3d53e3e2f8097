"""A tiny ElysiumTrack-format dataset generated in code: colored squares moving on plain backgrounds.

Used by `configs/tiny-smoke.yaml` and the tests, so the full pipeline (JSONL, JPEG frames, validation, training,
saving) runs on CPU in seconds with nothing downloaded. The tokenizer is trained here on the same texts.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import PIL.Image
import PIL.ImageDraw
from elysium.processing.prompts import PARAPHRASES
from elysium.processing.tokenizer_training import train_tokenizer
from transformers import PreTrainedTokenizerFast

COLORS = {"red": (220, 30, 30), "green": (30, 180, 60), "blue": (40, 60, 220), "yellow": (230, 210, 40)}
BACKGROUNDS = {"white": (245, 245, 245), "black": (15, 15, 15), "gray": (128, 128, 128)}


def generate_moving_squares(
    out_dir: str | Path, num_videos: int = 32, num_frames: int = 12, size: int = 56, seed: int = 0
) -> Path:
    """Write `frames/<vid>/000000.jpg...` and `train.jsonl` (ElysiumTrack records) under `out_dir`; returns the
    JSONL path. Each video is one square moving in a straight line; its box is exact in every frame."""
    out_dir = Path(out_dir)
    rng = random.Random(seed)
    lines = []
    for v in range(num_videos):
        vid = f"square{v:04d}"
        color, rgb = rng.choice(list(COLORS.items()))
        background, bg = rng.choice(list(BACKGROUNDS.items()))
        side = rng.randint(size // 5, size // 3)
        x, y = rng.uniform(0, size - side), rng.uniform(0, size - side)
        dx, dy = rng.uniform(-3, 3), rng.uniform(-3, 3)
        frames, boxes = [], []
        (out_dir / "frames" / vid).mkdir(parents=True, exist_ok=True)
        for f in range(num_frames):
            x = min(max(x + dx, 0), size - side)
            y = min(max(y + dy, 0), size - side)
            image = PIL.Image.new("RGB", (size, size), bg)
            PIL.ImageDraw.Draw(image).rectangle([x, y, x + side - 1, y + side - 1], fill=rgb)
            relative = f"{vid}/{f:06d}.jpg"
            image.save(out_dir / "frames" / relative, quality=90)
            frames.append(relative)
            boxes.append(
                [round(x / size, 4), round(y / size, 4), round((x + side) / size, 4), round((y + side) / size, 4)]
            )
        lines.append(
            {
                "source": "synthetic",
                "id": f"{vid}_0",
                "vid": vid,
                "metadata": {"seed": seed},
                "frames": frames,
                "object_class": "square",
                "box": boxes,
                "object_description": f"the {color} square on the {background} background",
                "frame_size": [size, size],
            }
        )
    path = out_dir / "train.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


def synthetic_tokenizer() -> PreTrainedTokenizerFast:
    """A small BPE tokenizer covering the prompts, box answers and square descriptions, with `<image>` added."""
    texts = [p for options in PARAPHRASES.values() for p in options]
    texts += [f"Frame {i}: [{i},{2 * i},{3 * i},{4 * i}]." for i in range(1, 40)]
    texts += [f"the {c} square on the {b} background" for c in COLORS for b in BACKGROUNDS]
    texts += ["USER: ASSISTANT: </s>"]
    tokenizer = train_tokenizer(texts * 3, vocab_size=320)
    tokenizer.add_tokens(["<image>"], special_tokens=True)
    return tokenizer
