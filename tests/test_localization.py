"""The localization diagnostic: REC boxes and SOT motion scored against what no perception gives."""

from __future__ import annotations

import json

import numpy as np
import PIL.Image
import pytest

from elysium.evaluation.heldout import Track
from experiments.localization import (
    attribute_naming,
    box_scores,
    grounding_scores,
    main,
    motion_agreement,
    next_frame_error,
)


def test_box_scores_by_hand():
    truth = np.array([[0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 10, 10]], dtype=float)
    sizes = np.array([[100, 50]] * 3, dtype=float)
    scores = box_scores([[0, 0, 10, 10], [5, 0, 15, 10], None], truth, sizes)
    # IoU 1, 1/3 (half a box to the right), 0 (missing); centre distances 0, 5/100, 1
    assert scores["mean_iou"] == pytest.approx((1 + 1 / 3) / 3, abs=1e-4)
    assert scores["iou_at_least_0.5"] == pytest.approx(1 / 3, abs=1e-4)
    assert scores["centre_distance"] == pytest.approx((0 + 0.05 + 1) / 3, abs=1e-4)
    assert scores["centre_on_target"] == pytest.approx(2 / 3, abs=1e-4)  # (10, 5) is on the box's edge: inside
    assert box_scores([[20, 0, 30, 10]], truth[:1], sizes[:1])["centre_on_target"] == 0.0


class PixelOracle:
    """Grounds by reading the image: the box around its red pixels (what a model that localizes would answer)."""

    def ground(self, image, expression):
        red = np.argwhere((np.asarray(image)[..., 0] > 200) & (np.asarray(image)[..., 1] < 50))
        return [red[:, 1].min(), red[:, 0].min(), red[:, 1].max() + 1, red[:, 0].max() + 1]


class Constant:
    def ground(self, image, expression):
        return [0, 0, image.size[0] / 2, image.size[1] / 2]


def test_grounding_scores_tell_a_reader_from_a_constant_box(tmp_path):
    rng = np.random.default_rng(0)
    records = []
    for i in range(12):
        image = PIL.Image.new("RGB", (160, 120), (90, 90, 90))
        x, y = int(rng.integers(0, 140)), int(rng.integers(0, 100))
        image.paste((255, 0, 0), (x, y, x + 16, y + 16))
        image.save(tmp_path / f"{i}.png")
        records.append(
            {"image": f"{i}.png", "box": [x / 160, y / 120, (x + 16) / 160, (y + 16) / 120], "expression": "red"}
        )
    for context in (None, 3.0):
        oracle = grounding_scores(PixelOracle(), records, tmp_path, context=context, progress=False)
        assert oracle["model"]["mean_iou"] > 0.9 and oracle["model"]["centre_distance"] < 0.02  # crops: pixel rounding
        assert oracle["constant_box"]["mean_iou"] < 0.5 and oracle["constant_box"]["centre_distance"] > 0.05
    constant = grounding_scores(Constant(), records, tmp_path, progress=False)
    assert constant["model"]["mean_iou"] < 0.3 and constant["samples"] == 12


def _track(boxes) -> Track:
    boxes = np.asarray(boxes, dtype=float)
    return Track("t", [], boxes, "", "", (160, 120))


def test_motion_agreement_follows_the_direction_and_length():
    track = _track([[10, 10, 20, 20], [20, 10, 30, 20], [30, 10, 40, 20]])  # moves 20 px right
    assert motion_agreement([track.boxes], [track]) == {"tracks": 1, "mean_cosine": 1.0, "median_length_ratio": 1.0}
    still = np.repeat(track.boxes[:1], 3, 0)
    assert motion_agreement([still], [track])["median_length_ratio"] == 0.0
    backwards = track.boxes - [[0, 0, 0, 0], [20, 0, 20, 0], [40, 0, 40, 0]]
    assert motion_agreement([backwards], [track])["mean_cosine"] == pytest.approx(-1.0)
    assert motion_agreement([still], [_track(still)])["tracks"] == 0  # a target that does not move is left out


def test_next_frame_error_is_zero_on_the_target_and_the_first_box_s_when_copying():
    track = _track([[10, 10, 20, 20], [15, 10, 25, 20], [30, 10, 40, 20]])  # 5 px right in frame 2: half a side
    assert next_frame_error([track.boxes], [track]) == {
        "tracks": 1,
        "median_centre_error": 0.0,
        "median_centre_error_first_box": 0.5,
    }
    still = np.repeat(track.boxes[:1], 3, 0)
    assert next_frame_error([still], [track])["median_centre_error"] == 0.5
    overshoot = track.boxes + [[0, 0, 0, 0], [10, 0, 10, 0], [0, 0, 0, 0]]
    assert next_frame_error([overshoot], [track])["median_centre_error"] == 1.0
    assert next_frame_error([still[:1]], [_track(still[:1])])["tracks"] == 0  # one frame: nothing to track


def test_cli_on_generated_data(model_dir, tmp_path, capsys):
    from elysium.synthetic import synthesize

    synthesize(tmp_path / "data", videos=1, seed=4244, frames_per_video=(8, 8), size=(64, 48), progress=False)
    common = ["--model", str(model_dir), "--data", str(tmp_path / "data"), "--samples", "2"]
    assert main([*common, "--max-frames", "4", "--context", "2", "--out", str(tmp_path / "loc.json")]) == 0
    report = json.loads((tmp_path / "loc.json").read_text())
    assert report["grounding_whole"]["samples"] == 2 and report["grounding_crops"]["context"] == 2.0
    assert set(report["sot_motion"]) == {"tracks", "mean_cosine", "median_length_ratio"}
    assert report["looks"]["tracks"] == 2 and {"color", "shape", "size", "texture"} <= set(report["looks"])
    assert main(["--data", str(tmp_path / "nothing")]) == 2 and "elysium data synth" in capsys.readouterr().err
    (tmp_path / "data" / "annotations.jsonl").unlink()  # grounding only: no tracking part
    assert main([*common, "--out", str(tmp_path / "g.json")]) == 0
    assert "sot_motion" not in json.loads((tmp_path / "g.json").read_text())


def test_attribute_naming_counts_the_looks_words_beside_the_most_common():
    references = [
        "a small red circle moving up, partly hidden behind the blue square",
        "a large blue striped square staying still",
        "a small red dotted star moving down",
        "a medium red circle moving left",
    ]
    descriptions = [
        "a small blue circle moving up",  # the other object's colour after "behind" in the reference is not its own
        "a large blue striped square staying still",
        "a small red star moving down",  # texture left unsaid: plain, not the reference's dotted
        "moving left",  # names nothing
    ]
    report = attribute_naming(descriptions, references)
    assert report["tracks"] == 4
    assert report["color"] == {"model": 0.5, "most_common": 0.75}
    assert report["shape"] == {"model": 0.75, "most_common": 0.5}
    assert report["size"] == {"model": 0.75, "most_common": 0.5}
    # No texture word is plain (the generated descriptions' convention): 3 of 4, the dotted star missed
    assert report["texture"] == {"model": 0.75, "most_common": 0.5}
    assert attribute_naming(references, references)["color"]["model"] == 1.0
