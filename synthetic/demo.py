"""Writes the bundled demo: `demo.mp4` and `demo.json` (what to ask of it, and the answers).

    python -m elysium.synthetic.demo                # rewrites the bundled files (elysium/assets/)
    python -m elysium.synthetic.demo --out DIR      # or elsewhere

The video is one of the generated scenes (`scenes.py`), made with a seed no data set uses (training: 1, held out:
1001), at the size `elysium-tiny` was trained on (160x120), 48 frames at 16 fps. Its target is an object in view in
every frame, so both the box and the expression have something to follow all the way; `demo.json` keeps its box in
every frame so `elysium demo` can print a real IoU.

A maintainer's tool, run with `python -m`, not an `elysium` subcommand: it rewrites the package's bundled files, and
`demo.json` records this command (`made_by`).
"""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from elysium.assets import ASSETS_DIR
from elysium.utils.atomic import write_text_atomic

from .scenes import SynthConfig, plan_video, render_frames, track_records

__all__ = ["DemoVideo", "make_demo", "write_demo_video"]

SEED = 7
SIZE = (160, 120)
NUM_FRAMES = 48
FPS = 16.0
COMMAND = "python -m elysium.synthetic.demo"


@dataclass
class DemoVideo:
    """A demo mp4 and what to ask of it: the target's frame-0 box in pixels and its expression."""

    path: Path
    box: list[int]  # [x1, y1, x2, y2] pixels, frame 0
    expression: str
    description: str
    frame_size: tuple[int, int]
    num_frames: int
    fps: float


def write_demo_video(
    path: str | os.PathLike,
    seed: int = 0,
    *,
    size: tuple[int, int] = (320, 240),
    num_frames: int = 72,
    fps: float = 24.0,
) -> DemoVideo:
    """A few-seconds mp4 (H.264 yuv420p, else mpeg4) of one synthetic video, for a bundled demo.

    The target is the first track that stays in view all along (so a demo never starts with an object
    that vanishes); returns its frame-0 box in pixels and its referring expression.
    """
    from elysium.processing.video import write_video  # heavy package import only when a demo is written

    cfg = SynthConfig(size=size, frames_per_video=(num_frames, num_frames), photos=False)
    cfg.check()
    plan = plan_video(seed, 0, cfg, num_frames=num_frames)
    frames, stats = [], []
    for frame, st in render_frames(plan):
        frames.append(frame)
        stats.append(st)
    records, _ = track_records(plan, stats, cfg)
    if not records:
        raise ValueError(f"seed {seed} made no usable track; try another seed")
    target = next((r for r in records if len(r["frames"]) == num_frames), records[0])
    write_video(path, frames, fps)
    w, h = size
    x1, y1, x2, y2 = target["box"][0]
    return DemoVideo(
        path=Path(path),
        box=[round(x1 * w), round(y1 * h), round(x2 * w), round(y2 * h)],
        expression=target["expression"],
        description=target["object_description"],
        frame_size=(w, h),
        num_frames=num_frames,
        fps=fps,
    )


def _target_record(seed: int, size: tuple[int, int], num_frames: int) -> dict[str, Any]:
    """The demo target's synth record (all its boxes). `write_demo_video` returns frame 0's box only, so the same
    plan is rendered again here, with the same calls and the same choice of target."""
    cfg = SynthConfig(size=size, frames_per_video=(num_frames, num_frames), photos=False)
    plan = plan_video(seed, 0, cfg, num_frames=num_frames)
    records, _ = track_records(plan, [stats for _, stats in render_frames(plan)], cfg)
    target = next((r for r in records if len(r["frames"]) == num_frames), None)
    if target is None:
        raise ValueError(f"seed {seed}: no object stays in view for all {num_frames} frames; choose another seed")
    return target


def make_demo(out_dir: str | Path = ASSETS_DIR, seed: int = SEED) -> dict[str, Any]:
    """Write `demo.mp4` and `demo.json` into `out_dir`; returns what `demo.json` holds."""
    out = Path(out_dir)
    demo = write_demo_video(out / "demo.mp4", seed, size=SIZE, num_frames=NUM_FRAMES, fps=FPS)
    target = _target_record(seed, SIZE, NUM_FRAMES)
    w, h = SIZE
    boxes = [
        [round(x1 * w, 2), round(y1 * h, 2), round(x2 * w, 2), round(y2 * h, 2)] for x1, y1, x2, y2 in target["box"]
    ]
    if [round(v) for v in boxes[0]] != demo.box or target["expression"] != demo.expression:
        raise RuntimeError("write_demo_video chose another target than make_demo re-renders; align the two")
    data = {
        "video": "demo.mp4",
        "frame_size": [w, h],
        "fps": FPS,
        "num_frames": NUM_FRAMES,
        "box": demo.box,  # frame 0, pixels [x1, y1, x2, y2]: what `elysium track --box` is given
        "expression": demo.expression,
        "description": demo.description,
        "boxes": boxes,  # ground truth, one pixel box a frame
        "seed": seed,
        "generator": target["metadata"]["generator"],
        "made_by": COMMAND,
    }
    write_text_atomic(out / "demo.json", _dumps(data))
    return data


def _dumps(data: dict[str, Any]) -> str:
    """JSON with one key a line and one box a line: a short file that reads (and diffs) by frame."""
    lines = []
    for key, value in data.items():
        if key == "boxes":
            rows = ",\n".join(f"  {json.dumps(box)}" for box in value)
            lines.append(f' "{key}": [\n{rows}\n ]')
        else:
            lines.append(f" {json.dumps(key)}: {json.dumps(value)}")
    return "{\n" + ",\n".join(lines) + "\n}\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write the bundled demo video and its demo.json.")
    parser.add_argument("--out", default=str(ASSETS_DIR), help=f"folder (default: {ASSETS_DIR})")
    parser.add_argument("--seed", type=int, default=SEED, help=f"synth seed (default {SEED}; not 1 or 1001)")
    args = parser.parse_args(argv)
    data = make_demo(args.out, args.seed)
    print(f"wrote {Path(args.out) / 'demo.mp4'}: {data['expression']!r} at {data['box']} ({data['description']})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
