"""ElysiumTrack records: validation with skip counts, frames from folders and tar shards, `elysium data check`."""

from __future__ import annotations

import json
import os
import tarfile
from pathlib import Path

import pytest
from elysium.inference.cli import main as elysium_main
from elysium.training.frames import FrameStore
from elysium.training.records import (
    BAD_BOX,
    BOX_COUNT,
    EMPTY_DESCRIPTION,
    MALFORMED,
    MISSING_FRAMES,
    SkipCounts,
    load_track_records,
    usable_track_records,
    write_json_atomic,
)
from elysium.training.synthetic import generate_moving_squares


@pytest.fixture(scope="module")
def squares(tmp_path_factory) -> Path:
    """Four good videos plus one record of every kind of damage, in one JSONL."""
    root = tmp_path_factory.mktemp("squares")
    jsonl = generate_moving_squares(root, num_videos=4, num_frames=6, size=32)
    good = [json.loads(line) for line in jsonl.read_text().splitlines()]
    base = good[0]
    bad = [
        {**base, "id": "missing", "frames": base["frames"][:-1] + ["nope/000000.jpg"]},
        {**base, "id": "count", "box": base["box"][:-1]},
        {**base, "id": "outside", "box": [[0.1, 0.1, 1.2, 0.5]] * len(base["frames"])},
        {**base, "id": "inverted", "box": [[0.6, 0.1, 0.2, 0.5]] * len(base["frames"])},
        {**base, "id": "empty", "object_description": "  "},
        {**base, "id": "types", "box": "not a list"},
    ]
    lines = [json.dumps(r) for r in good + bad] + ["{broken json"]
    jsonl.write_text("\n".join(lines) + "\n")
    return root


def test_bad_records_are_counted_by_reason_not_fatal(squares):
    counts = SkipCounts()
    records = usable_track_records(
        load_track_records(str(squares / "train.jsonl"), frames_root=str(squares / "frames")), counts
    )
    assert len(records) == 4 and sorted(records["id"]) == [f"square{i:04d}_0" for i in range(4)]
    assert counts.as_dict() == {
        MISSING_FRAMES: 1,
        BOX_COUNT: 1,
        BAD_BOX: 2,
        EMPTY_DESCRIPTION: 1,
        MALFORMED: 2,
        "used": 4,
    }
    assert counts.skipped == 7


def test_streaming_gives_the_same_records_and_counts(squares):
    counts = SkipCounts()
    stream = load_track_records(str(squares / "train.jsonl"), frames_root=str(squares / "frames"), streaming=True)
    ids = [r["id"] for r in usable_track_records(stream, counts)]
    assert sorted(ids) == [f"square{i:04d}_0" for i in range(4)]
    assert counts.skipped == 7


def test_frames_resolve_from_tar_shards(squares, tmp_path):
    shard = tmp_path / "shard-000.tar.gz"
    with tarfile.open(shard, "w:gz") as tar:
        tar.add(squares / "frames" / "square0001", arcname="frames/square0001")
    store = FrameStore.from_path(tmp_path)
    assert store.exists("square0001/000003.jpg") and not store.exists("square0002/000000.jpg")
    from_tar = store.open_image("square0001/000003.jpg")
    from_folder = FrameStore.from_path(squares / "frames").open_image("square0001/000003.jpg")
    assert from_tar.size == (32, 32) and list(from_tar.getdata()) == list(from_folder.getdata())

    counts = SkipCounts()
    usable_track_records(load_track_records(str(squares / "train.jsonl"), frames_root=str(tmp_path)), counts)
    assert counts.as_dict()["used"] == 1  # only square0001 is in the shard


def test_skip_counts_are_written_atomically(tmp_path, monkeypatch):
    target = tmp_path / "ckpt" / "data_skip_counts.json"
    write_json_atomic(target, {"a": 1})

    def crash(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError):
        write_json_atomic(target, {"a": 2})
    assert json.loads(target.read_text()) == {"a": 1}  # the old file is intact
    assert [p.name for p in target.parent.iterdir()] == ["data_skip_counts.json"]  # no temp left behind


def test_data_check_cli(squares, tmp_path, capsys):
    out = tmp_path / "summary.json"
    code = elysium_main(
        ["data", "check", str(squares / "train.jsonl"), "--frames-root", str(squares / "frames"), "--output", str(out)]
    )
    printed = json.loads(capsys.readouterr().out)
    assert code == 0 and printed == json.loads(out.read_text())
    assert printed["usable"] == 4 and printed["skipped"] == 7 and printed["by_reason"][BAD_BOX] == 2

    only_bad = tmp_path / "bad.jsonl"
    only_bad.write_text("{broken\n" + json.dumps({"frames": ["x.jpg"], "box": [[0, 0, 1, 1]]}) + "\n")
    assert elysium_main(["data", "check", str(only_bad), "--frames-root", str(squares / "frames")]) == 1


def test_data_check_decode_counts_unreadable_frames(tmp_path, capsys):
    jsonl = generate_moving_squares(tmp_path, num_videos=2, num_frames=4, size=32)
    (tmp_path / "frames" / "square0001" / "000002.jpg").write_bytes(b"garbage")
    args = ["data", "check", str(jsonl), "--frames-root", str(tmp_path / "frames")]
    assert elysium_main(args) == 0 and json.loads(capsys.readouterr().out)["usable"] == 2  # files exist
    assert elysium_main([*args, "--decode"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["usable"] == 1 and summary["by_reason"] == {"unreadable_image": 1}
