"""Zero-shot grounding detectors: one best box per (frame, noun chunk), through transformers'
`AutoModelForZeroShotObjectDetection` (Grounding DINO, MM Grounding DINO, OWLv2, OWL-ViT) and its processor.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np


@dataclass(frozen=True)
class Detection:
    """The detector's best box for a query in one frame: pixels `[x1, y1, x2, y2]` and its score in 0..1."""

    box: tuple[float, float, float, float]
    score: float


class Detector(Protocol):
    """Frames and, per frame, the queries to ground -> per frame, per query, the best box inside the frame (or None).

    `keys` are `(video id, frame index)` of each frame (stand-ins that replay known boxes look them up)."""

    name: str

    def __call__(
        self, frames: Sequence[np.ndarray], queries: Sequence[Sequence[str]], keys: Sequence[tuple[str, int]]
    ) -> list[list[Detection | None]]: ...


class TransformersDetector:
    """A transformers zero-shot detector; its score is the one the paper thresholds at 0.6 (Grounding DINO's
    box score: the highest sigmoid of the box's text-token logits; OWLv2's: the sigmoid of the query logit).

    OWL models ground every query of an image in one pass (their labels are query indices). Grounding DINO reads
    one caption per image, and splitting "a dog. a man." back into phrases from its token scores is fragile, so it
    runs one (image, chunk) pair per batch item and takes the best box.
    """

    def __init__(self, model: Any, processor: Any, *, batch_size: int = 8, device: Any = None) -> None:
        self.model = model.eval()
        self.processor = processor
        self.batch_size = batch_size
        self.device = device if device is not None else model.device
        self.per_image = model.config.model_type in ("owlv2", "owlvit")
        self.name = getattr(model.config, "_name_or_path", "") or model.config.model_type

    @classmethod
    def from_pretrained(cls, name_or_path: str, *, device: Any = None, dtype: Any = None, **kwargs: Any):
        from transformers import AutoModelForZeroShotObjectDetection, AutoProcessor

        model = AutoModelForZeroShotObjectDetection.from_pretrained(name_or_path, dtype=dtype)
        if device is not None:
            model = model.to(device)
        processor = AutoProcessor.from_pretrained(name_or_path)
        return cls(model, processor, device=device, **kwargs)

    def __call__(
        self, frames: Sequence[np.ndarray], queries: Sequence[Sequence[str]], keys: Sequence[tuple[str, int]] = ()
    ) -> list[list[Detection | None]]:
        results: list[list[Detection | None]] = [[None] * len(q) for q in queries]
        if self.per_image:
            # A batch shares one query list: OWL's processor pads shorter lists with extra queries, which would
            # take boxes from the real ones (each box goes to its best query). A video's frames share their list.
            groups: dict[tuple[str, ...], list[tuple[int, int | None]]] = {}
            for i, q in enumerate(queries):
                if q:
                    groups.setdefault(tuple(q), []).append((i, None))
            lists = list(groups.values())
        else:
            lists = [[(i, j) for i, q in enumerate(queries) for j in range(len(q))]]
        for items in lists:
            for start in range(0, len(items), self.batch_size):
                batch = items[start : start + self.batch_size]
                for (i, j), best in zip(batch, self._run(frames, queries, batch)):
                    if j is None:
                        results[i] = best
                    else:
                        results[i][j] = best[0]
        return results

    def _run(
        self, frames: Sequence[np.ndarray], queries: Sequence[Sequence[str]], batch: list[tuple[int, int | None]]
    ) -> list[list[Detection | None]]:
        import PIL.Image
        import torch

        images = [PIL.Image.fromarray(frames[i]) for i, _ in batch]
        if self.per_image:
            labels = [list(queries[i]) for i, _ in batch]
            text: Any = labels
        else:
            labels = [[queries[i][j]] for i, j in batch]
            text = [_grounding_caption(q[0]) for q in labels]
        # OWL's processor tokenizes each image's queries apart, so they must share one padded length (its 16 tokens)
        padding = "max_length" if self.per_image else True
        inputs = self.processor(images=images, text=text, return_tensors="pt", padding=padding, truncation=True)
        inputs = inputs.to(self.device)
        with torch.inference_mode():
            outputs = self.model(**inputs)
        sizes = [(image.height, image.width) for image in images]
        if self.per_image:
            # threshold -1 keeps every box, in the model's order, so the rows of `logits` line up with them
            found = self.processor.post_process_grounded_object_detection(outputs, threshold=-1.0, target_sizes=sizes)
            # OWL's post-processing gives each box only its best query; we want each query's best box, so we read
            # the (box, query) scores the model gives, which are the post-processing's scores for the best query.
            query_scores = torch.sigmoid(outputs.logits.float()).cpu().numpy()
        else:
            found = self.processor.post_process_grounded_object_detection(
                outputs, input_ids=inputs["input_ids"], threshold=0.0, text_threshold=0.0, target_sizes=sizes
            )
        out = []
        for k, (result, names, (height, width)) in enumerate(zip(found, labels, sizes)):
            # Boxes clipped to the frame (OWLv2's can reach into its square padding); empty ones cannot be tracked.
            boxes = np.clip(result["boxes"].float().cpu().numpy(), 0, [width, height, width, height])
            usable = (boxes[:, 2] - boxes[:, 0] >= 1) & (boxes[:, 3] - boxes[:, 1] >= 1)
            # per box and query; Grounding DINO's one column is its box score (max over the caption's tokens)
            scores = (
                query_scores[k][:, : len(names)] if self.per_image else result["scores"].float().cpu().numpy()[:, None]
            )
            best: list[Detection | None] = [None] * len(names)
            for q in range(len(names)):
                column = np.where(usable, scores[:, q], -np.inf)
                if usable.any():
                    i = int(np.argmax(column))
                    best[q] = Detection(tuple(float(v) for v in boxes[i]), float(scores[i, q]))
            out.append(best)
        return out


def _grounding_caption(query: str) -> str:
    """Grounding DINO wants lower-case phrases that end with a period."""
    query = query.strip().lower()
    return query if query.endswith(".") else query + "."
