"""The feature probe: a softmax regression tells features that carry a class from features that do not."""

from __future__ import annotations

import json

import numpy as np

from experiments.feature_probe import linear_probe, main


def _classes(n: int, rng: np.random.Generator) -> list[str]:
    return [["red", "green", "blue"][i] for i in rng.integers(0, 3, n)]


def test_probe_reads_a_class_the_features_carry_and_not_one_they_do_not():
    rng = np.random.default_rng(0)
    train_y, test_y = _classes(120, rng), _classes(60, rng)
    index = {"red": 0, "green": 1, "blue": 2}
    # the class along a random direction of 16 (plus a large shared offset, as the image tokens have), noisy
    directions = rng.normal(size=(3, 16))

    def carrying(labels):
        return 50.0 + directions[[index[y] for y in labels]] + 0.3 * rng.normal(size=(len(labels), 16))

    scores = linear_probe(carrying(train_y), train_y, carrying(test_y), test_y)
    assert scores["probe"] > 0.95
    common = max(("blue", "green", "red"), key=train_y.count)  # the training set's, scored on the test labels
    assert scores["most_common"] == round(test_y.count(common) / 60, 4)
    blind = linear_probe(rng.normal(size=(120, 16)), train_y, rng.normal(size=(60, 16)), test_y)
    assert blind["probe"] < 0.6  # three classes: near a third


def test_cli_on_generated_data(model_dir, tmp_path, capsys):
    from elysium.synthetic import synthesize

    for name, seed in (("train", 4250), ("test", 4251)):
        synthesize(tmp_path / name, videos=2, seed=seed, frames_per_video=(8, 8), size=(64, 48), progress=False)
    out = tmp_path / "probe.json"
    args = ["--model", str(model_dir), "--train-data", str(tmp_path / "train"), "--data", str(tmp_path / "test")]
    assert main([*args, "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["train"] > 0 and report["test"] > 0
    for attribute in ("color", "shape", "size", "texture"):
        assert 0.0 <= report[attribute]["probe"] <= 1.0 and 0.0 <= report[attribute]["most_common"] <= 1.0
    assert main(["--train-data", str(tmp_path / "none"), "--data", str(tmp_path / "test")]) == 2
    assert "elysium data synth" in capsys.readouterr().err
