"""One-Pass Evaluation (OPE) of single-object trackers, computed the way two named toolkits compute it.

Tracking papers print success AUC, precision and normalized precision, but the toolkits that
produce them differ in small rules that move the numbers; a score is only comparable with scores
of the same protocol, so every result here carries the protocol's name. Boxes are ``x, y, w, h``
in pixels, arrays of shape ``(N, 4)``; one row per frame.

Common to both protocols:

* frame 1 is the initialization frame: the prediction there is replaced by the ground truth and
  the frame is counted (a free success);
* success curve: fraction of frames with IoU **>** t for 21 thresholds t = 0, 0.05, ..., 1; the
  success AUC is the mean of that curve;
* precision curve: fraction of frames whose center error is **<=** d pixels, d = 0, 1, ..., 50,
  centers at ``x + (w - 1) / 2``; "precision" is the curve at 20 px;
* normalized precision curve: the same with the center offset divided per axis by the
  ground-truth width and height, thresholds 0, 0.01, ..., 0.5;
* curves are computed per sequence and then averaged, so every sequence weighs the same.

``protocol="got10k"``: the got10k toolkit's OTB-style experiments (``ExperimentOTB``,
``ExperimentUAV123``, ``ExperimentLaSOT`` of got-10k/toolkit).
``protocol="pytracking"``: ``pytracking/analysis/extract_results.py`` (``calc_seq_err_robust``
and ``extract_results`` with their defaults) plus ``plot_results.py``'s read-outs.

======================  ===========================================  ==============================================
rule                    got10k                                       pytracking
======================  ===========================================  ==============================================
IoU                     ``x + w`` edges, ``eps`` added to the        pixel-inclusive (``x + w - 1``, then ``+ 1``),
                        union, clipped to 0..1                       no eps
NaN ground truth        frame dropped (numerator and denominator)    invalid frame (below)
w <= 0 or h <= 0 gt     scored as it is (IoU 0)                      invalid frame (below)
``absent`` flags        ignored (the experiments never read them)    not-visible frames are invalid frames too
invalid frame           --                                           stays in the denominator; IoU -1 (a failure);
                                                                     center error +inf (a failure), but -1 (a
                                                                     success at every threshold) on UAV123;
                                                                     normalized error -1 (a success), but +inf on
                                                                     LaSOT frames flagged absent
normalized error        offset / ``max(1, gt w or h)``               offset / gt w or h
normalized precision    mean of the curve over 0..0.5                the curve read at 0.20
zero-size prediction    scored as it is                              replaced by the previous frame's prediction
                                                                     (where the ground truth is not NaN)
length mismatch         both cut to the shorter (ExperimentLaSOT)    longer prediction cut; shorter one padded
                                                                     with zero boxes, an error on LaSOT
IoU thresholds          ``np.linspace(0, 1, 21)``                    ``torch.arange(0, 1.05, 0.05)`` values
======================  ===========================================  ==============================================

Where pytracking raises, this module goes on: a NaN, infinite or negative-size prediction fails
the frame at every threshold (so one bad frame from a language model does not stop a benchmark
run; got10k's arithmetic already fails NaN frames, as NaN compares false), and NaN ground truth
outside UAV123 is an invalid frame, as on UAV123.
``exclude_invalid_frames=True`` gives pytracking's optional mode that drops invalid frames from the
denominator (not from the numerator: with it, normalized precision can pass 1, as in pytracking).

Scores are fractions 0..1 here; papers print them x100.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

Protocol = Literal["got10k", "pytracking"]
PROTOCOLS: tuple[str, ...] = ("got10k", "pytracking")

PRECISION_PIXELS = 20  # precision is read at 20 px in both toolkits
PYTRACKING_NORM_PRECISION_INDEX = 20  # pytracking reads normalized precision at threshold 0.20


def _frozen(values: np.ndarray) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    values.setflags(write=False)
    return values


# pytracking builds its IoU thresholds with torch.arange(0.0, 1.05, 0.05, dtype=torch.float64); torch's values at
# 0.65 and 0.75 differ in the last bit from numpy's linspace and arange, so they are written out to compare exactly.
_PYTRACKING_IOU_THRESHOLDS = [
    0.0, 0.05, 0.1, 0.15000000000000002, 0.2, 0.25, 0.30000000000000004, 0.35000000000000003, 0.4, 0.45, 0.5,
    0.55, 0.6000000000000001, 0.6500000000000001, 0.7000000000000001, 0.7500000000000001, 0.8, 0.8500000000000001,
    0.9, 0.9500000000000001, 1.0,
]  # fmt: skip
SUCCESS_THRESHOLDS: dict[str, np.ndarray] = {
    "got10k": _frozen(np.linspace(0, 1, 21)),  # ExperimentOTB: np.linspace(0, 1, nbins_iou=21)
    "pytracking": _frozen(_PYTRACKING_IOU_THRESHOLDS),
}
PRECISION_THRESHOLDS: np.ndarray = _frozen(np.arange(0, 51))
NORM_PRECISION_THRESHOLDS: dict[str, np.ndarray] = {
    "got10k": _frozen(np.linspace(0, 0.5, 51)),
    "pytracking": _frozen(np.arange(0, 51, dtype=np.float64) / 100.0),
}


def _as_boxes(boxes: Any, what: str) -> np.ndarray:
    array = np.asarray(boxes, dtype=np.float64)
    if array.ndim == 1 and array.shape[0] == 4:
        array = array[np.newaxis, :]
    if array.ndim != 2 or array.shape[1] != 4:
        raise ValueError(f"{what} must be an (N, 4) array of x,y,w,h boxes, got shape {array.shape}")
    return array


def xyxy_to_xywh(boxes: Any) -> np.ndarray:
    """`[x1,y1,x2,y2]` rows (the model's boxes) -> `(N, 4)` `x,y,w,h`, the layout scored here and by the toolkits."""
    array = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    return np.concatenate([array[:, :2], array[:, 2:] - array[:, :2]], axis=1)


# ---------------------------------------------------------------------------------------------------------
# Per-frame errors, got10k definitions (got10k/utils/metrics.py)
# ---------------------------------------------------------------------------------------------------------


def rect_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of x,y,w,h boxes row by row, as got10k computes it (``eps`` in the union, clipped to 0..1)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"box arrays differ in shape: {a.shape} and {b.shape}")
    x1 = np.maximum(a[..., 0], b[..., 0])
    y1 = np.maximum(a[..., 1], b[..., 1])
    x2 = np.minimum(a[..., 0] + a[..., 2], b[..., 0] + b[..., 2])
    y2 = np.minimum(a[..., 1] + a[..., 3], b[..., 1] + b[..., 3])
    inter = np.maximum(x2 - x1, 0) * np.maximum(y2 - y1, 0)
    union = np.prod(a[..., 2:], axis=-1) + np.prod(b[..., 2:], axis=-1) - inter
    return np.clip(inter / (union + np.finfo(float).eps), 0.0, 1.0)


def _centers(boxes: np.ndarray) -> np.ndarray:
    return boxes[..., :2] + (boxes[..., 2:] - 1) / 2


def center_error(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Distance in pixels between box centers ``x + (w - 1) / 2`` (the got10k and pytracking convention)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    return np.sqrt(np.sum(np.power(_centers(a) - _centers(b), 2), axis=-1))


def normalized_center_error(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Center offset divided per axis by the ground truth's ``max(1, w)`` and ``max(1, h)``, as got10k does.

    The order matters: the second argument is the ground truth that sets the scale.
    """
    pred = np.asarray(pred, dtype=np.float64)
    gt = np.asarray(gt, dtype=np.float64)
    scale = np.maximum(np.ones(2), gt[..., 2:])
    return np.sqrt(np.sum(np.power((_centers(pred) - _centers(gt)) / scale, 2), axis=-1))


# ---------------------------------------------------------------------------------------------------------
# Per-frame errors, pytracking definitions (pytracking/analysis/extract_results.py)
# ---------------------------------------------------------------------------------------------------------


def _pytracking_iou(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    top_left = np.maximum(pred[:, :2], gt[:, :2])
    bottom_right = np.minimum(pred[:, :2] + pred[:, 2:] - 1.0, gt[:, :2] + gt[:, 2:] - 1.0)
    size = np.clip(bottom_right - top_left + 1.0, 0, None)
    inter = size.prod(axis=1)
    union = pred[:, 2:].prod(axis=1) + gt[:, 2:].prod(axis=1) - inter
    return inter / union


def _pytracking_center_error(pred: np.ndarray, gt: np.ndarray, normalized: bool = False) -> np.ndarray:
    pred_center = pred[:, :2] + 0.5 * (pred[:, 2:] - 1.0)
    gt_center = gt[:, :2] + 0.5 * (gt[:, 2:] - 1.0)
    if normalized:
        pred_center = pred_center / gt[:, 2:]
        gt_center = gt_center / gt[:, 2:]
    return np.sqrt(((pred_center - gt_center) ** 2).sum(axis=1))


# ---------------------------------------------------------------------------------------------------------
# Scores
# ---------------------------------------------------------------------------------------------------------


def _read_outs(protocol: str, success: np.ndarray, precision: np.ndarray, norm: np.ndarray) -> tuple[float, ...]:
    """(success AUC, precision at 20 px, normalized precision) from the three curves, per protocol."""
    norm_precision = float(np.mean(norm)) if protocol == "got10k" else float(norm[PYTRACKING_NORM_PRECISION_INDEX])
    return float(np.mean(success)), float(precision[PRECISION_PIXELS]), norm_precision


@dataclass(frozen=True)
class SequenceScore:
    """The three curves of one sequence; ``frames`` is the denominator they were computed with."""

    name: str
    protocol: str
    success_curve: np.ndarray
    precision_curve: np.ndarray
    norm_precision_curve: np.ndarray
    frames: int

    @property
    def success_auc(self) -> float:
        return _read_outs(self.protocol, self.success_curve, self.precision_curve, self.norm_precision_curve)[0]

    @property
    def precision_20px(self) -> float:
        return float(self.precision_curve[PRECISION_PIXELS])

    @property
    def norm_precision(self) -> float:
        return _read_outs(self.protocol, self.success_curve, self.precision_curve, self.norm_precision_curve)[2]


@dataclass(frozen=True)
class OPEResult:
    """Dataset-level OPE scores (fractions 0..1), the averaged curves and their thresholds."""

    protocol: str
    success_auc: float
    precision_20px: float
    norm_precision: float
    sequences: int
    success_curve: np.ndarray
    precision_curve: np.ndarray
    norm_precision_curve: np.ndarray
    per_sequence: tuple[SequenceScore, ...] = field(default=(), repr=False)

    @property
    def success_thresholds(self) -> np.ndarray:
        return SUCCESS_THRESHOLDS[self.protocol]

    @property
    def precision_thresholds(self) -> np.ndarray:
        return PRECISION_THRESHOLDS

    @property
    def norm_precision_thresholds(self) -> np.ndarray:
        return NORM_PRECISION_THRESHOLDS[self.protocol]

    def summary(self) -> dict[str, float | int]:
        """The headline numbers: what ``elysium score --json`` prints."""
        return {
            "success_auc": self.success_auc,
            "precision_20px": self.precision_20px,
            "norm_precision": self.norm_precision,
            "sequences": self.sequences,
        }

    def to_dict(self, per_sequence: bool = True) -> dict[str, Any]:
        """Everything as JSON-ready Python values: summary, protocol, curves with thresholds, per sequence."""
        report: dict[str, Any] = {"protocol": self.protocol, **self.summary()}
        report["curves"] = {
            "success": {"thresholds": self.success_thresholds.tolist(), "values": self.success_curve.tolist()},
            "precision": {"thresholds": self.precision_thresholds.tolist(), "values": self.precision_curve.tolist()},
            "norm_precision": {
                "thresholds": self.norm_precision_thresholds.tolist(),
                "values": self.norm_precision_curve.tolist(),
            },
        }
        if per_sequence:
            report["per_sequence"] = {
                s.name: {
                    "success_auc": s.success_auc,
                    "precision_20px": s.precision_20px,
                    "norm_precision": s.norm_precision,
                    "frames": s.frames,
                }
                for s in self.per_sequence
            }
        return report


def _score_got10k(pred: np.ndarray, gt: np.ndarray, name: str, first_frame_given: bool = True) -> SequenceScore:
    length = min(len(pred), len(gt))  # ExperimentLaSOT cuts both to the shorter; ExperimentOTB asserts equal
    pred, gt = pred[:length].copy(), gt[:length]
    if first_frame_given:
        pred[0] = gt[0]
    valid = ~np.any(np.isnan(gt), axis=1)
    if not valid.any():
        raise ValueError(f"sequence {name!r}: no frame has a ground-truth box")
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        ious = rect_iou(pred[valid], gt[valid])
        errors = center_error(pred[valid], gt[valid])
        norm_errors = normalized_center_error(pred[valid], gt[valid])
        protocol = "got10k"
        success = np.mean(ious[:, None] > SUCCESS_THRESHOLDS[protocol][None, :], axis=0)
        precision = np.mean(errors[:, None] <= PRECISION_THRESHOLDS[None, :], axis=0)
        norm = np.mean(norm_errors[:, None] <= NORM_PRECISION_THRESHOLDS[protocol][None, :], axis=0)
    return SequenceScore(name, protocol, success, precision, norm, int(valid.sum()))


def _pytracking_rules(benchmark: str | None) -> str:
    """pytracking switches rules on its dataset name: 'lasot', 'uav', or anything else."""
    key = (benchmark or "").lower()
    if key.startswith("lasot"):
        return "lasot"
    if key.startswith("uav"):
        return "uav"
    return "other"


def _score_pytracking(
    pred: np.ndarray,
    gt: np.ndarray,
    absent: np.ndarray | None,
    benchmark: str | None,
    exclude_invalid_frames: bool,
    name: str,
    first_frame_given: bool = True,
) -> SequenceScore:
    rules = _pytracking_rules(benchmark)
    pred = pred.copy()
    count = len(gt)
    gt_has_nan = np.isnan(gt).any(axis=1)
    # Zero-size predictions carry the previous frame's prediction (in order, so runs of them chain).
    zero_size = (pred[:, 2:] == 0.0).any(axis=1)
    for i in np.flatnonzero(zero_size[: min(len(pred), count)]):
        if i > 0 and not gt_has_nan[i]:
            pred[i] = pred[i - 1]
    if len(pred) > count:
        pred = pred[:count]
    elif len(pred) < count:
        if rules == "lasot":
            raise ValueError(f"sequence {name!r}: {len(pred)} predicted boxes for {count} frames")
        pred = np.concatenate([pred, np.zeros((count - len(pred), 4))], axis=0)
    if first_frame_given:
        pred[0] = gt[0]

    size_ok = (gt[:, 2:] > 0.0).sum(axis=1) == 2  # NaN > 0 is False: NaN rows are invalid
    visible = None if absent is None else ~absent
    valid = size_ok if visible is None else size_ok & visible
    # pytracking raises on these; here they fail every threshold.
    broken = ~np.isfinite(pred).all(axis=1) | (pred[:, 2:] < 0.0).any(axis=1)

    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        errors = _pytracking_center_error(pred, gt)
        norm_errors = _pytracking_center_error(pred, gt, normalized=True)
        overlap = _pytracking_iou(pred, gt)
    overlap[broken] = -1.0
    errors[broken] = np.inf
    norm_errors[broken] = np.inf

    errors[~valid] = -1.0 if rules == "uav" else np.inf
    norm_errors[~valid] = -1.0
    overlap[~valid] = -1.0
    if rules == "lasot" and visible is not None:
        norm_errors[~visible] = np.inf
        errors[~visible] = np.inf

    length = int(valid.sum()) if exclude_invalid_frames else count
    if length <= 0:
        raise ValueError(f"sequence {name!r}: no valid frame to score")
    protocol = "pytracking"
    with np.errstate(invalid="ignore"):
        success = (overlap[:, None] > SUCCESS_THRESHOLDS[protocol][None, :]).sum(axis=0) / length
        precision = (errors[:, None] <= PRECISION_THRESHOLDS[None, :]).sum(axis=0) / length
        norm = (norm_errors[:, None] <= NORM_PRECISION_THRESHOLDS[protocol][None, :]).sum(axis=0) / length
    return SequenceScore(name, protocol, success, precision, norm, length)


def score_sequence(
    pred: Any,
    gt: Any,
    protocol: Protocol = "got10k",
    absent: Any = None,
    *,
    benchmark: str | None = None,
    exclude_invalid_frames: bool = False,
    name: str = "",
    first_frame_given: bool = True,
) -> SequenceScore:
    """Curves of one sequence under ``protocol`` (see the module docstring for the rules).

    ``first_frame_given``: both toolkits overwrite frame 1's prediction with its ground truth, as a SOT tracker is
    handed that box; a tracker started from words (RSOT) predicts frame 1 itself, so pass False to score it.

    ``absent``: per-frame flags, True where the target is not visible (LaSOT's full occlusion or
    out of view, GOT-10k's absence.label); only pytracking uses them. ``benchmark`` selects
    pytracking's per-dataset rules ("lasot", "uav123"; others share one rule set).
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; choose one of {', '.join(PROTOCOLS)}")
    pred = _as_boxes(pred, "predicted boxes")
    gt = _as_boxes(gt, "ground-truth boxes")
    if len(gt) == 0 or len(pred) == 0:
        raise ValueError(f"sequence {name!r}: no boxes to score ({len(pred)} predicted, {len(gt)} ground truth)")
    flags = None
    if absent is not None:
        flags = np.asarray(absent, dtype=bool).reshape(-1)
        if len(flags) != len(gt):
            raise ValueError(f"sequence {name!r}: {len(flags)} absent flags for {len(gt)} ground-truth boxes")
    if protocol == "got10k":
        return _score_got10k(pred, gt, name, first_frame_given)
    return _score_pytracking(pred, gt, flags, benchmark, exclude_invalid_frames, name, first_frame_given)


def score_dataset(results: Iterable[SequenceScore], protocol: Protocol | None = None) -> OPEResult:
    """Average per-sequence curves (each sequence weighs the same) and read the scores off the mean curves."""
    scores = tuple(results)
    if not scores:
        raise ValueError("no sequences to score")
    protocols = {s.protocol for s in scores}
    if len(protocols) > 1 or (protocol is not None and protocols != {protocol}):
        wanted = protocol or "one protocol"
        raise ValueError(f"sequence scores come from {sorted(protocols)}; cannot average them as {wanted}")
    used = scores[0].protocol
    success = np.mean(np.stack([s.success_curve for s in scores]), axis=0)
    precision = np.mean(np.stack([s.precision_curve for s in scores]), axis=0)
    norm = np.mean(np.stack([s.norm_precision_curve for s in scores]), axis=0)
    auc, p20, norm_precision = _read_outs(used, success, precision, norm)
    return OPEResult(used, auc, p20, norm_precision, len(scores), success, precision, norm, scores)
