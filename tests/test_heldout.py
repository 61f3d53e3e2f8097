"""Held-out scoring: each task's score beside its baseline, computed from the same records."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from elysium.evaluation.heldout import central_boxes, evaluate_heldout, load_tracks, ope
from elysium.training.synth import synthesize


class OracleTracker:
    """Answers with the ground truth, so the expected scores are known.

    `evaluate_heldout` tracks each chunk by box (SOT) and then by expression (RSOT), in order.
    """

    def __init__(self, tracks):
        self.pending = list(tracks)
        self.chunk = []

    def track_batch(self, sources, boxes=None, expressions=None):
        if expressions is None:  # a new chunk starts with its SOT pass
            self.chunk, self.pending = self.pending[: len(sources)], self.pending[len(sources) :]
        return [SimpleNamespace(boxes=t.boxes.tolist()) for t in self.chunk]

    def describe(self, frames, box):
        return "a red circle"


@pytest.fixture(scope="module")
def tracks(tmp_path_factory):
    root = tmp_path_factory.mktemp("heldout")
    synthesize(root, videos=3, seed=4242, frames_per_video=(10, 12), size=(64, 48), progress=False)
    return load_tracks(root / "annotations.jsonl")


def test_perfect_tracker_scores_as_ground_truth_and_beats_baselines(tracks):
    report = evaluate_heldout(OracleTracker(tracks), tracks, batch_size=2, captions=False, progress=False)
    perfect = ope([t.boxes for t in tracks], tracks)
    assert report["sot"]["success_auc"] == pytest.approx(perfect.success_auc)
    assert report["rsot"]["success_auc"] == pytest.approx(perfect.success_auc)
    first_box = ope([np.repeat(t.boxes[:1], len(t.frames), 0) for t in tracks], tracks)
    assert report["sot_baseline_first_box"]["success_auc"] == pytest.approx(first_box.success_auc)
    assert report["sot"]["success_auc"] > report["sot_baseline_first_box"]["success_auc"]
    assert report["rsot"]["success_auc"] > report["rsot_baseline_central_box"]["success_auc"]
    assert set(report["by_condition"]) >= {"occluded", "has_distractor", "small"}


def test_central_baseline_is_one_centred_box_of_median_size(tracks):
    boxes = central_boxes(tracks)
    for track, box in zip(tracks, boxes):
        w, h = track.frame_size
        assert np.allclose(box, box[0]) and len(box) == len(track.frames)
        assert (box[0, 0] + box[0, 2]) / 2 == pytest.approx(w / 2) and (box[0, 1] + box[0, 3]) / 2 == pytest.approx(
            h / 2
        )
