"""What test-time views cost: frames/s of the shipped model tracking the bundled demo video with 1 view and with
more (`ElysiumTracker(views=K)`), the settings alternating round by round in one process.

Each round tracks the demo by box and by expression (`track_batch` on the decoded frames, so decoding is left out:
a view re-cuts and re-encodes the clip, and asks the LLM once more), and prints the mean IoU with the demo's
ground truth beside the speed.

    python benchmarks/track_views.py [--views 1 3 5] [--rounds 3]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from elysium.evaluation.ope import rect_iou, xyxy_to_xywh
from elysium.inference.demo_cli import load_demo
from elysium.inference.loading import load_model_and_processor
from elysium.inference.tracker import ElysiumTracker, VideoSource
from elysium.processing.video import iter_video


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--views", type=int, nargs="+", default=[1, 3])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    torch.manual_seed(0)
    demo = load_demo()
    model, processor = load_model_and_processor(None, "cpu")
    frames = [item.original for item in iter_video(demo["path"], size=(1, 1), keep_original=True)]
    truth = np.asarray(demo["boxes"], dtype=np.float64)
    seconds = {k: 0.0 for k in args.views}
    ious: dict[int, list[float]] = {k: [] for k in args.views}
    tracked = 0
    for _ in range(args.rounds):
        for views in args.views:
            tracker = ElysiumTracker(model, processor, views=views)
            start = time.perf_counter()
            by_box = tracker.track_batch([VideoSource.from_frames(frames)], boxes=[demo["box"]])[0]
            by_words = tracker.track_batch([VideoSource.from_frames(frames)], expressions=[demo["expression"]])[0]
            seconds[views] += time.perf_counter() - start
            for result in (by_box, by_words):
                boxes = np.asarray(result.boxes, dtype=np.float64)
                ious[views].append(float(rect_iou(xyxy_to_xywh(boxes[1:]), xyxy_to_xywh(truth[1:])).mean()))
        tracked += 2 * len(frames)
    base = tracked / seconds[args.views[0]]
    print(f"demo video: {len(frames)} frames {demo['frame_size'][0]}x{demo['frame_size'][1]}, by box and by words")
    print(f"{'views':>5} {'frames/s':>9} {'vs first':>9} {'mean IoU (box, words)':>22}")
    for views in args.views:
        rate = tracked / seconds[views]
        box_iou, words_iou = np.mean(ious[views][0::2]), np.mean(ious[views][1::2])
        print(f"{views:>5} {rate:>9.1f} {rate / base:>8.2f}x {box_iou:>11.2f}, {words_iou:.2f}")


if __name__ == "__main__":
    main()
