"""One-off: REC on the whole first frame (ElysiumTracker.ground), centre on the target, by size."""

import sys

import numpy as np
import torch
from elysium.evaluation.heldout import load_tracks
from elysium.inference.loading import load_model_and_processor
from elysium.inference.tracker import ElysiumTracker

model_dir, data, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
torch.set_num_threads(2)
tracks = load_tracks(f"{data}/annotations.jsonl", limit=count, max_frames=1)
model, processor = load_model_and_processor(model_dir, "cpu")
tracker = ElysiumTracker(model, processor)
hits, sizes = [], [t.flags["size"] for t in tracks]
for t in tracks:
    box = tracker.ground(t.frames[0], t.expression)
    ok = box is not None and t.boxes[0][0] <= (box[0] + box[2]) / 2 <= t.boxes[0][2]
    ok = ok and t.boxes[0][1] <= (box[1] + box[3]) / 2 <= t.boxes[0][3]
    hits.append(ok)
by_size = {s: round(float(np.mean([h for h, z in zip(hits, sizes) if z == s])), 2) for s in sorted(set(sizes))}
print(f"{model_dir}: centre on target {np.mean(hits):.3f} of {len(hits)} {by_size}")
