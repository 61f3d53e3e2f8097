"""ElysiumTrack-1M records (JSON lines) into `datasets`, with validation that skips bad records and counts why.

A 1.27M-record corpus always has some broken rows; a run must never die on one. Each check returns a reason
string (the key of the skip counts) or None, and `SkipCounts` is written beside the checkpoints atomically.
Lines are decoded one at a time, so a line that is not UTF-8 is one skipped record, not the end of the file.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import threading
from collections import Counter
from collections.abc import Sequence
from typing import Any

import datasets

from elysium.utils.atomic import write_json_atomic
from elysium.utils.jsonl import jsonl_lines

from .frames import FrameStore

MISSING_FRAMES = "missing_frame_files"
BOX_COUNT = "box_count_mismatch"
BAD_BOX = "box_out_of_range_or_inverted"
UNREADABLE = "unreadable_image"
EMPTY_DESCRIPTION = "empty_description"
MALFORMED = "malformed_record"
NOT_UTF8 = "not_utf8"
OUTSIDE_ROOT = "frame_path_outside_root"  # `../..` or an absolute path: never read
REASONS = (MISSING_FRAMES, BOX_COUNT, BAD_BOX, UNREADABLE, EMPTY_DESCRIPTION, MALFORMED, NOT_UTF8, OUTSIDE_ROOT)

TRACK_FEATURES = datasets.Features(
    {
        "source": datasets.Value("string"),
        "id": datasets.Value("string"),
        "vid": datasets.Value("string"),
        "frames": datasets.Sequence(datasets.Value("string")),
        "object_class": datasets.Value("string"),
        "box": datasets.Sequence(datasets.Sequence(datasets.Value("float64"))),
        "object_description": datasets.Value("string"),
        "expression": datasets.Value("string"),  # a referring expression (synthetic data); "" when absent
        "frame_size": datasets.Sequence(datasets.Value("int64")),
    }
)


def box_is_valid(box: Sequence[float]) -> bool:
    """Normalized `[x1,y1,x2,y2]` inside [0,1] with x2>x1 and y2>y1 (a zero-area box teaches nothing)."""
    try:
        values = [float(v) for v in box]
    except (TypeError, ValueError):
        return False
    if len(values) != 4 or not all(math.isfinite(v) for v in values):
        return False
    x1, y1, x2, y2 = values
    return 0.0 <= x1 < x2 <= 1.0 and 0.0 <= y1 < y2 <= 1.0


def track_record_problem(record: dict[str, Any], frames: FrameStore | None = None) -> str | None:
    """Why a track record cannot be used (a `REASONS` key), or None; checks files exist but does not decode."""
    frame_paths, boxes = record.get("frames"), record.get("box")
    if not isinstance(frame_paths, list) or not isinstance(boxes, list) or not frame_paths:
        return MALFORMED
    if len(boxes) != len(frame_paths):
        return BOX_COUNT
    if not all(box_is_valid(b) for b in boxes):
        return BAD_BOX
    if not str(record.get("object_description") or "").strip():
        return EMPTY_DESCRIPTION
    if frames is not None and not all(frames.inside(p) for p in frame_paths):
        return OUTSIDE_ROOT
    if frames is not None and not all(frames.exists(p) for p in frame_paths):
        return MISSING_FRAMES
    return None


class SkipCounts:
    """Thread-safe counts of skipped records by reason, plus how many were used; written as JSON atomically."""

    def __init__(self) -> None:
        self._counts: Counter[str] = Counter()
        self._lock = threading.Lock()

    def add(self, reason: str, n: int = 1) -> None:
        with self._lock:
            self._counts[reason] += n

    def update(self, other: dict[str, int]) -> None:
        with self._lock:
            self._counts.update(other)

    def clear(self) -> None:
        with self._lock:
            self._counts.clear()

    def as_dict(self) -> dict[str, int]:
        with self._lock:
            return dict(sorted(self._counts.items()))

    @property
    def skipped(self) -> int:
        return sum(v for k, v in self.as_dict().items() if k != "used")

    def write(self, path: str | os.PathLike) -> None:
        write_json_atomic(path, {"skipped": self.skipped, "by_reason": self.as_dict()}, sort_keys=True)


def _normalized_track_row(raw: Any) -> dict[str, Any]:
    """One JSON value -> a row of `TRACK_FEATURES` (Arrow needs one schema); raises on wrong types."""
    if not isinstance(raw, dict):
        raise TypeError("record is not an object")
    row = {
        "source": str(raw.get("source") or ""),
        "id": str(raw.get("id") or ""),
        "vid": str(raw.get("vid") or ""),
        "frames": [str(p) for p in raw["frames"]],
        "object_class": str(raw.get("object_class") or ""),
        "box": [[float(v) for v in b] for b in raw["box"]],
        "object_description": str(raw.get("object_description") or ""),
        "expression": str(raw.get("expression") or ""),
        "frame_size": [int(v) for v in (raw.get("frame_size") or [0, 0])],
    }
    return row


def content_key(files: Sequence[str]) -> list[list[Any]]:
    """What the `datasets` cache of `files` is keyed by besides their paths: each file's size and a hash of its
    bytes, so an edited file is read again (the cache of `Dataset.from_generator` is keyed by its arguments)."""
    key = []
    for path in files:
        digest = hashlib.blake2b(digest_size=16)
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        key.append([str(path), os.path.getsize(path), digest.hexdigest()])
    return key


def _track_rows(files: list[str], frames_root: str | None, content: Any = None) -> Any:
    """Every line of `files` as a row plus `_problem` (empty when usable): bad lines are kept, to be counted.
    `content` (`content_key`) is not read here: it only keys the cache."""
    frames = FrameStore.from_path(frames_root) if frames_root is not None else None
    empty = {
        "source": "",
        "id": "",
        "vid": "",
        "frames": [],
        "object_class": "",
        "box": [],
        "object_description": "",
        "expression": "",
        "frame_size": [],
    }
    for path in files:
        for line in jsonl_lines(path):
            if line is None:
                yield {**empty, "_problem": NOT_UTF8}
                continue
            try:
                row = _normalized_track_row(json.loads(line))
            except (json.JSONDecodeError, KeyError, TypeError, ValueError):
                yield {**empty, "_problem": MALFORMED}
                continue
            yield {**row, "_problem": track_record_problem(row, frames) or ""}


def load_track_records(
    files: str | Sequence[str], frames_root: str | None = None, streaming: bool = False
) -> datasets.Dataset | datasets.IterableDataset:
    """ElysiumTrack JSONL -> a `datasets` dataset with a `_problem` column (memory-mapped Arrow, or an
    `IterableDataset` with `streaming=True` for the full 1.27M).

    Built with `from_generator` rather than `load_dataset("json")` so one malformed line is counted, not fatal.
    `metadata` is dropped: its keys vary across sources and Arrow needs one schema. The Arrow cache is keyed by
    the files' content (`content_key`), not just their paths, so an edited file gives its new records.
    """
    files = [str(files)] if isinstance(files, str | os.PathLike) else [str(f) for f in files]
    features = datasets.Features({**TRACK_FEATURES, "_problem": datasets.Value("string")})
    kwargs = {"files": files, "frames_root": str(frames_root) if frames_root is not None else None}
    if streaming:  # read afresh on every pass: nothing cached
        return datasets.IterableDataset.from_generator(_track_rows, features=features, gen_kwargs=kwargs)
    kwargs["content"] = content_key(files)
    return datasets.Dataset.from_generator(_track_rows, features=features, gen_kwargs=kwargs)


def usable_track_records(
    dataset: datasets.Dataset | datasets.IterableDataset, counts: SkipCounts
) -> datasets.Dataset | datasets.IterableDataset:
    """Drop the records `load_track_records` marked, adding them to `counts` by reason."""
    if isinstance(dataset, datasets.IterableDataset):

        def keep(problem: str) -> bool:
            counts.add(problem or "used")
            return not problem

        return dataset.filter(keep, input_columns="_problem").remove_columns("_problem")
    tally = Counter(dataset["_problem"])
    counts.update({(k or "used"): v for k, v in tally.items()})
    return dataset.filter(lambda p: p == "", input_columns="_problem").remove_columns("_problem")


def read_jsonl_lenient(path: str | os.PathLike, counts: SkipCounts) -> list[dict[str, Any]]:
    """Records of a small JSONL (grounding, VideoQA), skipping undecodable lines instead of failing the run."""
    rows = []
    for line in jsonl_lines(path):
        if line is None:
            counts.add(NOT_UTF8)
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            counts.add(MALFORMED)
            continue
        rows.append(row) if isinstance(row, dict) else counts.add(MALFORMED)
    return rows
