"""One-off: REC on named squares (2-4 an image, `elysium data squares --count 2 4`), whole images: the share of
answers whose centre is on the target, for every record, those named by colour ("the red square") and those named
by place ("the leftmost square"); `experiments.localization.grounding_scores` does the asking and scoring.

    python -m experiments.named_probe MODEL_DIR runs/named-squares-test
"""

import json
import sys
from pathlib import Path

import torch

from elysium.inference.loading import load_model_and_processor
from elysium.inference.tracker import ElysiumTracker
from experiments.localization import grounding_scores

model_dir, data = sys.argv[1], Path(sys.argv[2])
torch.set_num_threads(2)
records = [json.loads(line) for line in (data / "grounding.jsonl").read_text().splitlines()]
by_place = {"leftmost", "rightmost", "topmost", "lowest", "square"}  # "the square on the left" has "square" second
parts = {
    "all": records,
    "colour": [r for r in records if r["expression"].split()[1] not in by_place],
    "place": [r for r in records if r["expression"].split()[1] in by_place],
}
model, processor = load_model_and_processor(model_dir, "cpu")
tracker = ElysiumTracker(model, processor)
found = {}
for name, part in parts.items():
    scores = grounding_scores(tracker, part, data, progress=False)
    found[name] = {
        "records": len(part),
        "model": round(100 * scores["model"]["centre_on_target"], 1),
        "constant_box": round(100 * scores["constant_box"]["centre_on_target"], 1),
    }
print(f"{model_dir}: centre on target, %: {found}")
