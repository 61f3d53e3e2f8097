"""`--preview N`: an annotated clip per video, to judge the thresholds by eye.

Every frame shows each trajectory (green: kept; red: dropped, labelled with the reason) and, on the first, middle
and last frames, the detector's box of each chunk (yellow, "det <chunk number> <score>"; orange when below the
threshold). The chunk numbers match the trajectories' labels.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

KEPT, DROPPED, DETECTED, LOW = (40, 200, 60), (220, 40, 40), (240, 215, 40), (245, 135, 30)


def write_preview(
    path: Path, video: Any, chunks: list, detections: dict[int, list], verdicts: list, threshold: float
) -> Path:
    from elysium.processing.video import draw_boxes, write_video

    def frames():
        for t, frame in enumerate(video.frames):
            boxes, colors, labels = [], [], []
            for c, detection in enumerate(detections.get(t, [])):  # drawn first: the tracks' labels stay on top
                if detection is not None and c < len(chunks):
                    boxes.append(detection.box)
                    colors.append(DETECTED if detection.score > threshold else LOW)
                    labels.append(f"det {c} {detection.score:.2f}")
            for chunk, _, trajectory, problem in verdicts:
                c = chunks.index(chunk)
                boxes.append(trajectory.boxes[t])
                colors.append(DROPPED if problem else KEPT)
                labels.append(f"{c} {chunk.text}: {problem or 'kept'}" if t == 0 or problem else None)
            yield draw_boxes(frame, boxes, colors, labels, thickness=1) if boxes else np.asarray(frame)

    write_video(path, frames(), fps=max(float(video.fps), 1.0))
    return path
