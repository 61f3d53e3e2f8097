"""Does a model localize at all? Two direct measurements on generated data, each beside what no perception gives.

- Grounding (REC): the model's box for an expression in a still image, scored by IoU and by the distance of its
  centre from the target's (a fraction of the image), beside one constant box (the set's mean target box).
- Motion: over a clip tracked from its first box, does the predicted box move the way the target moves? The cosine
  between the predicted and the true displacement of the box centre (first to last frame; ~0 when the answer's
  motion has nothing to do with the target's), and their length ratio; and how far the first tracked frame's box
  is from the target, beside the given box (copying it): a tracker that finds the object must beat copying there.
- Looks: does the model's Video-REG description name the target's colour, shape, size and texture as the reference
  description does, beside always naming the set's most common one? Pointing at an object is not telling it
  from the others; RSOT's first clip needs both.

Success AUC mixes these up with box size and drift; these two say which part is missing:

    python -m experiments.localization --model DIR --data GENERATED_DIR [--samples 60] [--context 3]

A folder with only `grounding.jsonl` (e.g. `elysium data squares`) gets the grounding part.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from elysium.evaluation.heldout import Track, describe_tracks
from elysium.evaluation.ope import rect_iou, xyxy_to_xywh


def _centre(boxes: np.ndarray) -> np.ndarray:
    return (boxes[..., :2] + boxes[..., 2:]) / 2


def box_scores(predicted: Sequence[Sequence[float] | None], truth: np.ndarray, sizes: np.ndarray) -> dict[str, float]:
    """Mean IoU, share with IoU >= 0.5, mean distance of the box centres with x in widths and y in heights of the
    image (`sizes`, `(w, h)` each), and share whose centre lies in the true box (the object was found, whatever
    the box's size), of pixel boxes; a missing prediction scores IoU 0, distance 1 and not found."""
    found = np.array([box is not None for box in predicted])
    boxes = np.asarray([box if box is not None else [0.0, 0.0, 1.0, 1.0] for box in predicted], dtype=np.float64)
    ious = np.where(found, rect_iou(xyxy_to_xywh(boxes), xyxy_to_xywh(truth)), 0.0)
    distances = np.where(found, np.linalg.norm((_centre(boxes) - _centre(truth)) / sizes, axis=-1), 1.0)
    return {
        "mean_iou": round(float(ious.mean()), 4),
        "iou_at_least_0.5": round(float((ious >= 0.5).mean()), 4),
        "centre_distance": round(float(distances.mean()), 4),
        "centre_on_target": round(float((found & _inside(_centre(boxes), truth)).mean()), 4),
    }


def _inside(points: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    return np.all((boxes[..., :2] <= points) & (points <= boxes[..., 2:]), axis=-1)


def grounding_scores(
    tracker: Any,
    records: Sequence[dict[str, Any]],
    image_root: str | Path,
    context: float | None = None,
    seed: int = 0,
    progress: bool = True,
) -> dict[str, Any]:
    """REC on `{image, box (normalized), expression}` records with `tracker.ground`, whole images or cut to a square
    `context` times the target (placed at random, as training's `grounding_context`), beside a constant box."""
    from elysium.processing.crops import box_in_crop, crop_image, target_crop

    rng = random.Random(seed)
    predicted, truth, sizes = [], [], []
    for record in tqdm(records, desc="grounding", disable=not progress):
        with Image.open(Path(image_root) / record["image"]) as image:
            image = image.convert("RGB")
        box = record["box"]
        if context is not None:
            crop = target_crop(box, image.size, context, rng)
            image, box = crop_image(image, crop), box_in_crop(box, crop)
        width, height = image.size
        truth.append([box[0] * width, box[1] * height, box[2] * width, box[3] * height])
        sizes.append([width, height])
        predicted.append(tracker.ground(image, record["expression"]))
    truth_array, size_array = np.asarray(truth), np.asarray(sizes, dtype=np.float64)
    mean_box = (truth_array / np.tile(size_array, 2)).mean(0)  # one normalized box for every image
    constant = [mean_box * np.tile(size, 2) for size in size_array]
    return {
        "samples": len(records),
        "context": context,
        "model": box_scores(predicted, truth_array, size_array),
        "constant_box": box_scores(constant, truth_array, size_array),
    }


def motion_agreement(predictions: Sequence[np.ndarray], tracks: Sequence[Track], least_px: float = 4.0) -> dict:
    """Cosine and length ratio of the predicted vs the true displacement of the box centre, first to last frame, over
    the tracks whose target moves at least `least_px` pixels."""
    cosines, ratios = [], []
    for prediction, track in zip(predictions, tracks):
        truth = _centre(track.boxes[-1]) - _centre(track.boxes[0])
        guess = _centre(np.asarray(prediction[-1])) - _centre(track.boxes[0])
        if np.linalg.norm(truth) < least_px:
            continue
        cosines.append(float(truth @ guess / (np.linalg.norm(truth) * np.linalg.norm(guess) + 1e-9)))
        ratios.append(float(np.linalg.norm(guess) / np.linalg.norm(truth)))
    return {
        "tracks": len(cosines),
        "mean_cosine": round(float(np.mean(cosines)), 4) if cosines else None,
        "median_length_ratio": round(float(np.median(ratios)), 4) if ratios else None,
    }


def next_frame_error(predictions: Sequence[np.ndarray], tracks: Sequence[Track]) -> dict:
    """Median distance of the second frame's predicted box centre from the target's, in the target's first-frame
    side (the mean of width and height), beside the first box's own (what repeating it scores)."""
    model, first_box = [], []
    for prediction, track in zip(predictions, tracks):
        if len(track.boxes) < 2:
            continue
        side = float(np.mean(track.boxes[0, 2:] - track.boxes[0, :2]))
        target = _centre(track.boxes[1])
        model.append(float(np.linalg.norm(_centre(np.asarray(prediction[1])) - target)) / side)
        first_box.append(float(np.linalg.norm(_centre(track.boxes[0]) - target)) / side)
    return {
        "tracks": len(model),
        "median_centre_error": round(float(np.median(model)), 4) if model else None,
        "median_centre_error_first_box": round(float(np.median(first_box)), 4) if first_box else None,
    }


def _looks() -> dict[str, tuple[str, ...]]:
    """The generated set's words of looks (elysium.synthetic), one vocabulary an attribute; "plain" is never said."""
    from elysium.synthetic import COLORS, SHAPES, SIZES, TEXTURES

    textures = tuple(t for t in TEXTURES if t != "plain")
    return {"color": tuple(COLORS), "shape": tuple(SHAPES), "size": tuple(SIZES), "texture": textures}


def _looks_word(description: str, vocabulary: Sequence[str], default: str | None) -> str | None:
    """The first word of `vocabulary` in the description's looks (before its motion and other objects' names)."""
    words = description.lower().replace(",", " ").split()
    for stop in ("moving", "staying", "partly", "growing", "shrinking"):
        words = words[: words.index(stop)] if stop in words else words
    return next((word for word in words if word in vocabulary), default)


def attribute_naming(descriptions: Sequence[str], references: Sequence[str]) -> dict[str, Any]:
    """Per attribute of the generated set's looks, the share of descriptions naming the reference's word (a texture
    left unsaid matches a plain reference), beside the share the set's most common reference word would get."""
    report: dict[str, Any] = {"tracks": len(references)}
    for attribute, vocabulary in _looks().items():
        default = "plain" if attribute == "texture" else None
        truth = [_looks_word(text, vocabulary, default) for text in references]
        said = [_looks_word(text, vocabulary, default) for text in descriptions]
        scored = [(t, s) for t, s in zip(truth, said) if t is not None]
        if not scored:
            continue
        values = [t for t, _ in scored]
        common = max(set(values), key=values.count)
        report[attribute] = {
            "model": round(sum(t == s for t, s in scored) / len(scored), 4),
            "most_common": round(values.count(common) / len(values), 4),
        }
    return report


def print_report(report: dict[str, Any], out: Path | None) -> None:
    """A diagnostic's scores as JSON on stdout and, with `out`, in that file (written whole or not at all)."""
    text = json.dumps(report, indent=2)
    print(text)
    if out is not None:
        from elysium.utils.atomic import write_text_atomic

        write_text_atomic(out, text + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="a saved Elysium (default: the packaged elysium-tiny)")
    parser.add_argument("--data", required=True, type=Path, help="a generated folder (elysium data synth --out)")
    parser.add_argument("--samples", type=int, default=60, help="images and tracks to use (default 60)")
    parser.add_argument("--context", type=float, default=None, help="also ground in crops this many times the target")
    parser.add_argument("--max-frames", type=int, default=8, help="frames of each tracked clip (default 8: one clip)")
    parser.add_argument("--out", type=Path, default=None, help="write the scores here as JSON")
    parser.add_argument("--device", default=None)
    parser.add_argument(
        "--trust-remote-code", action="store_true", help="run code the model folder ships (only folders you trust)"
    )
    args = parser.parse_args(argv)
    files = [args.data / "grounding.jsonl", args.data / "annotations.jsonl"]  # tracks are optional
    if not files[0].is_file() or args.samples < 1 or args.max_frames < 2:
        problem = f"{files[0]} not found" if not files[0].is_file() else "--samples must be >= 1, --max-frames >= 2"
        print(f"error: {problem}; give a folder written by `elysium data synth`", file=sys.stderr)
        return 2

    from elysium.evaluation.heldout import load_tracks
    from elysium.inference.benchmark_runner import track_heldout
    from elysium.inference.loading import load_model_and_processor
    from elysium.inference.tracker import ElysiumTracker

    model, processor = load_model_and_processor(args.model, args.device, trust_remote_code=args.trust_remote_code)
    tracker = ElysiumTracker(model, processor, clip_len=args.max_frames)
    records = [json.loads(line) for line in files[0].read_text().splitlines() if line.strip()][: args.samples]
    report: dict[str, Any] = {"model": args.model or "default", "search_context": tracker.search_context}
    report["grounding_whole"] = grounding_scores(tracker, records, args.data)
    if args.context is not None:
        report["grounding_crops"] = grounding_scores(tracker, records, args.data, context=args.context)
    if files[1].is_file():
        tracks = load_tracks(files[1], limit=args.samples, max_frames=args.max_frames)
        predictions = track_heldout(tracker, tracks, progress=True).sot
        report["sot_motion"] = motion_agreement(predictions, tracks)
        report["sot_next_frame"] = next_frame_error(predictions, tracks)
        described = [track for track in tracks if track.description]
        if described:
            texts = describe_tracks(tracker, described)
            report["looks"] = attribute_naming(texts, [track.description for track in described])
    print_report(report, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
