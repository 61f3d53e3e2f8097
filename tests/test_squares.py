"""Position-only squares: the box is exactly where the square's pixels are, the files are reproducible and
resumable, and a config's `data.squares` becomes grounding sources of their own names."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from elysium.cli import main as elysium_main
from elysium.synthetic import COLORS, expression_matches, make_squares, square_sets
from elysium.training.config import DataArgs
from elysium.training.sft import prepare_synthetic


@pytest.mark.parametrize("background", ["plain", "clutter"])
def test_each_box_is_exactly_the_squares_pixels(tmp_path, background):
    grounding = make_squares(tmp_path, 6, seed=3, background=background)
    rows = [json.loads(line) for line in grounding.read_text().splitlines()]
    assert len(rows) == 6 and {row["expression"] for row in rows} == {"the square"}
    for row in rows:
        pixels = np.asarray(Image.open(tmp_path / row["image"]), dtype=int)
        x0, y0, x1, y1 = (round(v * s) for v, s in zip(row["box"], (160, 120, 160, 120)))
        inside = pixels[y0:y1, x0:x1].reshape(-1, 3)
        assert (inside == inside[0]).all() and x1 - x0 == y1 - y0 >= 14  # one flat color, a square
        rows = [pixels[y, x0:x1] for y in (y0 - 1, y1) if 0 <= y < 120]  # the rows just above and below
        assert np.abs(np.concatenate(rows) - inside[0]).sum(axis=-1).min() > 30  # differ from the square
        if background == "plain":
            assert inside[0].min() >= 150 and pixels[0, 0].max() <= 60 or (x0, y0) == (0, 0)


def test_same_settings_keep_the_folder_other_settings_are_refused(tmp_path):
    first = make_squares(tmp_path / "a", 4, seed=1).read_text()
    assert make_squares(tmp_path / "b", 4, seed=1).read_text() == first
    assert make_squares(tmp_path / "c", 4, seed=2).read_text() != first
    stamp = (tmp_path / "a" / "grounding.jsonl").stat().st_mtime_ns
    make_squares(tmp_path / "a", 4, seed=1)  # finished: kept as it is
    assert (tmp_path / "a" / "grounding.jsonl").stat().st_mtime_ns == stamp
    with pytest.raises(ValueError, match="another folder"):
        make_squares(tmp_path / "a", 5, seed=1)
    with pytest.raises(ValueError, match="plain, clutter"):
        make_squares(tmp_path / "d", 4, background="stripes")


def test_data_squares_become_named_grounding_sources(tmp_path):
    plain, clutter = str(tmp_path / "plain"), str(tmp_path / "clutter")
    data_cfg = {
        "grounding": {"file": "other.jsonl", "image_root": ".", "name": "refcoco"},
        "squares": [
            {"out_dir": plain, "images": 3},
            {"out_dir": clutter, "images": 2, "background": "clutter", "name": "clutter"},
        ],
    }
    data = prepare_synthetic(prepare_synthetic(DataArgs(**data_cfg)))  # once each, however often prepared
    assert [spec["name"] for spec in data.grounding] == ["refcoco", "squares", "clutter"]
    assert len((tmp_path / "clutter" / "grounding.jsonl").read_text().splitlines()) == 2
    with pytest.raises(ValueError, match="unknown keys colour"):
        square_sets({"out_dir": plain, "colour": "red"})


def test_cli(tmp_path, capsys):
    assert elysium_main(["data", "squares", "--out", str(tmp_path / "s"), "--images", "2"]) == 0
    assert (tmp_path / "s" / "grounding.jsonl").is_file()
    assert elysium_main(["data", "squares", "--out", str(tmp_path / "s"), "--images", "3"]) == 2
    assert "another folder" in capsys.readouterr().err


@pytest.mark.parametrize("background", ["plain", "clutter"])
def test_named_squares_each_expression_picks_its_box_alone(tmp_path, background):
    """Several squares an image, each of its own `synth.COLORS` colour: the box is exactly the pixels of one, and
    its expression picks it alone, by its colour or, as the generated set's own `expression_matches` judges, by
    its place."""
    grounding = make_squares(tmp_path, 40, seed=5, background=background, count=(2, 4))
    rows = [json.loads(line) for line in grounding.read_text().splitlines()]
    places = {"leftmost": "left", "rightmost": "right", "topmost": "top", "lowest": "bottom"}
    places.update({f"on the {p}": p for p in ("left", "right")} | {f"at the {p}": p for p in ("top", "bottom")})
    kinds = set()
    for row in rows:
        pixels = np.asarray(Image.open(tmp_path / row["image"]), dtype=int)
        squares = {}  # colour -> pixel box of the pixels exactly that colour
        for name, rgb in COLORS.items():
            ys, xs = np.nonzero((pixels == rgb).all(axis=-1))
            if len(xs) >= 14 * 14:
                squares[name] = (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
        assert 2 <= len(squares) <= 4 and (background == "clutter" or "black" not in squares)
        box = tuple(round(v * s) for v, s in zip(row["box"], (160, 120, 160, 120)))
        target = next(name for name, square in squares.items() if square == box)
        words = row["expression"].removeprefix("the ").removesuffix(" square").removeprefix("square ")
        if words in COLORS:
            kinds.add("colour")
            assert words == target
        else:
            kinds.add("place")
            scene = [
                {
                    "index": i,
                    "color": name,
                    "shape": "square",
                    "size": None,
                    "texture": None,
                    "center0": [(s[0] + s[2]) / 320, (s[1] + s[3]) / 240],
                }
                for i, (name, s) in enumerate(squares.items())
            ]
            assert expression_matches({"position": places[words]}, scene, (160, 120)) == [list(squares).index(target)]
    assert kinds == {"colour", "place"}
    with pytest.raises(ValueError, match="1 <= LO <= HI <= 4"):
        make_squares(tmp_path / "e", 2, count=(3, 2))
