"""ElysiumTrack records: validation with skip counts, frames from folders and tar shards, `elysium data check`."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import pytest

from elysium.cli import main as elysium_main
from elysium.synthetic import SynthConfig, synthesize
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
)

# One track per video, so a video's frames and its record go together; small frames, no photos: fast everywhere.
TINY = SynthConfig(tracks_per_video=1, min_track_frames=2, photos=False)


def synth_records(out_dir: Path, videos: int, frames: int) -> list[dict]:
    """Synthetic videos under `out_dir` (records name frames `frames/<vid>/...` from it); returns the records."""
    summary = synthesize(out_dir, videos, 0, (frames, frames), (64, 48), config=TINY, progress=False)
    return [json.loads(line) for line in summary.annotations.read_text().splitlines()]


@pytest.fixture(scope="module")
def synth(tmp_path_factory) -> tuple[Path, list[dict]]:
    """Four good videos plus one record of every kind of damage, in one JSONL; returns (folder, good records)."""
    root = tmp_path_factory.mktemp("synth")
    good = synth_records(root, videos=4, frames=6)
    assert len(good) == 4
    base = good[0]
    bad = [
        {**base, "id": "missing", "frames": base["frames"][:-1] + ["frames/nope/000000.jpg"]},
        {**base, "id": "count", "box": base["box"][:-1]},
        {**base, "id": "outside", "box": [[0.1, 0.1, 1.2, 0.5]] * len(base["frames"])},
        {**base, "id": "inverted", "box": [[0.6, 0.1, 0.2, 0.5]] * len(base["frames"])},
        {**base, "id": "empty", "object_description": "  "},
        {**base, "id": "types", "box": "not a list"},
    ]
    lines = [json.dumps(r) for r in good + bad] + ["{broken json"]
    (root / "annotations.jsonl").write_text("\n".join(lines) + "\n")
    return root, good


def test_bad_records_are_counted_by_reason_not_fatal(synth):
    root, good = synth
    counts = SkipCounts()
    records = usable_track_records(load_track_records(str(root / "annotations.jsonl"), frames_root=str(root)), counts)
    assert len(records) == 4 and sorted(records["id"]) == sorted(r["id"] for r in good)
    assert counts.as_dict() == {
        MISSING_FRAMES: 1,
        BOX_COUNT: 1,
        BAD_BOX: 2,
        EMPTY_DESCRIPTION: 1,
        MALFORMED: 2,
        "used": 4,
    }
    assert counts.skipped == 7


def test_expression_is_kept_and_empty_when_absent(synth, tmp_path):
    root, good = synth
    records = load_track_records(str(root / "annotations.jsonl"), frames_root=str(root))
    by_id = dict(zip(records["id"], records["expression"]))
    assert all(by_id[r["id"]] == r["expression"] != "" for r in good)  # synth records carry one
    elysium_track = {k: v for k, v in good[0].items() if k != "expression"}  # ElysiumTrack-1M has none
    (tmp_path / "track.jsonl").write_text(json.dumps(elysium_track) + "\n")
    usable = usable_track_records(load_track_records(str(tmp_path / "track.jsonl"), str(root)), SkipCounts())
    assert usable["expression"] == [""]


def test_streaming_gives_the_same_records_and_counts(synth):
    root, good = synth
    counts = SkipCounts()
    stream = load_track_records(str(root / "annotations.jsonl"), frames_root=str(root), streaming=True)
    ids = [r["id"] for r in usable_track_records(stream, counts)]
    assert sorted(ids) == sorted(r["id"] for r in good)
    assert counts.skipped == 7


def test_frames_resolve_from_tar_shards(synth, tmp_path):
    root, good = synth
    vid = good[1]["vid"]
    shard = tmp_path / "shard-000.tar.gz"
    with tarfile.open(shard, "w:gz") as tar:
        tar.add(root / "frames" / vid, arcname=f"frames/{vid}")
    store = FrameStore.from_path(tmp_path)
    assert store.exists(f"frames/{vid}/000003.jpg") and not store.exists(f"frames/{good[2]['vid']}/000000.jpg")
    from_tar = store.open_image(f"frames/{vid}/000003.jpg")
    from_folder = FrameStore.from_path(root).open_image(f"frames/{vid}/000003.jpg")
    assert from_tar.size == (64, 48) and list(from_tar.getdata()) == list(from_folder.getdata())

    counts = SkipCounts()
    usable_track_records(load_track_records(str(root / "annotations.jsonl"), frames_root=str(tmp_path)), counts)
    assert counts.as_dict()["used"] == 1  # only the second video is in the shard


def test_data_check_cli(synth, tmp_path, capsys):
    root, _ = synth
    out = tmp_path / "summary.json"
    code = elysium_main(
        ["data", "check", str(root / "annotations.jsonl"), "--frames-root", str(root), "--output", str(out)]
    )
    printed = json.loads(capsys.readouterr().out)
    assert code == 0 and printed == json.loads(out.read_text())
    assert printed["usable"] == 4 and printed["skipped"] == 7 and printed["by_reason"][BAD_BOX] == 2

    only_bad = tmp_path / "bad.jsonl"
    only_bad.write_text("{broken\n" + json.dumps({"frames": ["x.jpg"], "box": [[0, 0, 1, 1]]}) + "\n")
    assert elysium_main(["data", "check", str(only_bad), "--frames-root", str(root)]) == 1


def test_data_check_decode_counts_unreadable_frames(tmp_path, capsys):
    records = synth_records(tmp_path, videos=2, frames=4)
    (tmp_path / records[1]["frames"][-1]).write_bytes(b"garbage")
    args = ["data", "check", str(tmp_path / "annotations.jsonl"), "--frames-root", str(tmp_path)]
    assert elysium_main(args) == 0 and json.loads(capsys.readouterr().out)["usable"] == 2  # files exist
    assert elysium_main([*args, "--decode"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["usable"] == 1 and summary["by_reason"] == {"unreadable_image": 1}


def test_data_synth_cli_writes_records_that_check_clean(tmp_path, capsys):
    out = tmp_path / "synth"
    args = ["data", "synth", "--out", str(out), "--videos", "2", "--size", "64x48", "--frames", "8,10"]
    assert elysium_main([*args, "--min-track-frames", "2", "--no-photos", "--no-progress"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["generated"] == 2 and summary["records"] >= 2
    assert elysium_main(["data", "check", str(out / "annotations.jsonl"), "--frames-root", str(out)]) == 0
    assert json.loads(capsys.readouterr().out) == {
        "records": summary["records"],
        "usable": summary["records"],
        "skipped": 0,
        "by_reason": {},
    }
    assert elysium_main(["data", "synth", "--out", str(out), "--videos", "1", "--frames", "10,8"]) == 2  # bad range
