"""A classical tracker on the held-out generated tracks: OpenCV's CSRT (untrained, one thread) from the first box,
scored exactly as `elysium heldout` scores a model (got10k protocol, the first 16 frames of each track), beside
repeating the first box and, when a held-out report is given, the model's own scores.

CSRT ships in OpenCV's contrib build, an optional extra: `pip install -e ".[bench]"`.

    python benchmarks/csrt_baseline.py [--data runs/eval/heldout/data] [--report docs/elysium-tiny/heldout/report.json]

Without `--data` it generates the held-out set as `elysium heldout` does (seed 1001, 60 videos) into `--out`.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from elysium.evaluation.heldout import first_boxes, load_tracks, ope, summary
from elysium.inference.heldout_cli import SYNTH_FRAMES, SYNTH_SIZE


def csrt_track(frames: list[np.ndarray], first_box: np.ndarray) -> tuple[np.ndarray, float]:
    """CSRT's pixel boxes `[x1,y1,x2,y2]` for every frame (frame 1 is the given box), and its seconds a frame."""
    import cv2

    x1, y1, x2, y2 = (float(v) for v in first_box)
    tracker = cv2.TrackerCSRT_create()
    tracker.init(
        cv2.cvtColor(frames[0], cv2.COLOR_RGB2BGR),
        (int(round(x1)), int(round(y1)), max(1, int(round(x2 - x1))), max(1, int(round(y2 - y1)))),
    )
    boxes, last = [first_box.astype(np.float64)], first_box.astype(np.float64)
    start = time.perf_counter()
    for frame in frames[1:]:
        found, (x, y, w, h) = tracker.update(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
        if found:  # a lost target keeps its last box, as a tracker's output file would
            last = np.array([x, y, x + w, y + h], dtype=np.float64)
        boxes.append(last)
    return np.stack(boxes), (time.perf_counter() - start) / max(1, len(frames) - 1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=None, help="an ElysiumTrack folder (default: generate the held-out set)")
    parser.add_argument("--out", default="runs/eval/heldout", help="where the generated set goes (default %(default)s)")
    parser.add_argument("--seed", type=int, default=1001)
    parser.add_argument("--videos", type=int, default=60)
    parser.add_argument("--max-frames", type=int, default=16)
    parser.add_argument("--report", default=None, help="an `elysium heldout` report.json to print beside CSRT")
    args = parser.parse_args()
    try:
        import cv2
    except ImportError:
        print(
            'error: OpenCV is not installed; pip install -e ".[bench]" (opencv-contrib-python-headless)',
            file=sys.stderr,
        )
        return 2
    if not hasattr(cv2, "TrackerCSRT_create"):
        print("error: this OpenCV has no CSRT; install opencv-contrib-python-headless instead", file=sys.stderr)
        return 2
    cv2.setNumThreads(1)

    data = Path(args.data) if args.data else Path(args.out) / "data"
    if not (data / "annotations.jsonl").is_file():
        from elysium.synthetic import synthesize

        synthesize(data, args.videos, args.seed, frames_per_video=SYNTH_FRAMES, size=SYNTH_SIZE)
    tracks = load_tracks(data / "annotations.jsonl", max_frames=args.max_frames)

    predictions, per_frame = [], []
    for track in tqdm(tracks, desc="CSRT"):
        boxes, seconds = csrt_track(track.frames, track.boxes[0])
        predictions.append(boxes)
        per_frame.append(seconds)
    rows = {
        "CSRT (OpenCV, untrained)": summary(ope(predictions, tracks)),
        "first box": summary(ope(first_boxes(tracks), tracks)),
    }
    if args.report:
        report = json.loads(Path(args.report).read_text())
        for name, result in report["models"].items():
            rows[name] = result["sot"]
    print(f"{len(tracks)} tracks of {data}, first {args.max_frames} frames, SOT, got10k protocol (scores x100)")
    print("| tracker | SOT AUC | precision (20 px) |")
    print("| :-- | --: | --: |")
    for name, scores in rows.items():
        print(f"| {name} | {100 * scores['success_auc']:.1f} | {100 * scores['precision_20px']:.1f} |")
    print(f"CSRT speed: {1 / float(np.mean(per_frame)):.0f} frames/s on one thread")
    return 0


if __name__ == "__main__":
    sys.exit(main())
