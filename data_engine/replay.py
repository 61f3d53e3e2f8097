"""Stand-ins for the detector and the tracker that replay known boxes (ElysiumTrack records, e.g. from
`elysium data synth`), with controlled noise and drift: the funnel's filters can then be checked, and their
thresholds judged, against truth. `elysium data replay-captions SYNTH_DIR` writes the captions file
(`captions.jsonl`: each video's descriptions, with their noun chunks given) that `elysium data build` reads.

Drift kinds (per trajectory, chosen by a seeded generator so a run is repeatable):
- `slide`: from the middle of the video the box slides away from the object, a little more every frame (a tracker
  that has lost its target and follows the background): the Kalman filter follows it, the IoU check drops it.
- `jump`: from a third of the way in, the box sits half a frame away (a tracker that switched to a distractor):
  the Kalman filter drops it.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from elysium.utils.atomic import write_text_atomic

from .detect import Detection
from .track import Trajectory

DRIFTS = ("none", "slide", "jump")
_TEXTURES = {"striped", "dotted"}


def _truth(annotations: str | Path) -> dict[str, list[dict[str, Any]]]:
    by_vid: dict[str, list[dict[str, Any]]] = {}
    with open(annotations, encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                record = json.loads(line)
                by_vid.setdefault(record["vid"], []).append(record)
    return by_vid


def _pixel_boxes(record: dict[str, Any]) -> dict[int, np.ndarray]:
    """Frame index (in the video) -> pixel box of a record's object, for the frames where it is in view."""
    w, h = record["frame_size"]
    indices = record.get("metadata", {}).get("frame_indices") or list(range(len(record["box"])))
    return {int(t): np.asarray(b, dtype=float) * [w, h, w, h] for t, b in zip(indices, record["box"])}


class ReplayDetector:
    """Finds a chunk's object by its words (the record whose shape, colour, size and texture the chunk names) and
    returns its true box, moved by `noise` (a fraction of the box size), with `score`."""

    name = "replay"

    def __init__(self, annotations: str | Path, *, noise: float = 0.02, score: float = 0.9, seed: int = 0) -> None:
        self.truth = _truth(annotations)
        self.noise, self.score, self.seed = noise, score, seed

    def _find(self, vid: str, query: str) -> dict[str, Any] | None:
        words = set(query.lower().replace(",", " ").split())
        for record in self.truth.get(vid, []):
            attrs = record.get("metadata", {}).get("attributes", {})
            texture = attrs.get("texture", "plain")
            named = {record["object_class"], attrs.get("color", ""), attrs.get("size", "")} <= words
            textured = texture in words if texture != "plain" else not words & _TEXTURES
            if named and textured:  # synth objects of a video differ in one of these
                return record
        return None

    def __call__(
        self, frames: Sequence[np.ndarray], queries: Sequence[Sequence[str]], keys: Sequence[tuple[str, int]]
    ) -> list[list[Detection | None]]:
        out = []
        for (vid, t), names in zip(keys, queries):
            found: list[Detection | None] = []
            for q, name in enumerate(names):
                record = self._find(vid, name)
                box = _pixel_boxes(record).get(t) if record else None
                if box is None:
                    found.append(None)
                    continue
                rng = np.random.default_rng([self.seed, t, q, len(vid)])
                size = np.array([box[2] - box[0], box[3] - box[1]] * 2)
                found.append(Detection(tuple(float(v) for v in box + rng.normal(0, self.noise, 4) * size), self.score))
            out.append(found)
        return out


class ReplayTracker:
    """Replays the true track of the object under the first-frame box (the record whose frame-0 box overlaps it
    most), with per-frame `noise` and, for a `drift_fraction` of trajectories, a drift (`slide` or `jump`).
    Confidence is `confidence` where the object is in view and 0 where it is not (the true box is missing)."""

    name = "replay"

    def __init__(
        self,
        annotations: str | Path,
        *,
        noise: float = 0.01,
        drift_fraction: float = 0.0,
        drift: str = "slide",
        confidence: float = 0.95,
        seed: int = 0,
    ) -> None:
        if drift not in DRIFTS[1:]:
            raise ValueError(f"drift {drift!r}: choose from {', '.join(DRIFTS[1:])}")
        self.truth = _truth(annotations)
        self.noise, self.drift_fraction, self.drift, self.confidence, self.seed = (
            noise,
            drift_fraction,
            drift,
            confidence,
            seed,
        )
        self.drifted: dict[tuple[str, int], str] = {}  # (vid, object index) -> drift kind given, for tests

    def __call__(self, frames: np.ndarray, first_boxes: Sequence[Sequence[float]], key: str = "") -> list[Trajectory]:
        from .filters import box_iou

        vid = key
        num_frames, height, width = frames.shape[:3]
        out = []
        for k, first in enumerate(first_boxes):
            tracks = [_pixel_boxes(r) for r in self.truth.get(vid, [])]
            ious = [box_iou(first, track[0]) if 0 in track else 0.0 for track in tracks]
            boxes = np.full((num_frames, 4), np.nan)
            confidence = np.zeros(num_frames)
            if not ious or max(ious) <= 0:
                out.append(Trajectory(boxes, confidence))
                continue
            track = tracks[int(np.argmax(ious))]
            rng = np.random.default_rng([self.seed, k, sum(map(ord, vid))])
            kind = self.drift if rng.random() < self.drift_fraction else "none"
            object_index = int(self.truth[vid][int(np.argmax(ious))].get("metadata", {}).get("object_index", k))
            self.drifted[(vid, object_index)] = kind
            for t in range(num_frames):
                if t not in track:
                    continue
                box = track[t].copy()
                size = np.array([box[2] - box[0], box[3] - box[1]] * 2)
                box += rng.normal(0, self.noise, 4) * size
                if kind == "slide" and t >= num_frames // 2:
                    box += np.array([1, 0, 1, 0]) * 0.15 * size[0] * (t - num_frames // 2 + 1)
                elif kind == "jump" and t >= num_frames // 3:
                    box += np.array([width, height, width, height]) / 2  # half a frame away (then wrapped)
                    shift = np.array([box[2] // width * width, box[3] // height * height] * 2)
                    box -= shift
                boxes[t] = box
                confidence[t] = self.confidence
            out.append(Trajectory(boxes, confidence))
        return out


def replay_captions(synth_dir: str | Path) -> Path:
    """`captions.jsonl` for a synth folder: per video its frame folder (under `SYNTH_DIR/frames`), a caption made of
    its tracks' descriptions, and `chunks`: each description's leading noun phrase ("a large red square"), as a
    parser would give them."""
    synth_dir = Path(synth_dir)
    by_vid = _truth(synth_dir / "annotations.jsonl")
    lines = []
    for vid, records in sorted(by_vid.items()):
        descriptions = [r["object_description"] for r in records]
        chunks = [_leading_noun_phrase(d, r["object_class"]) for d, r in zip(descriptions, records)]
        caption = "; ".join(descriptions) + "."
        lines.append(json.dumps({"video": vid, "caption": caption, "chunks": chunks, "id": vid}))
    path = synth_dir / "captions.jsonl"
    write_text_atomic(path, "".join(line + "\n" for line in lines))
    return path


def _leading_noun_phrase(description: str, head: str) -> str:
    words = description.split()
    return " ".join(words[: words.index(head) + 1]) if head in words else description


def run_replay_captions(args: argparse.Namespace) -> int:
    """`elysium data replay-captions SYNTH_DIR` (registered by `elysium.training.data_cli`)."""
    print(replay_captions(args.synth_dir))
    return 0
