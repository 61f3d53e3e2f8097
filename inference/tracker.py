"""Long-video tracking with Elysium, as the paper evaluates it: clips of `clip_len` frames overlapping by one.

Each clip starts from the previous clip's last predicted box (an SOT prompt); RSOT asks with the expression in the
first clip and continues with SOT prompts from the carried box. Decoding is greedy.

Why it is built this way:
- Every frame is decoded once and goes through the vision tower once, even the frame two clips share: the per-frame
  T-Selector tokens (`get_image_features(...).pooler_output`) are cached and handed to `generate` through
  `mm_encoder_outputs`, which transformers' generate passes to the model's prefill instead of pixel values.
- The new frames of a clip (of all videos in a batch) go through the vision tower as one batch, and several videos
  are tracked in lockstep as one left-padded `generate` batch.
- Frames stream from PyAV (`iter_video`): only the frames of the current clip are held, so long videos fit in memory
  and an annotated video can be written while tracking.
- Generated text is parsed with `processor.post_process_tracking`, which repairs malformed, missing or extra boxes
  frame by frame (carrying the previous box); tracking never stops on bad model output.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from itertools import chain, islice
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from transformers.modeling_outputs import BaseModelOutputWithPooling

from elysium.inference.box_decoder import ConstrainedBoxDecoder, GrammarError
from elysium.inference.tracker_settings import VIEWS, TrackerSettings
from elysium.processing.boxes import check_box, format_track, normalize_box, widen_box
from elysium.processing.crops import Region, box_in_crop, crop_image, pixel_region, square_around
from elysium.processing.prompts import REC, RSOT, SOT, VIDEO_REG
from elysium.processing.video import FrameItem, VideoError, iter_video

__all__ = ["ElysiumTracker", "TrackResult", "TrackedFrame", "VideoSource"]


@dataclass
class TrackedFrame:
    """One frame of a track: source frame index, time in seconds and pixel box `[x1,y1,x2,y2]` of the source."""

    index: int
    time: float
    box: list[float]
    repaired: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "time": round(self.time, 6),
            "box": [round(v, 2) for v in self.box],
            "repaired": self.repaired,
        }


@dataclass
class TrackResult:
    """The track of one video; `num_repaired` counts frames whose box was not read from well-formed model output."""

    frames: list[TrackedFrame]
    frame_size: tuple[int, int]
    fps: float
    task: str
    num_clips: int = 0
    truncated: bool = False
    source: str = ""

    @property
    def num_repaired(self) -> int:
        return sum(frame.repaired for frame in self.frames)

    @property
    def boxes(self) -> list[list[float]]:
        return [frame.box for frame in self.frames]

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "task": self.task,
            "frame_size": list(self.frame_size),
            "fps": self.fps,
            "num_frames": len(self.frames),
            "num_clips": self.num_clips,
            "num_repaired": self.num_repaired,
            "truncated": self.truncated,
            "frames": [frame.to_dict() for frame in self.frames],
        }


@dataclass
class VideoSource:
    """Frames to track, streamed: `items` yields `FrameItem`s; `frame_size` is the source's `(w, h)`.

    Made from a path (`from_path`, decoded by PyAV at the model's input size while streaming) or from frames in
    memory (`from_frames`). `truncated` is read from the reader once the frames have been consumed.
    """

    items: Iterable[FrameItem]
    frame_size: tuple[int, int]
    fps: float
    path: str = ""

    @property
    def truncated(self) -> bool:
        return bool(getattr(self.items, "truncated", False))

    @classmethod
    def from_path(
        cls,
        path: str | Path,
        model_size: tuple[int, int],
        stride: int = 1,
        max_frames: int | None = None,
        keep_original: bool = False,
    ) -> VideoSource:
        reader = iter_video(path, size=model_size, stride=stride, max_frames=max_frames, keep_original=keep_original)
        return cls(reader, tuple(reader.original_size), float(reader.fps), str(path))

    @classmethod
    def from_frames(cls, frames: Sequence[Any], fps: float = 30.0, indices: Sequence[int] | None = None) -> VideoSource:
        """Frames in memory (HxWx3 uint8 arrays or PIL images, source size); the processor resizes them.

        `indices` are the frames' numbers in the source (default 0, 1, ...); times are `index / fps`.
        """
        arrays = [np.asarray(f.convert("RGB")) if hasattr(f, "convert") else np.asarray(f) for f in frames]
        if not arrays:
            raise VideoError("No frames were given; give at least one frame.")
        height, width = arrays[0].shape[:2]
        numbers = list(indices) if indices is not None else list(range(len(arrays)))
        items = [FrameItem(int(n), n / fps, array, array) for n, array in zip(numbers, arrays)]
        return cls(items, (int(width), int(height)), float(fps))


@dataclass
class _Stream:
    """Tracking state of one video in a batch."""

    request: int
    items: Iterator[FrameItem]
    frame_size: tuple[int, int]
    expression: str | None
    name: str
    source: VideoSource
    box: list[float] | None  # the carried box, pixels; None until RSOT finds the object
    first: bool = True
    carry: FrameItem | None = None
    carry_feature: torch.Tensor | None = None
    pending: list[FrameItem] = field(default_factory=list)  # RSOT frames before the object was first found
    refining: bool = False  # RSOT: the first clip asked again as SOT from the box its expression found
    num_clips: int = 0
    done: bool = False


def _full_frame(item: FrameItem) -> np.ndarray:
    """The frame at source size where the reader kept it, else the resized one (a coarser search region)."""
    return item.original if item.original is not None else item.frame


def _within(value: int, low: int, high: int, fallback: int) -> int:
    """`value` moved into `[low, high]` (a shifted square that still holds the box and stays in the frame), or
    `fallback` where no position does."""
    return fallback if low > high else min(max(value, low), high)


class _SearchRegion(NamedTuple):
    """A clip's square of the frame: normalized `crop` (to cut frames of any size), its pixel `size` and the
    pixel `offset` of its top-left corner (to move pixel boxes between the frame and the square). `mirrored`
    views show the square flipped left to right (a test-time view; boxes are flipped back)."""

    crop: Region
    size: tuple[int, int]
    offset: tuple[int, int]
    mirrored: bool = False

    def cut(self, frame: np.ndarray) -> np.ndarray:
        square = crop_image(frame, self.crop)
        return square[:, ::-1] if self.mirrored else square

    def prompt_box(self, box: Sequence[float]) -> list[float]:
        """A normalized frame box in the normalized coordinates of the view."""
        return self._mirror(box_in_crop(box, self.crop), width=1.0)

    def to_region(self, box: Sequence[float]) -> list[float]:
        dx, dy = self.offset
        return self._mirror([box[0] - dx, box[1] - dy, box[2] - dx, box[3] - dy], width=self.size[0])

    def to_frame(self, box: Sequence[float]) -> list[float]:
        x1, y1, x2, y2 = self._mirror(box, width=self.size[0])
        dx, dy = self.offset
        return [x1 + dx, y1 + dy, x2 + dx, y2 + dy]

    def _mirror(self, box: Sequence[float], width: float) -> list[float]:
        """`box` flipped left to right in a view `width` wide (pixels, or 1 for normalized), if the view is."""
        return [width - box[2], box[1], width - box[0], box[3]] if self.mirrored else list(box)


def combine_views(results: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """One answer from the answers of several views of a clip (frame boxes): per frame, the coordinate-wise median
    of the views whose box was read from the model's text (of every view where none was), repaired only if all
    were."""
    if len(results) == 1:
        return results[0]
    boxes, repaired = [], []
    for frame in range(len(results[0]["boxes"])):
        answers = [(r["boxes"][frame], bool(r["repaired"][frame])) for r in results if r["boxes"][frame] is not None]
        if not answers:
            boxes.append(None)
            repaired.append(True)
            continue
        read = [box for box, was_repaired in answers if not was_repaired] or [box for box, _ in answers]
        boxes.append(np.median(np.asarray(read, dtype=np.float64), axis=0).tolist())
        repaired.append(all(was_repaired for _, was_repaired in answers))
    return {**results[0], "boxes": boxes, "repaired": repaired, "num_repaired": sum(repaired)}


class _Setting:
    """A tracker attribute that is one field of its `settings`; setting it replaces the settings (checked again)."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, tracker: Any, owner: type | None = None) -> Any:
        return self if tracker is None else getattr(tracker.settings, self.name)

    def __set__(self, tracker: Any, value: Any) -> None:
        tracker.settings = replace(tracker.settings, **{self.name: value})


class ElysiumTracker:
    """Tracks objects through long videos with an `ElysiumForConditionalGeneration` and its `ElysiumProcessor`.

    `clip_len` (default: the model's `config.track_clip_len`, else 8): frames a clip, consecutive clips sharing one.
    `search_context` (default: the model's `config.track_search_context`): cut each clip to a square this many
    times the target's last box and track in it, as the model was trained; None tracks on whole frames.
    `views` (default: the model's `config.track_views`, else 1): test-time views of each search region (`VIEWS`:
    the square, mirrored, shifted by half a patch, ...) whose answers are combined frame by frame; each view costs
    one more pass of the clip through the vision tower and the LLM.
    `refine_found` (with search regions): RSOT asks its first clip on whole frames, then again as SOT in the square
    around the box it found, and keeps the second answer.
    `box_scale` (default: the model's `config.track_box_scale`, else 1): each box the tracker reports is widened
    by it about its centre (within the frame); the box carried to the next clip, and so the next square and prompt,
    stays as the model answered (widening those made the track drift: docs/elysium-tiny/history.md). A given
    first box is reported as given.
    `decoder`: how tracking answers are decoded: "constrained" (`ConstrainedBoxDecoder`: greedy along the box
    grammar, forced runs and verified guesses fed in chunks, few forward passes; the tokens `generate` gives, as it
    follows the model where the model leaves the format), "strict" (the same, but the grammar is kept there too, so
    answers always parse and nothing is repaired), "generate" (transformers' `generate`, for models that answer in
    another format), or "auto" (constrained where the tokenizer writes boxes in a way the grammar follows, else
    generate; generate where `max_new_tokens` caps answers).

    These are `settings` (a `TrackerSettings`, read from the model's config by `TrackerSettings.from_model_config`);
    the keywords are laid over it (over the model's own where no `settings` is given), and the tracker's
    `clip_len`, `max_new_tokens`, `search_context`, `views` and `box_scale` read and write its fields.

    `stats` accumulates seconds spent decoding frames, preprocessing them, in the vision tower (with T-Selector and
    projector) and in the language model (`generate`), so the cost of each part can be measured.
    """

    clip_len = _Setting()
    max_new_tokens = _Setting()
    search_context = _Setting()
    views = _Setting()
    box_scale = _Setting()

    def __init__(
        self,
        model: Any,
        processor: Any,
        clip_len: int | str | None = None,
        max_new_tokens: int | None = None,
        search_context: float | str | None = "model",
        views: int | str | None = "model",
        refine_found: bool | None = None,
        box_scale: float | str | None = "model",
        decoder: str | None = None,
        *,
        settings: TrackerSettings | None = None,
    ):
        # One path for every way of asking: the keywords are laid over `settings`, else over the model's own
        # (`TrackerSettings.from_model_config`); "model" or None (but search_context=None, whole frames) keep them.
        asked = {
            "clip_len": clip_len,
            "max_new_tokens": max_new_tokens,
            "search_context": search_context,
            "views": views,
            "refine_found": refine_found,
            "box_scale": box_scale,
            "decoder": decoder,
        }
        if settings is None:
            settings = TrackerSettings.from_model_config(model.config, **asked)
        elif isinstance(settings, TrackerSettings):
            settings = settings.with_overrides(**asked)
        else:
            raise TypeError(f"settings must be a TrackerSettings, got {type(settings).__name__}.")
        self.settings = settings
        vision = model.config.vision_config
        self.patch_fraction = vision.patch_size / vision.image_size  # a patch's share of a square's side
        self.model = model
        self.processor = processor
        self.tokenizer = processor.tokenizer
        size = processor.image_processor.size
        self.model_size = (int(size["width"]), int(size["height"]))
        self.stats: dict[str, float] = {}
        self.reset_stats()
        decoder = settings.decoder
        self._box_decoder = None
        if decoder != "generate":
            box_decoder = ConstrainedBoxDecoder(model, processor, strict=decoder == "strict")
            try:  # the grammar of a whole clip's answer, built once here and kept by the decoder for every clip
                box_decoder.grammar(self.clip_len)
            except GrammarError as error:
                if decoder != "auto":
                    message = f"decoder={decoder!r} cannot follow this tokenizer ({error}); use 'generate'."
                    raise ValueError(message) from None
            else:
                self._box_decoder = box_decoder

    @property
    def refine_found(self) -> bool:
        """Whether RSOT asks its first clip again in the square around what it found (only with search regions)."""
        return self.settings.refine_found and self.search_context is not None

    @property
    def decoder(self) -> str:
        """The decoder tracking answers use now: "auto" takes generate where `max_new_tokens` caps the answers."""
        asked = self.settings.decoder
        if self._box_decoder is None or (asked == "auto" and self.max_new_tokens is not None):
            return "generate"
        return asked if asked == "strict" else "constrained"

    @classmethod
    def from_pretrained(
        cls,
        model_path: str | Path | None = None,
        *,
        device: str | None = None,
        trust_remote_code: bool = False,
        **kwargs: Any,
    ) -> ElysiumTracker:
        """A tracker on a saved model folder (None: the packaged `elysium-tiny`); the folder's own code never runs
        unless `trust_remote_code=True`. `kwargs` go to the constructor (clip_len, max_new_tokens, ...)."""
        from elysium.inference.loading import load_model_and_processor

        model, processor = load_model_and_processor(model_path, device, trust_remote_code=trust_remote_code)
        return cls(model, processor, **kwargs)

    # -- bookkeeping ------------------------------------------------------------------------------------------

    def reset_stats(self) -> None:
        self.stats = {"decode_s": 0.0, "preprocess_s": 0.0, "vision_s": 0.0, "llm_s": 0.0, "frames": 0, "clips": 0}
        if getattr(self, "_box_decoder", None) is not None:
            self._box_decoder.reset_stats()

    def _answer_budget(self, num_frames: int) -> int:
        """Tokens a full answer for `num_frames` takes in this tokenizer (widest boxes), plus a little slack."""
        if self.max_new_tokens is not None:
            return int(self.max_new_tokens)
        widest = format_track([[0.99, 0.99, 0.99, 0.99]] * num_frames)
        return len(self.tokenizer(widest, add_special_tokens=False)["input_ids"]) + 4

    @property
    def device(self) -> torch.device:
        return self.model.device

    def _generate(self, prompts: list[str], features: list[torch.Tensor], max_new_tokens: int) -> list[str]:
        """Greedy generation for a left-padded batch of prompts whose frames are already encoded."""
        return self.tokenizer.batch_decode(
            self._generate_ids(prompts, features, max_new_tokens), skip_special_tokens=True
        )

    def _generate_ids(self, prompts: list[str], features: list[torch.Tensor], max_new_tokens: int) -> torch.Tensor:
        """The new tokens of greedy `generate` (padded after `</s>`) for prompts whose frames are already encoded."""
        encoding = self.processor.tokenize(prompts, return_tensors="pt", padding=True, padding_side="left")
        encoding = {k: v.to(self.device) for k, v in encoding.items()}
        kwargs: dict[str, Any] = {}
        if features:
            kwargs["mm_encoder_outputs"] = {"image": BaseModelOutputWithPooling(pooler_output=features)}
        pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.tokenizer.eos_token_id
        start = time.perf_counter()
        with torch.inference_mode():
            output = self.model.generate(
                input_ids=encoding["input_ids"],
                attention_mask=encoding["attention_mask"],
                max_new_tokens=max_new_tokens,
                do_sample=False,
                num_beams=1,
                pad_token_id=pad_id,
                **kwargs,
            )
        self.stats["llm_s"] += time.perf_counter() - start
        return output[:, encoding["input_ids"].shape[1] :]

    def _decode_boxes(
        self,
        prompts: list[str],
        features: list[torch.Tensor],
        num_frames: list[int],
        max_new_tokens: int,
        keys: list[tuple[int, int]] | None = None,
    ) -> list[str]:
        """Tracking answers from the constrained decoder (the texts greedy `generate` gives, unless `strict`);
        `keys` (video, view) let it guess each row's answer from that row's last one."""
        start = time.perf_counter()
        texts, _ = self._box_decoder.decode(prompts, features, num_frames, max_new_tokens, keys)
        self.stats["llm_s"] += time.perf_counter() - start
        return texts

    def _encode_frames(self, frames: list[np.ndarray]) -> list[torch.Tensor]:
        """Frames -> one `(t_selector_tokens, hidden)` tensor each, all through the vision tower as one batch."""
        start = time.perf_counter()
        pixels = self.processor.image_processor(frames)["pixel_values"]
        vision_dtype = self.model.model.vision_tower.dtype
        pixels = pixels.to(self.device, vision_dtype)
        middle = time.perf_counter()
        with torch.inference_mode():
            features = list(self.model.get_image_features(pixel_values=pixels).pooler_output)
        self.stats["preprocess_s"] += middle - start
        self.stats["vision_s"] += time.perf_counter() - middle
        return features

    # -- tracking ---------------------------------------------------------------------------------------------

    def iter_track(
        self,
        sources: Sequence[VideoSource],
        boxes: Sequence[Sequence[float] | None] | None = None,
        expressions: Sequence[str | None] | None = None,
    ) -> Iterator[tuple[int, list[tuple[TrackedFrame, FrameItem]]]]:
        """Track several videos in lockstep; yields `(video number, [(tracked frame, frame item), ...])` per clip.

        Each video gets a pixel `box` of its first frame (SOT) or an `expression` (RSOT). Frames are yielded in
        order, each once, as soon as their box is known, with their `FrameItem` (so callers can draw on originals).
        """
        boxes = list(boxes) if boxes is not None else [None] * len(sources)
        expressions = list(expressions) if expressions is not None else [None] * len(sources)
        if not (len(sources) == len(boxes) == len(expressions)):
            raise ValueError("Give one box or expression per video.")
        streams = []
        for number, (source, box, expression) in enumerate(zip(sources, boxes, expressions)):
            if (box is None) == (expression is None or not str(expression).strip()):
                raise ValueError(f"Video {number}: give exactly one of a box (SOT) or a non-empty expression (RSOT).")
            checked = check_box(box, source.frame_size) if box is not None else None
            name = source.path or f"video {number}"
            streams.append(_Stream(number, iter(source.items), source.frame_size, expression, name, source, checked))
        if self._box_decoder is not None:
            self._box_decoder.forget()  # its guesses from the last videos' answers

        while True:
            active = [s for s in streams if not s.done]
            if not active:
                return
            clips: list[tuple[_Stream, list[FrameItem]]] = []
            for stream in active:
                need = self.clip_len if stream.first else self.clip_len - 1
                start = time.perf_counter()
                new = list(islice(stream.items, need))
                self.stats["decode_s"] += time.perf_counter() - start
                if not new:
                    stream.done = True
                    if stream.first:
                        raise VideoError(
                            f"{stream.name}: no frame decodes, so there is nothing to track (the video is empty, "
                            "truncated or damaged); re-encode it or pass another file."
                        )
                    yield stream.request, self._finish(stream)
                    continue
                clips.append((stream, new))
            if not clips:
                continue
            # Whole frames: only the new frames are encoded (the carried one's tokens are cached). Search regions:
            # the clip's frames, the carried one too, are cut around the stream's last box (in each view) and
            # encoded anew.
            views = [self._search_regions(stream) for stream, _ in clips]
            clip_items = [new if stream.first else [stream.carry, *new] for stream, new in clips]
            to_encode, spans = [], []
            for (_, new), items, regions in zip(clips, clip_items, views):
                if regions is None:
                    spans.append([(len(to_encode), len(new))])
                    to_encode.extend(item.frame for item in new)
                    continue
                spans.append([])
                for region in regions:
                    spans[-1].append((len(to_encode), len(items)))
                    to_encode.extend(region.cut(_full_frame(item)) for item in items)
            features = self._encode_frames(to_encode)
            self.stats["frames"] += sum(len(new) for stream, new in clips if not stream.refining)
            prompts, clip_features, asked, keys = [], [], [], []
            for (stream, _), items, regions, stream_spans in zip(clips, clip_items, views, spans):
                if stream.first and stream.box is not None and len(items) == 1:
                    continue  # a one-frame video with a box: nothing to ask
                for view, (region, (offset, count)) in enumerate(zip(regions or [None], stream_spans)):
                    own = features[offset : offset + count]
                    feats = own if stream.first or region is not None else [stream.carry_feature, *own]
                    if stream.box is None:
                        prompt = self.processor.build_prompt(RSOT, len(items), expression=stream.expression)
                    else:
                        box = normalize_box(stream.box, stream.frame_size)
                        if region is not None:
                            box = region.prompt_box(box)
                        prompt = self.processor.build_prompt(SOT, len(items), box=box)
                    prompts.append(prompt)
                    clip_features.extend(feats)
                    asked.append((stream, items, feats, region))
                    keys.append((id(stream), view))
            texts: list[str] = []
            if prompts:
                budget = max(self._answer_budget(len(items)) for _, items, _, _ in asked)
                if self.decoder != "generate":
                    counts = [len(items) for _, items, _, _ in asked]
                    texts = self._decode_boxes(prompts, clip_features, counts, budget, keys)
                else:
                    texts = self._generate(prompts, clip_features, budget)
                self.stats["clips"] += len({id(stream) for stream, _, _, _ in asked})
            # Answers are read in the pixels of what the model saw (a view or the frame), then moved to the frame,
            # and a stream's views are combined into one answer.
            parsed = (
                self.processor.post_process_tracking(
                    texts,
                    [stream.frame_size if r is None else r.size for stream, _, _, r in asked],
                    num_frames=[len(items) for _, items, _, _ in asked],
                    initial_boxes=[stream.box if r is None else r.to_region(stream.box) for stream, _, _, r in asked],
                )
                if asked
                else []
            )
            by_stream: dict[int, tuple[list[FrameItem], list[torch.Tensor], list[dict[str, Any]]]] = {}
            for result, (stream, items, feats, region) in zip(parsed, asked):
                if region is not None:
                    result["boxes"] = [None if b is None else region.to_frame(b) for b in result["boxes"]]
                by_stream.setdefault(id(stream), (items, feats, []))[2].append(result)  # the first view's features
            answers = {key: (items, feats, combine_views(parts)) for key, (items, feats, parts) in by_stream.items()}
            for stream, new in clips:
                if id(stream) in answers:
                    items, feats, result = answers[id(stream)]
                    yield stream.request, self._advance(stream, items, feats, result)
                else:  # one-frame SOT video
                    stream.carry, stream.carry_feature, stream.first = new[0], None, False
                    yield stream.request, [(TrackedFrame(new[0].index, new[0].timestamp, list(stream.box)), new[0])]

    def square(self, box: Sequence[float], frame_size: tuple[int, int]) -> Region:
        """The normalized square `search_context` times normalized `box` around it, at least a quarter of the
        frame's shorter side (so a box that collapsed still finds its object)."""
        return square_around(box, frame_size, self.search_context, min_side=min(frame_size) / 4)

    def _search_regions(self, stream: _Stream) -> list[_SearchRegion] | None:
        """The views of the square around the stream's last box the next clip is cut to, on whole pixels; None on
        whole frames (no search context, or RSOT before the object is found)."""
        if self.search_context is None or stream.box is None:
            return None
        size = stream.frame_size
        left, top, right, bottom = pixel_region(self.square(normalize_box(stream.box, size), size), size)
        width, height = right - left, bottom - top
        x1, y1, x2, y2 = stream.box
        regions = []
        for shift, mirrored in VIEWS[: self.views]:
            step = round(shift * self.patch_fraction * width)  # the square is cut square, so one step both ways
            x = _within(left + step, max(0, math.ceil(x2) - width), min(math.floor(x1), size[0] - width), left)
            y = _within(top + step, max(0, math.ceil(y2) - height), min(math.floor(y1), size[1] - height), top)
            crop = (x / size[0], y / size[1], (x + width) / size[0], (y + height) / size[1])
            regions.append(_SearchRegion(crop, (width, height), (x, y), mirrored))
        return regions

    def _advance(
        self, stream: _Stream, items: list[FrameItem], feats: list[torch.Tensor], result: dict[str, Any]
    ) -> list[tuple[TrackedFrame, FrameItem]]:
        """Record a clip's answer: emit its new frames and carry its last frame, feature and box to the next clip."""
        stream.num_clips += 1
        boxes, repaired = result["boxes"], result["repaired"]
        if self.refine_found and stream.first and stream.box is None and boxes and boxes[0] is not None:
            # RSOT found the object on whole frames: ask the same clip again as SOT in the square around the
            # found box, whose answer (frame 1's too) is read at the resolution the tracker follows it at.
            stream.box, stream.refining = list(boxes[0]), True
            stream.items = chain(items, stream.items)
            return []
        emitted: list[tuple[TrackedFrame, FrameItem]] = []
        skip = 0 if stream.first else 1  # the overlap frame was emitted with the previous clip
        if boxes and boxes[0] is None:  # RSOT and nothing readable yet: wait for a clip that finds the object
            stream.pending.extend(items[skip:])
        else:
            if stream.pending:
                if not stream.first:  # the overlap frame waited too, but this clip did predict its box
                    overlap = stream.pending.pop()
                found = self._report(stream, boxes[0])
                for item in stream.pending:
                    emitted.append((TrackedFrame(item.index, item.timestamp, list(found), True), item))
                if not stream.first:
                    frame = TrackedFrame(overlap.index, overlap.timestamp, list(found), repaired[0])
                    emitted.append((frame, overlap))
                stream.pending = []
            for position in range(skip, len(items)):
                item = items[position]
                if stream.first and position == 0 and stream.box is not None and not stream.refining:
                    frame = TrackedFrame(item.index, item.timestamp, list(stream.box), False)  # the given box
                else:
                    box = self._report(stream, boxes[position])
                    frame = TrackedFrame(item.index, item.timestamp, box, bool(repaired[position]))
                emitted.append((frame, item))
            stream.box = list(boxes[-1])
        stream.first = stream.refining = False
        stream.carry, stream.carry_feature = items[-1], feats[-1]
        return emitted

    def _report(self, stream: _Stream, box: Sequence[float]) -> list[float]:
        """An answered pixel box as the tracker reports it: widened by `box_scale` (not the box it carries)."""
        return list(box) if self.box_scale == 1.0 else widen_box(box, self.box_scale, stream.frame_size)

    def _finish(self, stream: _Stream) -> list[tuple[TrackedFrame, FrameItem]]:
        """End of a video: frames where RSOT never found the object get the whole frame, marked repaired."""
        width, height = stream.frame_size
        whole = [0.0, 0.0, float(width), float(height)]
        emitted = [(TrackedFrame(item.index, item.timestamp, list(whole), True), item) for item in stream.pending]
        stream.pending = []
        return emitted

    def track_batch(
        self,
        sources: Sequence[VideoSource],
        boxes: Sequence[Sequence[float] | None] | None = None,
        expressions: Sequence[str | None] | None = None,
    ) -> list[TrackResult]:
        """Track several videos as one batch; returns one `TrackResult` per video."""
        frames: list[list[TrackedFrame]] = [[] for _ in sources]
        clip_counts = [0] * len(sources)
        for number, emitted in self.iter_track(sources, boxes, expressions):
            frames[number].extend(frame for frame, _ in emitted)
        expressions = list(expressions) if expressions is not None else [None] * len(sources)
        results = []
        for number, source in enumerate(sources):
            clip_counts[number] = max(1, math.ceil((len(frames[number]) - 1) / (self.clip_len - 1)))
            task = RSOT if expressions[number] is not None else SOT
            results.append(
                TrackResult(
                    frames[number],
                    source.frame_size,
                    source.fps,
                    task,
                    clip_counts[number],
                    source.truncated,
                    source.path,
                )
            )
        return results

    def track(
        self,
        video: str | Path | VideoSource | Sequence[Any],
        box: Sequence[float] | None = None,
        expression: str | None = None,
        stride: int = 1,
        max_frames: int | None = None,
    ) -> TrackResult:
        """Track one video (a path, a `VideoSource` or a list of frames) from a pixel `box` or an `expression`."""
        return self.track_batch([self.source(video, stride, max_frames)], [box], [expression])[0]

    def source(
        self,
        video: str | Path | VideoSource | Sequence[Any],
        stride: int = 1,
        max_frames: int | None = None,
        keep_original: bool = False,
    ) -> VideoSource:
        """A `VideoSource` for a path (decoded at the model's input size), frames in memory, or a source as is."""
        if isinstance(video, VideoSource):
            return video
        if isinstance(video, (str, Path)):  # a search region is cut from the frame at source size
            keep_original = keep_original or self.search_context is not None
            return VideoSource.from_path(video, self.model_size, stride, max_frames, keep_original)
        frames = list(video)
        numbers = list(range(0, len(frames), stride))[:max_frames]
        return VideoSource.from_frames([frames[n] for n in numbers], indices=numbers)

    # -- other tasks ------------------------------------------------------------------------------------------

    def describe(
        self,
        frames: Sequence[Any],
        box: Sequence[float],
        frame_size: tuple[int, int] | None = None,
        max_new_tokens: int = 64,
    ) -> str:
        """Video-REG: what is the object at pixel `box` in the first frame? Uses up to `clip_len` frames, evenly.

        `frame_size` is the source's `(w, h)` when the frames were already resized (e.g. decoded at model size).
        """
        source = VideoSource.from_frames(frames)
        size = tuple(frame_size) if frame_size is not None else source.frame_size
        arrays = [item.frame for item in source.items]
        if len(arrays) > self.clip_len:
            picks = np.linspace(0, len(arrays) - 1, self.clip_len).round().astype(int)
            arrays = [arrays[i] for i in picks]
        box = normalize_box(check_box(box, size), size)
        if self.search_context is not None:  # the frames cut around the first box, as Video-REG trained with it
            region = self.square(box, size)
            arrays = [crop_image(array, region) for array in arrays]
            box = box_in_crop(box, region)
        prompt = self.processor.build_prompt(VIDEO_REG, len(arrays), box=box)
        return self._generate([prompt], self._encode_frames(arrays), max_new_tokens)[0].strip()

    def ground(self, image: Any, expression: str, max_new_tokens: int | None = None) -> list[float] | None:
        """REC: the pixel box of `expression` in `image`, or None when the model gives no well-formed box."""
        if not expression or not expression.strip():
            raise ValueError("The expression is empty; say which object to find.")
        source = VideoSource.from_frames([image])
        array = next(iter(source.items)).frame
        prompt = self.processor.build_prompt(REC, 1, expression=expression)
        budget = max_new_tokens or self._answer_budget(1)
        text = self._generate([prompt], self._encode_frames([array]), budget)[0]
        return self.processor.post_process_grounding(text, source.frame_size)[0]
