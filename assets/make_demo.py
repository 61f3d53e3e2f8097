"""Writes the bundled demo: `demo.mp4` and `demo.json` (what to ask of it, and the answers).

    python -m elysium.assets.make_demo                # rewrites the files beside this module
    python -m elysium.assets.make_demo --out DIR      # or elsewhere

The video is one of `training/synth.py`'s, made with a seed no data set uses (training: 1, held out: 1001), at the
size `elysium-tiny` was trained on (160x120), 48 frames at 16 fps. Its target is an object in view in every frame,
so both the box and the expression have something to follow all the way; `demo.json` keeps its box in every frame
so `elysium demo` can print a real IoU.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from elysium.assets import ASSETS_DIR
from elysium.atomic import write_text_atomic

SEED = 7
SIZE = (160, 120)
NUM_FRAMES = 48
FPS = 16.0
COMMAND = "python -m elysium.assets.make_demo"


def _target_record(seed: int, size: tuple[int, int], num_frames: int) -> dict[str, Any]:
    """The demo target's synth record (all its boxes). `write_demo_video` returns frame 0's box only, so the same
    plan is rendered again here, with the same calls and the same choice of target."""
    from elysium.training.synth import SynthConfig, _plan_video, _records, _render_frames

    cfg = SynthConfig(size=size, frames_per_video=(num_frames, num_frames), photos=False)
    plan = _plan_video(seed, 0, cfg, num_frames=num_frames)
    records, _ = _records(plan, [stats for _, stats in _render_frames(plan)], cfg)
    target = next((r for r in records if len(r["frames"]) == num_frames), None)
    if target is None:
        raise ValueError(f"seed {seed}: no object stays in view for all {num_frames} frames; choose another seed")
    return target


def make_demo(out_dir: str | Path = ASSETS_DIR, seed: int = SEED) -> dict[str, Any]:
    """Write `demo.mp4` and `demo.json` into `out_dir`; returns what `demo.json` holds."""
    from elysium.training.synth import write_demo_video

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
