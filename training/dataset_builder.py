"""The training dataset a config's `data` section describes: validated sources mixed with their weights."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from accelerate import PartialState

from elysium.processing import ElysiumProcessor
from elysium.processing.crops import ANYWHERE
from elysium.synthetic import square_sets

from .config import DataArgs
from .frames import FrameStore
from .mixture import GroundingSource, MixtureDataset, Source, StreamingTrackDataset, TrackSource, VideoQASource
from .records import SkipCounts, load_track_records, read_jsonl_lenient, usable_track_records
from .samples import SampleBuilder

logger = logging.getLogger("elysium.training")


def _range_option(data: DataArgs, key: str, example: str) -> tuple[float, float] | None:
    """`data.<key>: [LO, HI]` as two floats; None when absent."""
    value = getattr(data, key)
    if value is None:
        return None
    try:
        lo, hi = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"data.{key} {value!r}: give [LO, HI], e.g. {example}") from None
    return lo, hi


def context_range(data: DataArgs, key: str) -> tuple[float, float] | None:
    """`data.grounding_context` / `data.track_context: [LO, HI]`: grounding images / SOT and Video-REG clips are
    cropped around their target, the crop's side LO to HI times the target's longer side
    (`elysium.processing.crops.target_crop`); absent: whole frames."""
    pair = _range_option(data, key, "[1.1, 1.5]")
    if pair is not None and not 1.0 <= pair[0] <= pair[1]:
        raise ValueError(f"data.{key} {getattr(data, key)!r}: need 1 <= LO <= HI (the crop holds the whole target)")
    return pair


def place_range(data: DataArgs) -> tuple[float, float]:
    """`data.track_place: [LO, HI]`: where a cropped clip's first box lies in its crop, on each axis, from 0 (at
    one edge) through 0.5 (centred) to 1 (at the other); default [0, 1], anywhere. A tracker centres each clip on
    its last box, so a narrow range around 0.5 trains on what it will see, off by the tracker's own error."""
    pair = _range_option(data, "track_place", "[0.35, 0.65]")
    if pair is None:
        return ANYWHERE
    if not 0.0 <= pair[0] <= pair[1] <= 1.0:
        raise ValueError(f"data.track_place {data.track_place!r}: need 0 <= LO <= HI <= 1 (0.5 centres the box)")
    return pair


def box_jitter(data: DataArgs) -> float:
    """`data.track_box_jitter: S`: SOT prompts give the first box off by N(0, S) of its size and the clip is
    cropped around it, the answer keeping the true boxes (`samples.jittered_box`); default 0, the true box."""
    value = data.track_box_jitter
    problem = f"data.track_box_jitter {value!r}: give a fraction of the box's size in [0, 1], e.g. 0.2"
    try:
        jitter = float(value)
    except (TypeError, ValueError):
        raise ValueError(problem) from None
    if not 0.0 <= jitter <= 1.0:
        raise ValueError(problem)
    return jitter


def clip_frames(data: DataArgs) -> tuple[int, int]:
    """`data.min_frames` / `data.max_frames`: the frames of a training clip (default 2-8, the paper's)."""
    return data.min_frames, data.max_frames


def grounding_specs(data: DataArgs) -> list[dict[str, Any]]:
    """`data.grounding`: one `{file, image_root}` or a list of them (e.g. a position-only set beside the generated
    images). Each is a source of its own, named by its `name` (default `grounding`): the key `data.weights` weighs
    it by."""
    value = data.grounding
    if not value:
        return []
    specs = [value] if isinstance(value, dict) else value
    if not isinstance(specs, list) or not all(isinstance(spec, dict) and spec.get("file") for spec in specs):
        raise ValueError(
            f"data.grounding {value!r}: give {{file, image_root}} or a list of them, each with a distinct `name`"
        )
    names = [str(spec.get("name", "grounding")) for spec in specs]
    clashes = sorted({name for name in names if names.count(name) > 1} | ({"track", "video_qa"} & set(names)))
    if clashes:
        raise ValueError(
            f"data.grounding: source name(s) {', '.join(clashes)} repeat or clash with another source; give each "
            "grounding source its own `name` (data.weights weighs sources by name)"
        )
    return specs


def check_data(data: DataArgs) -> None:
    """The checks of `data`'s values that need more than their types (ValueError naming the key), run when a
    config is loaded so that a bad value fails before anything is built."""
    context_range(data, "grounding_context")
    context_range(data, "track_context")
    place_range(data)
    box_jitter(data)
    grounding_specs(data)
    square_sets(data.squares)


def build_sample_builder(data: DataArgs, processor: ElysiumProcessor) -> SampleBuilder:
    min_frames, max_frames = clip_frames(data)
    return SampleBuilder(
        processor,
        task_weights=dict(data.task_weights) or {"sot": 1.0, "rsot": 1.0, "video_reg": 1.0},
        min_frames=min_frames,
        max_frames=max_frames,
        max_stride=data.max_stride,
        max_length=data.max_length,
        grounding_context=context_range(data, "grounding_context"),
        track_context=context_range(data, "track_context"),
        track_place=place_range(data),
        track_box_jitter=box_jitter(data),
    )


def build_streaming_train_dataset(
    data: DataArgs, processor: ElysiumProcessor, seed: int, validation: SkipCounts, runtime: SkipCounts
) -> StreamingTrackDataset:
    """`data.streaming: true`: the `track` files read as a stream (no index, no Arrow cache), shuffled through a
    buffer of `shuffle_buffer` records (default 1000; the same order on every rank) and split across ranks, each
    reading only its own records (`StreamingTrackDataset`).

    `validation` fills as the stream is read (every rank reads, and counts, the whole stream; each keeps its
    share of the usable records); `runtime` as samples are built.
    """
    others = [key for key in ("grounding", "video_qa") if getattr(data, key)]
    if others:
        raise ValueError(
            f"data.streaming supports track sources only; got {', '.join(others)} too. Mixing sources is "
            "map-style only for now: drop data.streaming, or drop the other sources."
        )
    track_files = data.track
    if not track_files:
        raise ValueError("data.streaming: give the track files (data.track)")
    frames_root = data.frames_root
    records = usable_track_records(load_track_records(track_files, frames_root=frames_root, streaming=True), validation)
    shuffle_buffer = data.shuffle_buffer or 1000
    world_size = PartialState().num_processes
    logger.info(
        "data: streaming track records from %s (shuffle buffer %s, split across %d rank(s))",
        ", ".join(map(str, track_files)),
        shuffle_buffer,
        world_size,
    )
    return StreamingTrackDataset(
        records,
        FrameStore.from_path(frames_root),
        build_sample_builder(data, processor),
        seed=seed,
        counts=runtime,
        world_size=world_size,
        shuffle_buffer=shuffle_buffer,
    )


def build_train_dataset(
    data: DataArgs, processor: ElysiumProcessor, seed: int, validation: SkipCounts, runtime: SkipCounts
) -> MixtureDataset | StreamingTrackDataset:
    """Sources from `track` (JSONL files + `frames_root`), `grounding` (one or more) and `video_qa`, mixed by
    `weights`.

    `validation` receives the counts of records dropped up front; `runtime` those dropped while training
    (unreadable images, over-long samples). With `streaming: true`, see `build_streaming_train_dataset`.
    """
    if data.streaming:
        return build_streaming_train_dataset(data, processor, seed, validation, runtime)
    sources: list[Source] = []
    track_files = data.track
    if track_files:
        frames_root = data.frames_root
        with PartialState().main_process_first():  # one rank builds the Arrow cache, the others read it
            records = usable_track_records(load_track_records(track_files, frames_root=frames_root), validation)
        sources.append(TrackSource(records, FrameStore.from_path(frames_root)))
    for spec in grounding_specs(data):
        rows = read_jsonl_lenient(spec["file"], validation)
        sources.append(
            GroundingSource(rows, Path(spec.get("image_root", ".")), name=str(spec.get("name", "grounding")))
        )
    if data.video_qa:
        spec = data.video_qa
        rows = read_jsonl_lenient(spec["file"], validation)
        sources.append(VideoQASource(rows, FrameStore.from_path(spec.get("frames_root"))))
    if not sources:
        raise ValueError("data: give at least one of track, grounding, video_qa")
    weights = [float(data.weights.get(s.name, 1.0)) for s in sources]
    length = data.samples_per_epoch or sum(len(s) for s in sources)
    logger.info(
        "data: %s; skipped up front: %s",
        ", ".join(f"{s.name}={len(s)} (weight {w:g})" for s, w in zip(sources, weights)),
        validation.as_dict(),
    )
    return MixtureDataset(sources, build_sample_builder(data, processor), length, weights, seed=seed, counts=runtime)
