"""Synthetic tracking videos: valid records, boxes that sit on the drawn pixels, unique expressions, determinism.

A few tiny videos per test (well under a second each) so the whole file runs in seconds on CPU.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from elysium.synthetic import (
    COLORS,
    SOURCE,
    SynthConfig,
    expression_matches,
    synth_tokenizer,
    synthesize,
    texture_color,
)
from elysium.synthetic.cli import add_synth_arguments, run_synth
from elysium.synthetic.demo import write_demo_video
from elysium.training.frames import FrameStore
from elysium.training.records import track_record_problem

FRAMES = (12, 16)
SIZE = (96, 72)


def _records(path: Path) -> list[dict]:
    return [json.loads(line) for line in (path / "annotations.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def synth_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("synth")
    summary = synthesize(out, videos=6, seed=3, frames_per_video=FRAMES, size=SIZE, progress=False)
    assert summary.generated == 6 and summary.records > 0
    return out


def test_records_are_valid_for_the_loader(synth_dir: Path) -> None:
    records = _records(synth_dir)
    store = FrameStore(synth_dir)
    keys = {"source", "id", "vid", "metadata", "frames", "object_class", "box", "object_description", "expression"}
    assert len({r["id"] for r in records}) == len(records)
    for r in records:
        assert keys <= set(r) and r["source"] == SOURCE and r["frame_size"] == list(SIZE)
        assert track_record_problem(r, store) is None
        assert len(r["box"]) == len(r["frames"]) == len(r["metadata"]["frame_indices"])
        for x1, y1, x2, y2 in r["box"]:
            assert 0 <= x1 < x2 <= 1 and 0 <= y1 < y2 <= 1
        assert r["frames"][0].endswith("000000.jpg"), "every track starts in frame 0, where its expression holds"
        assert r["object_description"].strip() and r["object_class"] == r["metadata"]["attributes"]["shape"]
    for frame in {f for r in records for f in r["frames"]}:
        assert (synth_dir / frame).is_file()
        with Image.open(synth_dir / frame) as image:
            assert image.size == SIZE and image.format == "JPEG"


def test_grounding_rows_are_each_tracks_first_frame_with_its_expression(synth_dir: Path) -> None:
    records = {r["id"]: r for r in _records(synth_dir)}
    rows = [json.loads(line) for line in (synth_dir / "grounding.jsonl").read_text().splitlines()]
    assert rows and {row["id"].removesuffix("-looks") for row in rows} <= set(records)
    looks = [row for row in rows if row["id"].endswith("-looks")]
    assert looks and len(rows) - len(looks) == len(records)  # every track's expression, plus its looks if unique
    for row in rows:
        record = records[row["id"].removesuffix("-looks")]
        assert row["image"] == record["frames"][0] and row["box"] == record["box"][0]
        assert (synth_dir / row["image"]).is_file()
        if row in looks:  # every attribute, no position word: found only from the pixels
            attributes = record["metadata"]["attributes"]
            assert all(attributes[k] in row["expression"] for k in ("size", "color", "shape"))
            assert not any(w in row["expression"] for w in ("left", "right", "top", "bottom", "middle"))
        else:
            assert row["expression"] == record["expression"]


def test_box_sits_on_the_objects_pixels(synth_dir: Path) -> None:
    names = list(COLORS)
    palette = np.array([COLORS[n] for n in names] + [texture_color(n) for n in names], dtype=float)
    checked = 0
    for r in _records(synth_dir):
        w, h = r["frame_size"]
        for k, visible in enumerate(r["metadata"]["visibility"]):
            x1, y1, x2, y2 = (v * s for v, s in zip(r["box"][k], (w, h, w, h)))
            if visible < 1.0 or x2 - x1 < 10:  # unoccluded, fully in view, big enough for a center patch
                continue
            cx, cy, rx, ry = (x1 + x2) / 2, (y1 + y2) / 2, 0.15 * (x2 - x1), 0.15 * (y2 - y1)
            frame = np.asarray(Image.open(synth_dir / r["frames"][k]).convert("RGB"), dtype=float)
            patch = frame[int(cy - ry) : int(cy + ry) + 1, int(cx - rx) : int(cx + rx) + 1].reshape(-1, 3)
            # each pixel votes for its nearest color (a texture's shade counts for its color): two-tone
            # stripes average to a third color, but every pixel is one of the two
            nearest = np.argmin(np.linalg.norm(patch[:, None, :] - palette[None], axis=2), axis=1) % len(names)
            assert names[int(np.bincount(nearest).argmax())] == r["metadata"]["attributes"]["color"], (r["id"], k)
            checked += 1
            break
    assert checked >= 5


def test_expressions_pick_exactly_one_object(synth_dir: Path) -> None:
    by_video: dict[str, list[dict]] = {}
    for r in _records(synth_dir):
        by_video.setdefault(r["vid"], []).append(r)
    for records in by_video.values():
        expressions = [r["expression"] for r in records]
        assert len(set(expressions)) == len(expressions)
        for r in records:
            meta = r["metadata"]
            picked = expression_matches(meta["expression_parts"], meta["scene"], r["frame_size"])
            assert picked == [meta["object_index"]], r["expression"]


def test_same_seed_same_files_other_seed_differs(synth_dir: Path, tmp_path: Path) -> None:
    synthesize(tmp_path / "again", videos=6, seed=3, frames_per_video=FRAMES, size=SIZE, progress=False)
    assert (tmp_path / "again" / "annotations.jsonl").read_bytes() == (synth_dir / "annotations.jsonl").read_bytes()
    frame = "frames/synth-s3-000002/000005.jpg"
    assert (tmp_path / "again" / frame).read_bytes() == (synth_dir / frame).read_bytes()
    synthesize(tmp_path / "other", videos=6, seed=4, frames_per_video=FRAMES, size=SIZE, progress=False)
    other = [(r["box"], r["object_description"]) for r in _records(tmp_path / "other")]
    assert other != [(r["box"], r["object_description"]) for r in _records(synth_dir)]


def test_resume_skips_complete_videos_and_redoes_broken_ones(tmp_path: Path) -> None:
    first = synthesize(tmp_path, videos=3, seed=1, frames_per_video=FRAMES, size=SIZE, progress=False)
    reference = (tmp_path / "annotations.jsonl").read_bytes()
    again = synthesize(tmp_path, videos=3, seed=1, frames_per_video=FRAMES, size=SIZE, progress=False)
    assert (again.generated, again.resumed, again.records) == (0, 3, first.records)
    # a run killed mid-way: only a partial file whose last line is cut, and a frame missing
    lines = reference.decode().splitlines(keepends=True)
    (tmp_path / "annotations.jsonl").unlink()
    (tmp_path / ".annotations.partial.jsonl").write_text("".join(lines[:-1]) + lines[-1][:20])
    (tmp_path / "frames" / "synth-s1-000000" / "000003.jpg").unlink()
    resumed = synthesize(tmp_path, videos=3, seed=1, frames_per_video=FRAMES, size=SIZE, progress=False)
    assert resumed.generated == 2 and resumed.resumed == 1
    assert (tmp_path / "annotations.jsonl").read_bytes() == reference
    assert not (tmp_path / ".annotations.partial.jsonl").exists()
    with pytest.raises(ValueError, match="other settings"):
        synthesize(tmp_path, videos=3, seed=2, frames_per_video=FRAMES, size=SIZE, progress=False)


def test_cli_and_config_checks(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser()
    add_synth_arguments(parser)
    args = parser.parse_args(["--out", str(tmp_path), "--videos", "1", "--size", "64x48", "--frames", "8,10"])
    args.no_progress = True
    assert run_synth(args) == 0
    assert json.loads(capsys.readouterr().out)["generated"] == 1
    bad = parser.parse_args(["--out", str(tmp_path / "b"), "--videos", "1", "--frames", "10,8", "--no-progress"])
    assert run_synth(bad) == 2
    with pytest.raises(ValueError):
        SynthConfig(size=(16, 16)).check()


def test_demo_video(tmp_path: Path) -> None:
    demo = write_demo_video(tmp_path / "demo.mp4", seed=0, size=(128, 96), num_frames=24)
    with av.open(str(demo.path)) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(frames) == 24 and frames[0].shape == (96, 128, 3)
    x1, y1, x2, y2 = demo.box
    assert 0 <= x1 < x2 <= 128 and 0 <= y1 < y2 <= 96 and demo.expression.startswith("the ")


def test_synth_tokenizer_keeps_every_word_of_the_texts_short(synth_dir: Path) -> None:
    tokenizer = synth_tokenizer()
    texts = [t for r in _records(synth_dir) for t in (r["expression"], r["object_description"])]
    words = {w for text in texts for w in text.replace(",", " ").split()}
    assert len(words) > 20 and all(len(tokenizer.tokenize(w)) <= 2 for w in words), words
    assert tokenizer.convert_tokens_to_ids("<image>") == len(tokenizer) - 1
