"""OPE metrics against the got10k toolkit (the installed package, called directly) and, for the pytracking
protocol, against numbers worked out by hand from its rules (pytracking is not installable here)."""

from __future__ import annotations

import types

import numpy as np
import pytest
import torch
from got10k.experiments import ExperimentOTB, ExperimentUAV123
from got10k.utils import metrics as got10k_metrics

from elysium.evaluation.benchmarks import read_uav123, write_results
from elysium.evaluation.ope import (
    NORM_PRECISION_THRESHOLDS,
    SUCCESS_THRESHOLDS,
    center_error,
    normalized_center_error,
    rect_iou,
    score_dataset,
    score_sequence,
    xyxy_to_xywh,
)

# got10k's curve code, called unbound with the bin counts its experiments set.
OTB_BINS = types.SimpleNamespace(nbins_iou=21, nbins_ce=51)


def random_track(rng: np.random.Generator, frames: int, nan_rows: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Ground truth drifting around a 640x480 frame and a noisy tracker with some lost and zero-size frames."""
    size = rng.uniform(8, 120, size=(1, 2))
    start = rng.uniform(0, 400, size=(1, 2))
    steps = np.cumsum(rng.normal(0, 4, size=(frames, 2)), axis=0)
    gt = np.concatenate([start + steps, size * rng.uniform(0.8, 1.25, size=(frames, 2))], axis=1)
    pred = gt + rng.normal(0, 6, size=gt.shape) * np.array([1, 1, 0.5, 0.5])
    lost = rng.random(frames) < 0.15
    pred[lost, :2] += rng.uniform(50, 200, size=(int(lost.sum()), 2))
    pred[rng.random(frames) < 0.03, 2:] = 0.0
    pred[:, 2:] = np.abs(pred[:, 2:])
    if nan_rows:
        gt[rng.choice(np.arange(1, frames), size=nan_rows, replace=False)] = np.nan
    return pred, gt


def got10k_reference(pred: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Success and precision curves of one sequence exactly as got10k's ExperimentUAV123.report builds them."""
    boxes = pred.copy()
    boxes[0] = gt[0]
    ious, errors = ExperimentUAV123._calc_metrics(None, boxes, gt)
    return ExperimentOTB._calc_curves(OTB_BINS, ious, errors)


def got10k_norm_precision_curve(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """got10k master's normalized precision (not in the 0.1.3 release), from its definition: the center offset
    divided per axis by max(1, gt w) and max(1, gt h), fraction <= each of linspace(0, 0.5, 51)."""
    boxes = pred.copy()
    boxes[0] = gt[0]
    keep = ~np.isnan(gt).any(axis=1)
    boxes, gt = boxes[keep], gt[keep]
    offset = (boxes[:, :2] + (boxes[:, 2:] - 1) / 2) - (gt[:, :2] + (gt[:, 2:] - 1) / 2)
    errors = np.hypot(offset[:, 0] / np.maximum(1, gt[:, 2]), offset[:, 1] / np.maximum(1, gt[:, 3]))
    return np.array([np.mean(errors <= t) for t in np.linspace(0, 0.5, 51)])


def test_model_boxes_convert_to_the_scored_layout():
    np.testing.assert_array_equal(xyxy_to_xywh([[10, 20, 15, 60]]), [[10, 20, 5, 40]])
    np.testing.assert_array_equal(xyxy_to_xywh([1, 2, 3, 4]), [[1, 2, 2, 2]])  # one box -> one row
    assert xyxy_to_xywh(np.zeros((0, 4))).shape == (0, 4)


def test_per_frame_errors_match_got10k_package():
    rng = np.random.default_rng(0)
    a = np.concatenate([rng.uniform(-20, 300, (500, 2)), rng.uniform(0, 150, (500, 2))], axis=1)
    b = np.concatenate([rng.uniform(-20, 300, (500, 2)), rng.uniform(0, 150, (500, 2))], axis=1)
    b[:50] = a[:50]  # identical boxes
    b[50:60, 2:] = 0  # zero-size boxes
    np.testing.assert_allclose(rect_iou(a, b), got10k_metrics.rect_iou(a.copy(), b.copy()), rtol=0, atol=1e-12)
    np.testing.assert_allclose(center_error(a, b), got10k_metrics.center_error(a, b), rtol=0, atol=1e-12)
    assert (rect_iou(a, b) > 0).sum() > 100 and (rect_iou(a, b) == 0).sum() > 50  # both cases exercised
    # normalized center error from its definition: offset per axis over the ground truth's max(1, w), max(1, h)
    ca, cb = a[:, :2] + (a[:, 2:] - 1) / 2, b[:, :2] + (b[:, 2:] - 1) / 2
    expected = np.hypot((ca - cb)[:, 0] / np.maximum(1, b[:, 2]), (ca - cb)[:, 1] / np.maximum(1, b[:, 3]))
    np.testing.assert_allclose(normalized_center_error(a, b), expected, rtol=1e-12)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_got10k_protocol_matches_got10k_curves(seed):
    rng = np.random.default_rng(seed)
    pred, gt = random_track(rng, frames=300, nan_rows=25)
    score = score_sequence(pred, gt, "got10k")
    succ, prec = got10k_reference(pred, gt)
    np.testing.assert_allclose(score.success_curve, succ, atol=1e-12)
    np.testing.assert_allclose(score.precision_curve, prec, atol=1e-12)
    np.testing.assert_allclose(score.norm_precision_curve, got10k_norm_precision_curve(pred, gt), atol=1e-12)
    assert score.frames == 300 - 25
    assert 0.05 < score.success_auc < 0.95  # a curve with shape, not all 0 or all 1
    assert score.success_auc == pytest.approx(np.mean(succ), abs=1e-6)
    assert score.precision_20px == pytest.approx(prec[20], abs=1e-6)


def test_got10k_dataset_scores_average_sequence_curves():
    rng = np.random.default_rng(7)
    tracks = [random_track(rng, frames=n, nan_rows=k) for n, k in [(60, 0), (200, 10), (35, 3), (120, 0)]]
    result = score_dataset([score_sequence(p, g, "got10k", name=str(i)) for i, (p, g) in enumerate(tracks)])
    curves = [got10k_reference(p, g) for p, g in tracks]
    succ = np.mean([c[0] for c in curves], axis=0)
    prec = np.mean([c[1] for c in curves], axis=0)
    norm = np.mean([got10k_norm_precision_curve(p, g) for p, g in tracks], axis=0)
    assert result.sequences == 4
    assert result.success_auc == pytest.approx(np.mean(succ), abs=1e-6)  # ExperimentOTB: mean of the mean curve
    assert result.precision_20px == pytest.approx(prec[20], abs=1e-6)
    assert result.norm_precision == pytest.approx(np.mean(norm), abs=1e-6)  # ExperimentLaSOT: mean over 0..0.5
    np.testing.assert_allclose(result.success_curve, succ, atol=1e-12)


def test_got10k_toolkit_end_to_end_on_uav123_layout(tmp_path, monkeypatch):
    """Real UAV123 names and lengths (got10k's table), anno files only: ExperimentUAV123.report vs our reader."""
    rng = np.random.default_rng(11)
    root = tmp_path / "UAV123"
    (root / "anno" / "UAV123").mkdir(parents=True)
    for extra in ("a", "b", "c"):  # got10k's integrity check wants more than 3 entries in the root
        (root / extra).mkdir()
    results = tmp_path / "results"
    predictions = {}
    for name, length in [("uav2", 133), ("uav4", 157), ("bird1_2", 703)]:
        pred, gt = random_track(rng, frames=length, nan_rows=length // 10)
        np.savetxt(root / "anno" / "UAV123" / f"{name}.txt", gt, fmt="%.4f", delimiter=",")
        gt = np.loadtxt(root / "anno" / "UAV123" / f"{name}.txt", delimiter=",")
        write_results(results / "UAV123" / "mytracker", name, pred)
        predictions[name] = pred

    monkeypatch.setattr(ExperimentUAV123, "plot_curves", lambda self, names: None)
    experiment = ExperimentUAV123(str(root), result_dir=str(results), report_dir=str(tmp_path / "reports"))
    reference = experiment.report(["mytracker"])["mytracker"]["overall"]

    benchmark = read_uav123(root, frames=False)
    assert benchmark.names() == ["bird1_2", "uav2", "uav4"] and not benchmark.skipped
    ours = score_dataset(score_sequence(predictions[s.name], s.gt_boxes, "got10k") for s in benchmark)
    assert ours.success_auc == pytest.approx(reference["success_score"], abs=1e-6)
    assert ours.precision_20px == pytest.approx(reference["precision_score"], abs=1e-6)
    np.testing.assert_allclose(ours.success_curve, reference["success_curve"], atol=1e-6)
    np.testing.assert_allclose(ours.precision_curve, reference["precision_curve"], atol=1e-6)


def test_pytracking_thresholds_are_torch_arange_values():
    expected = torch.arange(0.0, 1.0 + 0.05, 0.05, dtype=torch.float64).numpy()
    assert np.array_equal(SUCCESS_THRESHOLDS["pytracking"], expected)
    assert np.array_equal(NORM_PRECISION_THRESHOLDS["pytracking"], torch.arange(0, 51, dtype=torch.float64) / 100.0)
    assert not np.array_equal(SUCCESS_THRESHOLDS["pytracking"], SUCCESS_THRESHOLDS["got10k"])  # 0.65, 0.75


# Hand-worked sequence, 4 frames, ground truth a 10x10 box at the origin (frame 4 varies per case):
#   frame 1: prediction far away, but frame 1 is replaced by ground truth: IoU 1, center error 0.
#   frame 2: [5,0,10,10]: pixel-inclusive intersection x 5..9 (5 px) by y 0..9 (10 px) = 50,
#            union 100 + 100 - 50 = 150, IoU 1/3; centers 9.5 vs 4.5 -> 5 px; normalized 5/10 = 0.5.
#   frame 3: zero-size prediction -> pytracking carries frame 2's box: IoU 1/3, 5 px, 0.5.
# Success thresholds 0, 0.05, .., 0.30 (7 of them) are below 1/3; 0.35 .. 0.95 (13) are not; 1.0 beats nothing.
GT = np.array([[0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 10, 10]], dtype=float)
PRED = np.array([[50, 50, 10, 10], [5, 0, 10, 10], [0, 0, 0, 0], [0, 0, 10, 10]], dtype=float)


def auc(frames_above_third: float, frames_at_one: float, frames: int) -> float:
    """Mean over the 21 thresholds when some frames have IoU 1/3 and some IoU 1 (and the rest fail)."""
    return (7 * (frames_above_third + frames_at_one) + 13 * frames_at_one) / (21 * frames)


def test_pytracking_by_hand_invalid_ground_truth_on_otb():
    gt = GT.copy()
    gt[3] = [0, 0, 0, 0]  # w <= 0: an invalid frame, kept in the denominator
    score = score_sequence(PRED, gt, "pytracking", benchmark="otb")
    assert score.frames == 4
    assert score.success_auc == pytest.approx(auc(2, 1, 4))  # frames 2,3 at 1/3, frame 1 at 1, frame 4 fails
    assert score.precision_20px == pytest.approx(3 / 4)  # 0, 5, 5 px; frame 4 is +inf
    assert score.norm_precision == pytest.approx(2 / 4)  # frame 1 (0) and frame 4 (-1 counts as a success)
    assert score.success_curve[-1] == 0.0  # IoU > 1 never holds

    excluded = score_sequence(PRED, gt, "pytracking", benchmark="otb", exclude_invalid_frames=True)
    assert excluded.frames == 3
    assert excluded.success_auc == pytest.approx(auc(2, 1, 3))
    assert excluded.norm_precision == pytest.approx(2 / 3)


def test_pytracking_by_hand_uav_nan_frames_count_as_precise():
    gt = GT.copy()
    gt[3] = np.nan
    score = score_sequence(PRED, gt, "pytracking", benchmark="uav123")
    assert score.success_auc == pytest.approx(auc(2, 1, 4))
    assert score.precision_20px == pytest.approx(4 / 4)  # UAV: invalid frames get center error -1
    assert score.norm_precision == pytest.approx(2 / 4)


def test_pytracking_by_hand_lasot_absent_frames_fail():
    absent = np.array([False, False, True, False])
    pred = PRED.copy()
    pred[2] = GT[2]  # a perfect box on an absent frame still fails
    score = score_sequence(pred, GT, "pytracking", absent, benchmark="lasot")
    assert score.frames == 4
    assert score.success_auc == pytest.approx(auc(1, 2, 4))  # frame 2 at 1/3; frames 1 and 4 at IoU 1
    assert score.precision_20px == pytest.approx(3 / 4)
    assert score.norm_precision == pytest.approx(2 / 4)  # frames 1 and 4 (0); frame 2 0.5; absent +inf
    # got10k's experiments never read the flags: the perfect box counts
    assert score_sequence(pred, GT, "got10k", absent).success_auc == pytest.approx(auc(1, 3, 4), abs=1e-6)


def test_pytracking_by_hand_normalized_precision_read_at_0_20():
    gt = GT.copy()
    pred = gt.copy()
    pred[1, 0] += 1.45  # normalized error 0.145 (offset over the 10 px width)
    pred[2, 0] += 2.45  # 0.245
    pred[3, 0] += 1.95  # 0.195
    score = score_sequence(pred, gt, "pytracking")
    assert score.norm_precision == pytest.approx(3 / 4)  # 0, 0.145, 0.195 are <= 0.20
    # got10k instead averages the curve over 0, 0.01, .., 0.5: frame 1 passes all 51 thresholds,
    # 0.145 passes 0.15..0.5 (36), 0.195 passes 0.20..0.5 (31), 0.245 passes 0.25..0.5 (26)
    assert score_sequence(pred, gt, "got10k").norm_precision == pytest.approx((51 + 36 + 31 + 26) / (4 * 51))


def test_broken_predictions():
    pred = GT.copy()
    pred[1] = np.nan  # NaN fails every threshold in both protocols (pytracking itself would raise)
    pred[2, 2] = -3.0  # negative width: pytracking would raise, here it fails; got10k scores it as it is
    pytracking = score_sequence(pred, GT, "pytracking")
    assert pytracking.success_curve[0] == pytest.approx(2 / 4)
    assert pytracking.precision_20px == pytest.approx(2 / 4)
    got10k = score_sequence(pred, GT, "got10k")
    assert got10k.success_curve[0] == pytest.approx(2 / 4)  # no overlap with a negative width
    # its center x + (w - 1) / 2 = -2 is 6.5 px from the ground truth's 4.5: within 20 px
    assert got10k.precision_20px == pytest.approx(3 / 4)


def test_length_mismatch_rules():
    short = PRED[:3]
    # pytracking pads a short prediction with zero boxes (IoU 0) except on LaSOT, where it is an error
    padded = score_sequence(short, GT, "pytracking", benchmark="otb")
    assert padded.frames == 4 and padded.success_curve[0] == pytest.approx(3 / 4)
    with pytest.raises(ValueError, match="3 predicted boxes for 4 frames"):
        score_sequence(short, GT, "pytracking", np.zeros(4, bool), benchmark="lasot")
    # got10k (ExperimentLaSOT) cuts both to the shorter
    assert score_sequence(short, GT, "got10k").frames == 3


def test_dataset_guards():
    with pytest.raises(ValueError, match="no sequences"):
        score_dataset([])
    a = score_sequence(PRED, GT, "got10k")
    b = score_sequence(PRED, GT, "pytracking")
    with pytest.raises(ValueError, match="cannot average"):
        score_dataset([a, b])
    with pytest.raises(ValueError, match="no frame has a ground-truth box"):
        score_sequence(PRED, np.full((4, 4), np.nan), "got10k")
    with pytest.raises(ValueError, match="unknown protocol"):
        score_sequence(PRED, GT, "pysot")
    summary = score_dataset([a]).summary()
    assert list(summary) == ["success_auc", "precision_20px", "norm_precision", "sequences"]


@pytest.mark.parametrize("protocol", ["got10k", "pytracking"])
def test_rsot_scores_its_own_first_frame(protocol):
    """Both toolkits hand frame 1's ground truth to a SOT tracker; an RSOT tracker's frame-1 box must be scored."""
    gt = np.array([[10.0, 10.0, 20.0, 20.0]] * 4)
    pred = gt.copy()
    pred[0] = [60.0, 60.0, 20.0, 20.0]  # frame 1 wrong, the rest exact
    given = score_sequence(pred, gt, protocol=protocol)
    own = score_sequence(pred, gt, protocol=protocol, first_frame_given=False)
    assert given.success_auc == pytest.approx(score_sequence(gt, gt, protocol=protocol).success_auc)
    assert own.success_auc < given.success_auc
    assert own.success_curve[-2] == pytest.approx(0.75)  # 3 of 4 frames overlap at the high thresholds
