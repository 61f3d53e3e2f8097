"""Training samples: a record and a seeded RNG -> prompt, answer, frames -> `input_ids`, `labels`, `pixel_values`.

Every random choice (clip length, stride, start, task, paraphrase) comes from the RNG the caller passes, so a
sample is a pure function of (seed, epoch, index): resuming a run or re-running a test gives the same batches.
Loss is only on the answer: labels are -100 on the system text, the question and the image tokens; the `</s>`
closing each answer is learned so the model knows when to stop.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import PIL.Image
import torch

from elysium.processing import ElysiumProcessor
from elysium.processing.boxes import format_box
from elysium.processing.crops import ANYWHERE, box_in_crop, target_crop
from elysium.processing.plain_text import encode_marked
from elysium.processing.prompts import REC, REG, RSOT, SOT, VIDEO_QA, VIDEO_REG
from elysium.processing.released_format import RELEASED

ASSISTANT_TAG = " ASSISTANT: "
END_OF_ANSWER = "</s>"
TRACK_TASKS = (SOT, RSOT, VIDEO_REG)


class SampleTooLong(ValueError):
    """The encoded sample exceeds `max_length`; truncating would cut image tokens, so it is skipped instead."""


@dataclass
class Example:
    """One training conversation before tokenization: frame references and the rendered text."""

    task: str
    frames: list[Any]  # relative paths (resolved by the source) or PIL images
    text: str
    answers: list[str]
    crop: tuple[float, float, float, float] | None = None  # normalized region of the frames the text describes


def clip_indices(
    video_length: int,
    rng: random.Random,
    min_frames: int = 2,
    max_frames: int = 8,
    max_stride: int = 60,
    from_first: bool = False,
) -> list[int]:
    """Frame indices of a clip: 2..8 frames at a stride 1..60, both clamped so the clip fits the video; starting
    at frame 0 when `from_first`."""
    if video_length < 1:
        raise ValueError("a video needs at least one frame")
    count = min(rng.randint(min_frames, max_frames), video_length)
    stride = rng.randint(1, max_stride)
    if count > 1:
        stride = min(stride, (video_length - 1) // (count - 1))
    start = 0 if from_first else rng.randint(0, video_length - 1 - (count - 1) * stride)
    return [start + i * stride for i in range(count)]


def jittered_box(box: Sequence[float], jitter: float, rng: random.Random) -> list[float]:
    """Normalized `box` with its centre moved by N(0, jitter) of its width / height on each axis and each side
    scaled by exp(N(0, jitter / 2)), kept inside the frame: a tracker's error on its last box (the template jitter
    of Siamese tracker training, e.g. SiamRPN++)."""
    x1, y1, x2, y2 = (float(v) for v in box)
    w, h = x2 - x1, y2 - y1
    cx = x1 + w / 2 + rng.gauss(0.0, jitter) * w
    cy = y1 + h / 2 + rng.gauss(0.0, jitter) * h
    w *= math.exp(rng.gauss(0.0, jitter / 2))
    h *= math.exp(rng.gauss(0.0, jitter / 2))
    w, h = min(w, 1.0), min(h, 1.0)
    cx = min(max(cx, w / 2), 1.0 - w / 2)  # slid back into the frame, its size kept
    cy = min(max(cy, h / 2), 1.0 - h / 2)
    return [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]


@dataclass
class SampleBuilder:
    """Turns records into `Example`s and encodes them with the processor (pixel values via its image processor)."""

    processor: ElysiumProcessor
    task_weights: dict[str, float] = field(default_factory=lambda: {SOT: 1.0, RSOT: 1.0, VIDEO_REG: 1.0})
    min_frames: int = 2
    max_frames: int = 8
    max_stride: int = 60
    max_length: int | None = None
    grounding_context: tuple[float, float] | None = None  # crop images around the target (`target_crop`)
    track_context: tuple[float, float] | None = None  # crop SOT / Video-REG clips around the first box
    track_place: tuple[float, float] = ANYWHERE  # where in its crop the first box lies (0.5: centred)
    track_box_jitter: float = 0.0  # SOT: the prompt's box is off by this much of its size (`jittered_box`)

    def track_example(
        self, record: dict[str, Any], rng: random.Random, frame_size: tuple[int, int] | None = None
    ) -> Example:
        """A clip of an ElysiumTrack record, boxes taken at exactly the frame indices, and a drawn task.

        With `track_context` (and the frames' `frame_size`), SOT and Video-REG clips are cropped to one square
        around the first frame's box (a context factor drawn from the range, the box at a random place in it), as
        a tracker crops each clip around its last box; later boxes are given in the crop, cut to its edge. RSOT
        clips stay whole: the object is not known yet when a tracker asks with an expression. With
        `track_box_jitter`, an SOT clip's prompt (and crop) has a box off the object (`jittered_box`).
        """

        tasks = [t for t in TRACK_TASKS if self.task_weights.get(t, 0) > 0]
        task = rng.choices(tasks, weights=[self.task_weights[t] for t in tasks])[0]
        # A referring expression (synthetic data) is written for the track's first frame ("on the left" may not
        # hold later), so its RSOT clips start there, as RSOT is evaluated.
        from_first = task == RSOT and bool(str(record.get("expression") or "").strip())
        indices = clip_indices(
            len(record["frames"]), rng, self.min_frames, self.max_frames, self.max_stride, from_first=from_first
        )
        frames = [record["frames"][i] for i in indices]
        boxes = [record["box"][i] for i in indices]
        description = record["object_description"].strip()
        # SOT with a jitter: the prompt gives a box off the object, as a tracker's last prediction is, and the clip
        # is cropped around it, as the tracker crops; the answer keeps the true boxes, its first one included, so
        # the model learns to find the object from a rough box instead of copying the box it is given.
        given = boxes[0]
        if task == SOT and self.track_box_jitter > 0:
            given = jittered_box(boxes[0], self.track_box_jitter, rng)
        crop = None
        if self.track_context is not None and task != RSOT:
            crop = self._crop_around(given, frame_size, self.track_context, rng, self.track_place)
            boxes = [box_in_crop(box, crop, clip=True) for box in boxes]
            given = box_in_crop(given, crop, clip=True)
        if task == SOT:
            answer = self.processor.format_track_answer(boxes)
            text = self.processor.build_prompt(SOT, len(frames), box=given, answer=answer, paraphrase=None, rng=rng)
        elif task == RSOT:  # a referring expression where the record has one (synthetic data), else the description
            expression = str(record.get("expression") or "").strip() or description
            answer = self.processor.format_track_answer(boxes)
            text = self.processor.build_prompt(
                RSOT, len(frames), expression=expression, answer=answer, paraphrase=None, rng=rng
            )
        else:
            answer = description
            text = self.processor.build_prompt(
                VIDEO_REG, len(frames), box=boxes[0], answer=answer, paraphrase=None, rng=rng
            )
        return Example(task, frames, text, [answer], crop)

    def grounding_example(
        self, record: dict[str, Any], rng: random.Random, image_size: tuple[int, int] | None = None
    ) -> Example:
        """RefCOCO-style `{image, box (normalized), expression}` as REC (box answer) or REG (expression answer).

        With `grounding_context` (and the image's `image_size`), the image is cropped around the box with a
        context factor drawn from that range and the box is given in the crop. Words of place in an expression
        ("on the left") then still describe the whole image: use it with expressions of looks only.
        """
        box, expression = record["box"], str(record.get("expression") or "").strip()
        if not expression:
            raise ValueError("empty expression")
        crop = None
        if self.grounding_context is not None:
            crop = self._crop_around(box, image_size, self.grounding_context, rng)
            box = box_in_crop(box, crop)
        if rng.random() < 0.5:
            task, answer = REC, format_box(box)
            text = self.processor.build_prompt(REC, 1, expression=expression, answer=answer, paraphrase=None, rng=rng)
        else:
            task, answer = REG, expression
            text = self.processor.build_prompt(REG, 1, box=box, answer=answer, paraphrase=None, rng=rng)
        return Example(task, [record["image"]], text, [answer], crop)

    @staticmethod
    def _crop_around(
        box: Sequence[float],
        size: tuple[int, int] | None,
        context: tuple[float, float],
        rng: random.Random,
        place: tuple[float, float] = ANYWHERE,
    ) -> tuple[float, float, float, float]:
        """A `target_crop` around `box` with a context factor drawn from the range and the box placed in the
        `place` range of the crop's free positions on each axis; needs the frame's `(w, h)`."""
        if not size or min(size) <= 0:
            raise ValueError("cropping around the target needs the frame size to place the crop")
        return target_crop(box, size, rng.uniform(*context), rng, place)

    def video_qa_example(self, record: dict[str, Any], rng: random.Random) -> Example:
        """`{frames, conversations: [{from: human|gpt, value}, ...]}` (LLaVA style); loss on every answer turn."""
        frames = list(record["frames"])
        if len(frames) > self.max_frames:  # uniform coverage of the video, as for inference on QA
            step = len(frames) / self.max_frames
            frames = [frames[int(i * step)] for i in range(self.max_frames)]
        messages, answers = [], []
        for turn in record["conversations"]:
            value = str(turn["value"]).replace("<image>", "").replace("<video>", "").strip()
            if turn["from"] in ("human", "user"):
                content = [{"type": "text", "text": value}]
                if not messages:
                    content = [{"type": "image"} for _ in frames] + content
                messages.append({"role": "user", "content": content})
            else:
                messages.append({"role": "assistant", "content": [{"type": "text", "text": value}]})
                answers.append(value)
        if not answers or not messages or messages[0]["role"] != "user":
            raise ValueError("a VideoQA record needs a question first and at least one answer")
        text = self.processor.apply_chat_template(messages, tokenize=False)
        return Example(VIDEO_QA, frames, text, answers)

    def encode(self, example: Example, images: Sequence[PIL.Image.Image]) -> dict[str, Any]:
        """Tokenize with image tokens expanded and labels only on the answers (their `</s>` included)."""
        processor = self.processor
        if processor.prompt_format == RELEASED:  # a released-format fine-tune
            input_ids, labels = processor.encode_with_labels(example.text)
            return self._finish(example, images, input_ids, labels)
        text = processor.expand_image_tokens(example.text)
        spans, cursor = [], 0
        for _ in example.answers:
            start = text.index(ASSISTANT_TAG, cursor) + len(ASSISTANT_TAG)
            end = text.index(END_OF_ANSWER, start) + len(END_OF_ANSWER)
            spans.append((start, end))
            cursor = end
        # the same ids as `processor.tokenize` gives (user text stays text), with each id's place in `text`
        input_ids, offsets = encode_marked(processor.tokenizer, text, offsets=True)
        labels = [
            token if any(s < token_end and token_start < e for s, e in spans) and token_end > token_start else -100
            for token, (token_start, token_end) in zip(input_ids, offsets)
        ]
        return self._finish(example, images, input_ids, labels)

    def _finish(
        self, example: Example, images: Sequence[PIL.Image.Image], input_ids: list[int], labels: list[int]
    ) -> dict[str, Any]:
        processor = self.processor
        if self.max_length is not None and len(input_ids) > self.max_length:
            raise SampleTooLong(f"{len(input_ids)} tokens > max_length {self.max_length}")
        pixel_values = processor.image_processor(list(images))["pixel_values"]
        return {
            "input_ids": torch.tensor(input_ids, dtype=torch.long),
            "labels": torch.tensor(labels, dtype=torch.long),
            "pixel_values": pixel_values,
            "task": example.task,
        }
