"""Held-out scoring on ElysiumTrack-format records, each task beside a trivial baseline computed in the same run.

Baselines (what a model must beat to show it perceives anything):
- SOT: repeat the first-frame box in every frame.
- RSOT: one fixed box at the frame centre, sized as the median ground-truth box of the set.
- Video-REG: the most common reference description of the set, for every track.
Tracking is scored with One-Pass Evaluation (got10k protocol); captions with METEOR and CIDEr-D.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from .ope import OPEResult, score_dataset, score_sequence, xyxy_to_xywh

PROTOCOL = "got10k"


@dataclass
class Track:
    """One record: its frames (as RGB arrays), pixel ground truth x1,y1,x2,y2 and texts."""

    id: str
    frames: list[np.ndarray]
    boxes: np.ndarray
    expression: str
    description: str
    frame_size: tuple[int, int]
    flags: dict[str, Any] = field(default_factory=dict)


def load_tracks(annotations: str | Path, limit: int | None = None, max_frames: int | None = None) -> list[Track]:
    """Records of an ElysiumTrack JSONL whose frame paths are relative to the file's folder."""
    path = Path(annotations)
    tracks = []
    for line in path.read_text().splitlines():
        if limit is not None and len(tracks) >= limit:
            break
        record = json.loads(line)
        w, h = record["frame_size"]
        paths = record["frames"][:max_frames]
        frames = [np.asarray(Image.open(path.parent / p).convert("RGB")) for p in paths]
        boxes = np.asarray(record["box"][: len(paths)], dtype=np.float64) * [w, h, w, h]
        tracks.append(
            Track(
                id=record["id"],
                frames=frames,
                boxes=boxes,
                expression=record.get("expression") or record["object_description"],
                description=record["object_description"],
                frame_size=(w, h),
                flags=dict(record.get("metadata", {}).get("flags", {}), size=_size_of(record)),
            )
        )
    return tracks


def _size_of(record: dict[str, Any]) -> str:
    return str(record.get("metadata", {}).get("attributes", {}).get("size", "unknown"))


def ope(predictions: Sequence[np.ndarray], tracks: Sequence[Track]) -> OPEResult:
    scores = [
        score_sequence(xyxy_to_xywh(pred), xyxy_to_xywh(track.boxes), protocol=PROTOCOL, name=track.id)
        for pred, track in zip(predictions, tracks)
    ]
    return score_dataset(scores, PROTOCOL)


def summary(result: OPEResult) -> dict[str, float]:
    return {"success_auc": result.success_auc, "precision_20px": result.precision_20px}


def central_boxes(tracks: Sequence[Track]) -> list[np.ndarray]:
    """The RSOT baseline: a fixed centred box of the set's median ground-truth size."""
    sizes = np.concatenate([t.boxes[:, 2:] - t.boxes[:, :2] for t in tracks])
    bw, bh = np.median(sizes, axis=0)
    out = []
    for track in tracks:
        w, h = track.frame_size
        box = np.array([(w - bw) / 2, (h - bh) / 2, (w + bw) / 2, (h + bh) / 2])
        out.append(np.repeat(box[None], len(track.frames), axis=0))
    return out


def evaluate_heldout(
    tracker: Any,
    tracks: Sequence[Track],
    batch_size: int = 8,
    captions: bool = True,
    progress: bool = True,
) -> dict[str, Any]:
    """SOT, RSOT and Video-REG scores of `tracker` (an `ElysiumTracker`) on `tracks`, each beside its baseline."""
    from elysium.inference.tracker import VideoSource

    sot, rsot = [], []
    batches = range(0, len(tracks), batch_size)
    for start in tqdm(batches, desc="held-out tracking", disable=not progress):
        chunk = tracks[start : start + batch_size]
        sources = [VideoSource.from_frames(t.frames) for t in chunk]
        for result in tracker.track_batch(sources, boxes=[t.boxes[0].tolist() for t in chunk]):
            sot.append(np.asarray(result.boxes, dtype=np.float64))
        sources = [VideoSource.from_frames(t.frames) for t in chunk]
        for result in tracker.track_batch(sources, expressions=[t.expression for t in chunk]):
            rsot.append(np.asarray(result.boxes, dtype=np.float64))

    report: dict[str, Any] = {
        "tracks": len(tracks),
        "protocol": PROTOCOL,
        "sot": summary(ope(sot, tracks)),
        "sot_baseline_first_box": summary(ope([np.repeat(t.boxes[:1], len(t.frames), 0) for t in tracks], tracks)),
        "rsot": summary(ope(rsot, tracks)),
        "rsot_baseline_central_box": summary(ope(central_boxes(tracks), tracks)),
        "by_condition": breakdown(sot, tracks),
    }
    if captions:
        from .captions import score_captions

        predictions = {t.id: tracker.describe(t.frames, t.boxes[0].tolist()) for t in tracks}
        references = {t.id: t.description for t in tracks}
        common = Counter(references.values()).most_common(1)[0][0]
        report["video_reg"] = score_captions(predictions, references).to_dict()
        report["video_reg_baseline_most_common"] = score_captions({k: common for k in references}, references).to_dict()
        report["video_reg_examples"] = [
            {"id": k, "prediction": predictions[k], "reference": references[k]} for k in list(references)[:5]
        ]
    return report


def breakdown(predictions: Sequence[np.ndarray], tracks: Sequence[Track]) -> dict[str, dict[str, float]]:
    """SOT AUC on the tracks with each condition (occlusion, distractors, small objects, ...) and without."""
    conditions = {
        "occluded": lambda t: bool(t.flags.get("occluded")),
        "has_distractor": lambda t: bool(t.flags.get("has_distractor")),
        "abrupt_motion": lambda t: bool(t.flags.get("abrupt_motion")),
        "leaves_frame": lambda t: bool(t.flags.get("leaves_frame")),
        "small": lambda t: t.flags.get("size") == "small",
    }
    out = {}
    for name, test in conditions.items():
        chosen = [i for i, t in enumerate(tracks) if test(t)]
        rest = [i for i, t in enumerate(tracks) if not test(t)]
        out[name] = {
            "tracks_with": len(chosen),
            "auc_with": ope([predictions[i] for i in chosen], [tracks[i] for i in chosen]).success_auc
            if chosen
            else None,
            "auc_without": ope([predictions[i] for i in rest], [tracks[i] for i in rest]).success_auc if rest else None,
        }
    return out


def _auc(predictions: Sequence[np.ndarray], tracks: Sequence[Track], chosen: list[int]) -> float | None:
    return ope([predictions[i] for i in chosen], [tracks[i] for i in chosen]).success_auc if chosen else None
