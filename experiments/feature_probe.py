"""Do the image tokens the LLM gets carry what the target looks like? A linear probe, beside the most common class.

For each generated track, frame 0 is cut as the tracker cuts it (a square `track_search_context` times the first
box) and the T-Selector's tokens of the patches inside the box are averaged: one vector a target. A softmax
regression trained on one generated set names the colour and shape of the targets of another. High probe accuracy
with descriptions that do not name the looks (`experiments.localization`'s `looks`) says the LLM does not read what
the vision tower gives it; a probe near the most common class says the vision tower does not see it.

    python -m experiments.feature_probe --model DIR --train-data GENERATED_DIR --data GENERATED_DIR
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

# Generated attributes a probe names (the keys of elysium.synthetic's `attributes`).
ATTRIBUTES = ("color", "shape", "size", "texture")


def target_features(model: Any, processor: Any, records: Sequence[dict[str, Any]], root: Path) -> np.ndarray:
    """`(len(records), hidden)`: the mean image token of the patches whose centre lies in each frame-0 box, in the
    tracker's square around it (whole frames for a model without `track_search_context`)."""
    from elysium.inference.tracker import ElysiumTracker
    from elysium.processing.crops import box_in_crop, crop_image

    tracker = ElysiumTracker(model, processor)
    vision = model.config.vision_config
    side = vision.image_size // vision.patch_size
    centres = (np.arange(side) + 0.5) / side
    rows = []
    for record in tqdm(records, desc="image tokens", leave=False):
        with Image.open(root / record["frames"][0]) as image:
            frame = np.asarray(image.convert("RGB"))
        box = record["box"][0]
        if tracker.search_context is not None:
            region = tracker.square(box, (frame.shape[1], frame.shape[0]))
            frame, box = crop_image(frame, region), box_in_crop(box, region)
        pixels = processor.image_processor([frame])["pixel_values"].to(model.device, model.dtype)
        with torch.inference_mode():
            output = model.get_image_features(pixel_values=pixels)
        tokens, patches = output.pooler_output[0].float(), output.selected_patches[0]
        x, y = centres[(patches % side).cpu().numpy()], centres[(patches // side).cpu().numpy()]
        inside = (x >= box[0]) & (x <= box[2]) & (y >= box[1]) & (y <= box[3])
        if not inside.any():  # a box smaller than a patch: the kept patch nearest its centre
            inside = np.zeros_like(inside)
            inside[np.argmin(np.hypot(x - (box[0] + box[2]) / 2, y - (box[1] + box[3]) / 2))] = True
        rows.append(tokens[torch.from_numpy(inside).to(tokens.device)].mean(0).cpu().numpy())
    return np.stack(rows)


def linear_probe(
    train_x: np.ndarray, train_y: Sequence[str], test_x: np.ndarray, test_y: Sequence[str], steps: int = 300
) -> dict[str, float]:
    """Test accuracy of a softmax regression on standardized features (L-BFGS, a little weight decay), beside
    always answering the training set's most common class."""
    classes = sorted(set(train_y))
    index = {name: i for i, name in enumerate(classes)}
    mean, std = train_x.mean(0), train_x.std(0) + 1e-6
    inputs = torch.tensor((train_x - mean) / std, dtype=torch.float64)
    tests = torch.tensor((test_x - mean) / std, dtype=torch.float64)
    targets = torch.tensor([index[y] for y in train_y])
    torch.manual_seed(0)
    layer = torch.nn.Linear(inputs.shape[1], len(classes), dtype=torch.float64)
    optimizer = torch.optim.LBFGS(layer.parameters(), max_iter=steps, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(layer(inputs), targets) + 1e-3 * layer.weight.pow(2).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    with torch.no_grad():
        guesses = [classes[i] for i in layer(tests).argmax(1).tolist()]
    common = max(classes, key=list(train_y).count)
    return {
        "probe": round(float(np.mean([g == y for g, y in zip(guesses, test_y)])), 4),
        "most_common": round(float(np.mean([y == common for y in test_y])), 4),
    }


def _records(folder: Path, limit: int | None) -> list[dict[str, Any]]:
    """The generated tracks with attributes (undecodable lines skipped, as training reads them)."""
    from elysium.training.records import SkipCounts, read_jsonl_lenient

    records = read_jsonl_lenient(folder / "annotations.jsonl", SkipCounts())
    return [r for r in records if r.get("metadata", {}).get("attributes")][:limit]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="a saved Elysium (default: the packaged elysium-tiny)")
    parser.add_argument("--train-data", required=True, type=Path, help="a generated set to fit the probe on")
    parser.add_argument("--data", required=True, type=Path, help="another generated set (other seed) to score it on")
    parser.add_argument("--samples", type=int, default=None, help="tracks of each set to use (default all)")
    parser.add_argument("--out", type=Path, default=None, help="write the scores here as JSON")
    parser.add_argument("--device", default=None)
    parser.add_argument(
        "--trust-remote-code", action="store_true", help="run code the model folder ships (only folders you trust)"
    )
    args = parser.parse_args(argv)
    sets = {}
    for folder in (args.train_data, args.data):
        found = (folder / "annotations.jsonl").is_file()
        sets[folder] = _records(folder, args.samples) if found else []
        if not sets[folder]:
            problem = "has no annotations.jsonl" if not found else "has no generated tracks with attributes"
            print(f"error: {folder} {problem}; give folders written by `elysium data synth`", file=sys.stderr)
            return 2

    from elysium.inference.loading import load_model_and_processor
    from experiments.localization import print_report

    model, processor = load_model_and_processor(args.model, args.device, trust_remote_code=args.trust_remote_code)
    train, test = sets[args.train_data], sets[args.data]
    train_x = target_features(model, processor, train, args.train_data)
    test_x = target_features(model, processor, test, args.data)
    report: dict[str, Any] = {"model": args.model or "default", "train": len(train), "test": len(test)}
    for attribute in ATTRIBUTES:
        labels = [[r["metadata"]["attributes"][attribute] for r in records] for records in (train, test)]
        report[attribute] = linear_probe(train_x, labels[0], test_x, labels[1])
    print_report(report, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
