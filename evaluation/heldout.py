"""Held-out scoring on ElysiumTrack-format records, each task beside a trivial baseline computed in the same run.

Baselines (what a model must beat to show it perceives anything):
- SOT: repeat the first-frame box in every frame.
- RSOT: one fixed box at the frame centre, sized as the median ground-truth box of the set.
- Video-REG: for each track, the most common reference description of the set's other tracks (leave one out: a
  constant caption taken from the scored track's own reference would score it perfectly, a leak of ~10 CIDEr-D
  divided by the number of tracks, most of the baseline on a small set).
Tracking is scored with One-Pass Evaluation (got10k protocol); captions with METEOR and CIDEr-D.
Nothing here runs a model: `elysium.inference.benchmark_runner.track_heldout` makes the predictions (kept by
`elysium heldout` to draw failure cases), `score_heldout` scores them (`evaluate_heldout` there does both).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from elysium.utils.paths import inside_root

from .ope import OPEResult, rect_iou, score_dataset, score_sequence, xyxy_to_xywh

PROTOCOL = "got10k"
# The scoring's revision, part of the key `elysium heldout` reuses a saved result by: raised when a score or a
# baseline is computed differently (2: the caption baseline leaves the scored track out), so no older one is reused.
SCORING = 2


@dataclass
class Track:
    """One record: its frames (as RGB arrays), pixel ground truth x1,y1,x2,y2 and texts.

    `frame_indices` are the frames' numbers in the source video: generated records skip the frames where the
    object is out of view.
    """

    id: str
    frames: list[np.ndarray]
    boxes: np.ndarray
    expression: str
    description: str
    frame_size: tuple[int, int]
    flags: dict[str, Any] = field(default_factory=dict)
    frame_indices: list[int] = field(default_factory=list)


def describe_tracks(tracker: Any, tracks: Sequence[Track], progress: bool = True) -> list[str]:
    """The tracker's Video-REG description of each track's target, from its first box over its frames."""
    described = tqdm(tracks, desc="descriptions", disable=not progress)
    return [tracker.describe(track.frames, track.boxes[0].tolist()) for track in described]


def load_tracks(annotations: str | Path, limit: int | None = None, max_frames: int | None = None) -> list[Track]:
    """Records of an ElysiumTrack JSONL whose frame paths are relative to the file's folder."""
    path = Path(annotations)
    tracks = []
    for line in path.read_text(encoding="utf-8-sig").splitlines():
        if limit is not None and len(tracks) >= limit:
            break
        record = json.loads(line)
        w, h = record["frame_size"]
        paths = record["frames"][:max_frames]
        frames = [np.asarray(Image.open(inside_root(path.parent, p)).convert("RGB")) for p in paths]
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
                frame_indices=list(record.get("metadata", {}).get("frame_indices", range(len(paths))))[: len(paths)],
            )
        )
    return tracks


def _size_of(record: dict[str, Any]) -> str:
    return str(record.get("metadata", {}).get("attributes", {}).get("size", "unknown"))


def ope(predictions: Sequence[np.ndarray], tracks: Sequence[Track], first_frame_given: bool = True) -> OPEResult:
    """OPE scores; RSOT (`first_frame_given=False`) is scored on its own frame-1 box too."""
    scores = [
        score_sequence(
            xyxy_to_xywh(pred),
            xyxy_to_xywh(track.boxes),
            protocol=PROTOCOL,
            name=track.id,
            first_frame_given=first_frame_given,
        )
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


@dataclass
class HeldoutPredictions:
    """A tracker's pixel boxes `[x1,y1,x2,y2]` per track, one array per track in the order of the tracks."""

    sot: list[np.ndarray]
    rsot: list[np.ndarray]


def first_boxes(tracks: Sequence[Track]) -> list[np.ndarray]:
    """The SOT baseline: the first-frame box repeated in every frame."""
    return [np.repeat(t.boxes[:1], len(t.frames), 0) for t in tracks]


def most_common_descriptions(references: dict[str, str]) -> dict[str, str]:
    """The Video-REG baseline: for each track, the most common description of the other tracks (ties: the first
    seen). Leaving the track out keeps its own reference, which a caption metric scores as perfect, out of it; a
    set of one track has no other, and its baseline says nothing."""
    counts = Counter(references.values())
    out = {}
    for key, own in references.items():
        counts[own] -= 1
        common = max(counts, key=counts.__getitem__)  # max keeps the first of equal counts, in insertion order
        out[key] = common if counts[common] > 0 else ""
        counts[own] += 1
    return out


def score_heldout(
    tracker: Any,
    tracks: Sequence[Track],
    predictions: HeldoutPredictions,
    captions: bool = True,
    progress: bool = True,
) -> dict[str, Any]:
    """The scores of tracked `predictions`, each beside its baseline; Video-REG asks `tracker` for captions."""
    report: dict[str, Any] = {
        "tracks": len(tracks),
        "protocol": PROTOCOL,
        "sot": summary(ope(predictions.sot, tracks)),
        "sot_baseline_first_box": summary(ope(first_boxes(tracks), tracks)),
        "rsot": summary(ope(predictions.rsot, tracks, first_frame_given=False)),
        "rsot_baseline_central_box": summary(ope(central_boxes(tracks), tracks, first_frame_given=False)),
        "by_condition": breakdown(predictions.sot, tracks),
    }
    if captions:
        from .captions import score_captions

        predicted = dict(zip([t.id for t in tracks], describe_tracks(tracker, tracks, progress)))
        references = {t.id: t.description for t in tracks}
        report["video_reg"] = score_captions(predicted, references).to_dict()
        common = most_common_descriptions(references)
        report["video_reg_baseline_most_common"] = score_captions(common, references).to_dict()
        report["video_reg_examples"] = [
            {"id": k, "prediction": predicted[k], "reference": references[k]} for k in list(references)[:5]
        ]
    return report


def mean_ious(predictions: Sequence[np.ndarray], tracks: Sequence[Track]) -> list[float]:
    """Each track's IoU averaged over its frames: ranks tracks from worst to best (got10k's IoU)."""
    return [float(np.mean(frame_ious(pred, track))) for pred, track in zip(predictions, tracks)]


def frame_ious(prediction: np.ndarray, track: Track) -> np.ndarray:
    """IoU of the predicted and ground-truth box in each frame of `track` (frames without a prediction score 0)."""
    pred = np.asarray(prediction, dtype=np.float64).reshape(-1, 4)[: len(track.boxes)]
    ious = np.zeros(len(track.boxes))
    ious[: len(pred)] = rect_iou(xyxy_to_xywh(pred), xyxy_to_xywh(track.boxes[: len(pred)]))
    return ious


# Conditions a record can have (from its metadata flags and size attribute), the hard cases of generated data.
CONDITIONS: dict[str, Callable[[Track], bool]] = {
    "occluded": lambda t: bool(t.flags.get("occluded")),
    "has_distractor": lambda t: bool(t.flags.get("has_distractor")),
    "abrupt_motion": lambda t: bool(t.flags.get("abrupt_motion")),
    "leaves_frame": lambda t: bool(t.flags.get("leaves_frame")),
    "small": lambda t: t.flags.get("size") == "small",
}


def breakdown(predictions: Sequence[np.ndarray], tracks: Sequence[Track]) -> dict[str, dict[str, float]]:
    """SOT AUC on the tracks with each condition (occlusion, distractors, small objects, ...) and without."""
    out = {}
    for name, test in CONDITIONS.items():
        chosen = [i for i, t in enumerate(tracks) if test(t)]
        rest = [i for i, t in enumerate(tracks) if not test(t)]
        out[name] = {
            "tracks_with": len(chosen),
            "auc_with": _auc(predictions, tracks, chosen),
            "auc_without": _auc(predictions, tracks, rest),
        }
    return out


def _auc(predictions: Sequence[np.ndarray], tracks: Sequence[Track], chosen: list[int]) -> float | None:
    return ope([predictions[i] for i in chosen], [tracks[i] for i in chosen]).success_auc if chosen else None
