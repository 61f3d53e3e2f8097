"""The funnel's filters on one trajectory: tracker confidence, Kalman drift, detector/tracker agreement.

Boxes are pixels `[x1, y1, x2, y2]`; a frame where the tracker lost the object has a NaN box and confidence 0.
Each check returns a reason (a key of the funnel counts) or None, so a dropped trajectory says why.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

# The paper's thresholds (Sec. 3.2), the defaults of `elysium data build`'s flags of the same names.
PAPER_DETECTOR_THRESHOLD = 0.6
PAPER_TRACKER_THRESHOLD = 0.8
PAPER_IOU_THRESHOLD = 0.3
# The paper gives no number for "extreme drift". We gate the Kalman filter's normalized innovation squared
# (a chi-square variable with 4 degrees of freedom for a box measurement when the motion model holds) at its
# 99.9 % quantile: a box that lands where a constant-velocity object would be only once in a thousand frames.
KALMAN_GATE_999 = 18.4668

LOW_CONFIDENCE = "tracker_confidence_below_threshold"
DRIFT = "kalman_drift"
DISAGREE_MIDDLE = "iou_below_threshold_middle_frame"
DISAGREE_LAST = "iou_below_threshold_last_frame"
# Passed every filter, but a frame's box has no area left once cut to the frame: the record would be invalid.
OUTSIDE_FRAME = "box_outside_frame"
TRACK_REASONS = (LOW_CONFIDENCE, DRIFT, DISAGREE_MIDDLE, DISAGREE_LAST, OUTSIDE_FRAME)


@dataclass(frozen=True)
class FunnelThresholds:
    """The funnel's cut-offs; defaults are the paper's (and 99.9 % for the drift gate, which it leaves open)."""

    detector: float = PAPER_DETECTOR_THRESHOLD  # keep a chunk's box when the detector scores it above this
    tracker: float = PAPER_TRACKER_THRESHOLD  # keep a trajectory whose confidence stays above this on every frame
    iou: float = PAPER_IOU_THRESHOLD  # drop a trajectory whose IoU with the detector is below this (middle, last)
    kalman_gate: float = KALMAN_GATE_999  # drop a trajectory whose Kalman NIS exceeds this on some frame

    def check(self) -> None:
        for name in ("detector", "tracker", "iou"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"--{name}-threshold {value}: give a number in 0..1")
        if self.kalman_gate <= 0:
            raise ValueError(f"--kalman-gate {self.kalman_gate}: give a positive number (chi-square, 4 dof)")


def box_iou(a: Sequence[float], b: Sequence[float]) -> float:
    """IoU of two `[x1, y1, x2, y2]` boxes; 0 when either is missing (NaN) or empty."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        return 0.0
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def confidence_problem(confidence: np.ndarray, threshold: float) -> str | None:
    """The paper keeps trajectories whose tracking confidence is above the threshold "consistently across all
    frames": one frame at or below it (a lost object has confidence 0) drops the trajectory."""
    confidence = np.asarray(confidence, dtype=float)
    return LOW_CONFIDENCE if confidence.size == 0 or not np.all(confidence > threshold) else None


def kalman_nis(boxes: np.ndarray) -> np.ndarray:
    """Normalized innovation squared of each frame's box under a constant-velocity Kalman filter (filterpy).

    State `[cx, cy, w, h]` and their velocities, measured `[cx, cy, w, h]`, with noise proportional to the box
    size as in DeepSORT/ByteTrack (position std 1/20 of the box's mean side). DeepSORT's velocity noise (1/160)
    is for walking people at 30 fps; objects in web video turn, bounce and zoom, so velocity may change by 1/8 of
    the box per frame here: on `elysium data synth` tracks (bounces, sudden turns, 1 % box noise) the largest NIS
    of a true track was 16.1, and a track that jumps half a frame away scored 40 and more (tests/test_data_engine.py
    checks both sides of the default gate). Frame 0 initialises the filter
    (NIS 0). A box that jumps far from where the motion so far puts it gets a large NIS; a track that slides
    slowly off its object does not (the filter follows it), which is what the IoU agreement check catches.
    """
    from filterpy.kalman import KalmanFilter

    boxes = np.asarray(boxes, dtype=float)
    nis = np.zeros(len(boxes))
    if len(boxes) == 0 or not np.all(np.isfinite(boxes)):
        return np.full(len(boxes), np.inf)
    z = np.stack(
        [
            (boxes[:, 0] + boxes[:, 2]) / 2,
            (boxes[:, 1] + boxes[:, 3]) / 2,
            boxes[:, 2] - boxes[:, 0],
            boxes[:, 3] - boxes[:, 1],
        ],
        axis=1,
    )
    kf = KalmanFilter(dim_x=8, dim_z=4)
    kf.F = np.eye(8)
    kf.F[:4, 4:] = np.eye(4)
    kf.H = np.eye(4, 8)
    pos, vel = 1.0 / 20, 1.0 / 8
    scale = max(float(z[0, 2:].mean()), 1.0)
    kf.x = np.concatenate([z[0], np.zeros(4)])
    kf.P = np.diag(np.square([2 * pos * scale] * 4 + [10 * vel * scale] * 4))
    for t in range(1, len(z)):
        scale = max(float(kf.x[2:4].mean()), 1.0)
        kf.Q = np.diag(np.square([pos * scale] * 4 + [vel * scale] * 4))
        kf.R = np.diag(np.square([pos * scale] * 4))
        kf.predict()
        kf.update(z[t])
        nis[t] = float(kf.y @ kf.SI @ kf.y)
    return nis


def drift_problem(boxes: np.ndarray, gate: float) -> tuple[str | None, float]:
    """`(DRIFT or None, the largest NIS)`: the trajectory drifts when any frame's NIS is above `gate`."""
    nis = kalman_nis(boxes)
    worst = float(nis.max()) if len(nis) else 0.0
    return (DRIFT if worst > gate else None), worst


def agreement_problem(
    track_boxes: np.ndarray, detections: dict[int, Sequence[float]], threshold: float
) -> tuple[str | None, dict[int, float]]:
    """Compare the tracker's and the detector's boxes at the middle and last frames (`detections`: frame index ->
    box, in that order); the first one below `threshold` names the reason. Returns the IoUs too."""
    ious = {t: box_iou(track_boxes[t], box) for t, box in detections.items()}
    reasons = (DISAGREE_MIDDLE, DISAGREE_LAST)
    for reason, iou in zip(reasons, ious.values()):
        if iou < threshold:
            return reason, ious
    return None, ious
