"""Track record files that change or hold bytes that are not UTF-8: training and `elysium data check` read what the
file holds now, and a line that is not UTF-8 is one skipped, counted record."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from elysium.cli import main as elysium_main
from elysium.synthetic import SynthConfig, synthesize
from elysium.training.config import DataArgs
from elysium.training.dataset_builder import build_train_dataset
from elysium.training.records import (
    MALFORMED,
    NOT_UTF8,
    SkipCounts,
    load_track_records,
    read_jsonl_lenient,
    usable_track_records,
)


@pytest.fixture(scope="module")
def synth(tmp_path_factory) -> tuple[Path, list[str]]:
    """Three one-track videos; returns (folder, their JSONL lines)."""
    root = tmp_path_factory.mktemp("robust")
    config = SynthConfig(tracks_per_video=1, min_track_frames=2, photos=False)
    summary = synthesize(root, 3, 0, (6, 6), (64, 48), config=config, progress=False)
    return root, summary.annotations.read_text().splitlines()


def _check(files: list[Path], root: Path, capsys) -> dict:
    elysium_main(["data", "check", *map(str, files), "--frames-root", str(root)])
    return json.loads(capsys.readouterr().out)


def test_an_edited_file_is_read_again(synth, tmp_path, capsys):
    root, lines = synth
    path = tmp_path / "train.jsonl"
    path.write_text("\n".join(lines) + "\n")
    first = usable_track_records(load_track_records(str(path), frames_root=str(root)), SkipCounts())
    assert len(first) == 3 and _check([path], root, capsys)["usable"] == 3

    # Same path, same size: one description changed in place (the cache used to be keyed by the path alone).
    record = json.loads(lines[0])
    description = record["object_description"]
    record["object_description"] = description[::-1] if description[::-1] != description else description.upper()
    edited = [json.dumps(record), *lines[1:]]
    path.write_text("\n".join(edited) + "\n")
    assert path.stat().st_size == len("\n".join(lines)) + 1
    again = usable_track_records(load_track_records(str(path), frames_root=str(root)), SkipCounts())
    assert again[0]["object_description"] == record["object_description"] != description

    # Fewer records, and a broken one: both data check and the training reader see them.
    path.write_text(lines[0] + "\n{broken\n")
    assert _check([path], root, capsys) == {
        "records": 2,
        "usable": 1,
        "skipped": 1,
        "by_reason": {MALFORMED: 1},
    }
    counts = SkipCounts()
    assert len(usable_track_records(load_track_records(str(path), frames_root=str(root)), counts)) == 1
    assert counts.as_dict() == {"used": 1, MALFORMED: 1}


def test_a_line_that_is_not_utf8_is_skipped_and_counted(synth, tmp_path, capsys, processor):
    root, lines = synth
    path = tmp_path / "latin1.jsonl"
    bad = json.dumps({**json.loads(lines[1]), "object_description": "caf\u00e9"}).replace("\\u00e9", "\u00e9")
    path.write_bytes(
        b"\xef\xbb\xbf"  # a byte-order mark before the first record
        + (lines[0] + "\n").encode()
        + bad.encode("latin-1")  # \xe9 alone is not UTF-8
        + b"\n\xff\xfe\x00garbage\n"
        + (lines[2] + "\n").encode()
    )
    assert _check([path], root, capsys) == {
        "records": 4,
        "usable": 2,
        "skipped": 2,
        "by_reason": {NOT_UTF8: 2},
    }
    data_cfg = {"track": [str(path)], "frames_root": str(root), "samples_per_epoch": 4}
    for streaming in (False, True):
        validation, runtime = SkipCounts(), SkipCounts()
        data = DataArgs(**data_cfg, streaming=streaming)
        dataset = build_train_dataset(data, processor, 0, validation, runtime)
        samples = [dataset[i] for i in range(4)] if not streaming else list(dataset)
        assert len(samples) == (4 if not streaming else 2) and all(len(s["input_ids"]) for s in samples)
        assert validation.as_dict() == {"used": 2, NOT_UTF8: 2}, streaming
    counts = SkipCounts()
    assert read_jsonl_lenient(path, counts)[0]["id"] == json.loads(lines[0])["id"]
    assert counts.as_dict() == {NOT_UTF8: 2}
