"""Video-REG caption scores: CIDEr-D (pure Python, no Java) and METEOR 1.5 (Java; skipped without it)."""

from __future__ import annotations

import shutil

import pytest

from elysium.evaluation.captions import (
    JavaNotFoundError,
    require_java,
    score_captions,
    simple_tokenize,
)

# Four-word-plus references with no word in common between items: every n-gram (n = 1..4) then occurs in one
# item only, so each has a non-zero idf weight log(3) - log(1).
REFS = {
    "kite": "a red kite flying high above the beach",
    "dog": "small brown dog running through tall grass",
    "car": "white sports car parked near one tree",
}


def test_simple_tokenize():
    assert simple_tokenize("A Red kite, flying!") == "a red kite flying"
    assert simple_tokenize("The dog's T-shirt -- costs 3.5 dollars.") == "the dog's t-shirt costs 3.5 dollars"
    assert simple_tokenize('  "quoted"  (parens) ') == "quoted parens"


def test_cider_d_perfect_and_unrelated_by_hand(monkeypatch):
    monkeypatch.setattr("elysium.evaluation.captions.shutil.which", lambda name: None)  # CIDEr needs no Java
    # A candidate equal to its only reference: cosine 1 for each n = 1..4, no length penalty (exp(0)),
    # mean 1, times 10 -> CIDEr-D 10 per item. Case and punctuation are tokenized away first.
    perfect = score_captions({k: v.upper() + "." for k, v in REFS.items()}, REFS, metrics=["cider"])
    assert perfect.cider == pytest.approx(10.0)
    assert all(item["cider"] == pytest.approx(10.0) for item in perfect.per_item.values())
    assert perfect.meteor is None and perfect.count == 3
    assert perfect.percent() == {"cider": pytest.approx(1000.0)}

    # the kite caption shares no n-gram with its reference: 0; the others stay 10
    mixed = score_captions({**REFS, "kite": "green boat"}, REFS, metrics=["cider"])
    assert mixed.per_item["kite"]["cider"] == pytest.approx(0.0)
    assert mixed.per_item["dog"]["cider"] == pytest.approx(10.0)
    assert mixed.cider == pytest.approx(20.0 / 3)


def test_cider_d_length_penalty_lowers_a_padded_caption():
    padded = {**REFS, "dog": REFS["dog"] + " " + REFS["dog"]}  # every reference n-gram, twice as long
    score = score_captions(padded, REFS, metrics=["cider"]).per_item["dog"]["cider"]
    assert 0.0 < score < 10.0 / 2


def test_caption_input_errors():
    with pytest.raises(ValueError, match="1 ids without a prediction"):
        score_captions({"kite": "x", "dog": "y"}, REFS, metrics=["cider"])
    with pytest.raises(ValueError, match="at least two items"):
        score_captions({"kite": "x"}, {"kite": "y"}, metrics=["cider"])
    with pytest.raises(ValueError, match="unknown metrics"):
        score_captions(REFS, REFS, metrics=["bleu"])
    with pytest.raises(ValueError, match="no reference caption"):
        score_captions({"a": "x", "b": "y"}, {"a": ["z"], "b": []}, metrics=["cider"])


def test_meteor_without_java_names_the_debian_package(monkeypatch):
    monkeypatch.setattr("elysium.evaluation.captions.shutil.which", lambda name: None)
    with pytest.raises(JavaNotFoundError, match=r"apt-get install -y default-jre-headless"):
        score_captions(REFS, REFS)
    with pytest.raises(JavaNotFoundError):
        require_java()


@pytest.mark.skipif(
    shutil.which("java") is None, reason="METEOR 1.5 needs Java: apt-get install -y default-jre-headless"
)
def test_meteor_and_cider_with_java():
    predictions = {
        "kite": "a red kite flying high above the beach",  # identical: METEOR 1.0 (one chunk, no penalty)
        "dog": "a brown dog runs in the grass",  # partial match, with stems (runs/running)
        "car": "green boat",  # no word in common (METEOR's paraphrase table still finds a little)
    }
    scores = score_captions(predictions, REFS)
    meteor = {k: v["meteor"] for k, v in scores.per_item.items()}
    assert meteor["kite"] == pytest.approx(1.0)
    assert 0.1 < meteor["dog"] < 0.9
    assert meteor["car"] < 0.1
    assert 0.0 < scores.meteor < 1.0
    assert scores.cider is not None and scores.per_item["kite"]["cider"] == pytest.approx(10.0)
    assert scores.percent()["meteor"] == pytest.approx(100 * scores.meteor)
