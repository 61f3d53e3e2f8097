"""Held-out scoring: each task's score beside its baseline, computed from the same records."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from elysium.evaluation.failure_cases import PANELS, SCALE, panel_frames, strip_size, worst_tracks, write_failure_cases
from elysium.evaluation.heldout import (
    central_boxes,
    load_tracks,
    mean_ious,
    most_common_descriptions,
    ope,
    score_heldout,
)
from elysium.inference.benchmark_runner import evaluate_heldout, track_heldout
from elysium.synthetic import synthesize


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


def test_caption_baseline_is_the_most_common_description_of_the_other_tracks():
    unique = {"a": "a red circle", "b": "a blue star", "c": "a green cross"}
    assert most_common_descriptions(unique) == {"a": "a blue star", "b": "a red circle", "c": "a red circle"}
    shared = {"a": "a red circle", "b": "a blue star", "c": "a blue star", "d": "a green cross"}
    # b's own line left out, the three lines are one each: the first seen wins
    assert most_common_descriptions(shared) == {
        "a": "a blue star",
        "b": "a red circle",
        "c": "a red circle",
        "d": "a blue star",
    }
    assert most_common_descriptions({"a": "a red circle"}) == {"a": ""}
    from elysium.evaluation.captions import score_captions

    # The set's own most common line, for every track, scores its own track as perfect (CIDEr-D 10 of it)
    leaked = score_captions(dict.fromkeys(unique, unique["a"]), unique, metrics=["cider"]).cider
    assert score_captions(most_common_descriptions(unique), unique, metrics=["cider"]).cider < leaked


def test_track_then_score_is_evaluate_heldout(tracks):
    predictions = track_heldout(OracleTracker(tracks), tracks, batch_size=2, progress=False)
    assert [p.shape for p in predictions.sot] == [t.boxes.shape for t in tracks]
    scored = score_heldout(OracleTracker(tracks), tracks, predictions, captions=False, progress=False)
    assert scored == evaluate_heldout(OracleTracker(tracks), tracks, batch_size=2, captions=False, progress=False)
    assert mean_ious(predictions.sot, tracks) == pytest.approx([1.0] * len(tracks))


def test_failure_cases_draw_the_worst_track_of_each_condition(tracks, tmp_path):
    marked = [dataclasses.replace(t, flags={**t.flags, "occluded": i < 2}) for i, t in enumerate(tracks)]
    sot = [t.boxes for t in marked]
    sot[1] = sot[1] + [6, 4, 6, 4]  # the second track drifts, the others are exact
    (tmp_path / "stale.png").write_bytes(b"")
    cases = write_failure_cases(marked, {"sot": sot}, tmp_path, model="m", per_condition=1, conditions=["occluded"])

    assert [(c.condition, c.task, c.track_id) for c in cases] == [("occluded", "sot", marked[1].id)]
    assert cases[0].mean_iou < 1 and cases[0].path == tmp_path / f"occluded-sot-{marked[1].id}.png"
    assert sorted(p.name for p in tmp_path.glob("*.png")) == [cases[0].path.name]  # the stale image is gone
    w, h = marked[1].frame_size
    image = Image.open(cases[0].path)
    assert image.size == strip_size((w, h), panels=min(PANELS, len(marked[1].frames)))
    assert image.width > PANELS * SCALE * w and image.height > SCALE * h
    assert cases[0].to_dict(root=tmp_path)["path"] == cases[0].path.name


def test_worst_tracks_rank_only_tracks_with_the_condition(tracks):
    sizes = ["large", *["small"] * (len(tracks) - 1)]
    marked = [dataclasses.replace(t, flags={**t.flags, "size": size}) for t, size in zip(tracks, sizes)]
    ious = [0.0, *[0.9 - 0.1 * i for i in range(1, len(marked))]]
    assert worst_tracks(marked, ious, "small", count=2) == [len(marked) - 1, len(marked) - 2]
    assert panel_frames(12, 6) == [0, 2, 4, 7, 9, 11] and panel_frames(3, 6) == [0, 1, 2]
