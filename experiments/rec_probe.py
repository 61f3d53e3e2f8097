"""One-off: REC on the whole first frame of each track, asked with the track's own (RSOT) expression, by the
target's size; `experiments.localization.grounding_scores` does the asking and scoring.

    python -m experiments.rec_probe MODEL_DIR runs/eval/val/data 178
"""

import json
import sys
from pathlib import Path

import torch

from elysium.inference.loading import load_model_and_processor
from elysium.inference.tracker import ElysiumTracker
from experiments.localization import grounding_scores

model_dir, data, count = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
torch.set_num_threads(2)
annotations = [json.loads(line) for line in (data / "annotations.jsonl").read_text().splitlines()][:count]
records = [
    {
        "image": a["frames"][0],
        "box": a["box"][0],
        "expression": a["expression"],
        "size": a["metadata"]["attributes"]["size"],
    }
    for a in annotations
]
model, processor = load_model_and_processor(model_dir, "cpu")
tracker = ElysiumTracker(model, processor)
found = {"all": grounding_scores(tracker, records, data, progress=False)["model"]["centre_on_target"]}
for size in sorted({r["size"] for r in records}):
    part = [r for r in records if r["size"] == size]
    found[size] = grounding_scores(tracker, part, data, progress=False)["model"]["centre_on_target"]
print(f"{model_dir}: centre on target, {len(records)} tracks: {found}")
