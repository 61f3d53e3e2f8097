"""Weighted mixture of training sources as a map-style dataset whose items depend only on (seed, epoch, index).

Our own sampler rather than `interleave_datasets`: the draw for item `i` is seeded by `(seed, epoch, i)`, so
Trainer's resume (which skips already-seen indices without loading them) continues with exactly the samples an
uninterrupted run would have seen, and a bad record is replaced by another draw instead of crashing the run.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import datasets
import datasets.distributed
import PIL.Image
from torch.utils.data import Dataset, IterableDataset

from elysium.processing.boxes import BoxError
from elysium.processing.crops import crop_image

from .frames import FrameStore
from .records import MALFORMED, UNREADABLE, SkipCounts, box_is_valid
from .samples import Example, SampleBuilder, SampleTooLong

logger = logging.getLogger(__name__)
TOO_LONG = "too_long"


class Source(Protocol):
    """A pool of records that can turn one of them into an `Example` and load its frames."""

    name: str

    def __len__(self) -> int: ...

    def example(self, index: int, builder: SampleBuilder, rng: random.Random) -> Example: ...

    def load_frames(self, example: Example) -> list[PIL.Image.Image]: ...


@dataclass
class TrackSource:
    """ElysiumTrack records (a filtered `datasets.Dataset`) with their frames (SOT / RSOT / Video-REG)."""

    records: datasets.Dataset
    frames: FrameStore
    name: str = "track"
    _sizes: dict[str, tuple[int, int]] = field(default_factory=dict, init=False, repr=False)

    def __len__(self) -> int:
        return len(self.records)

    def example(self, index: int, builder: SampleBuilder, rng: random.Random) -> Example:
        return self.example_of(self.records[index], builder, rng)

    def example_of(self, record: dict[str, Any], builder: SampleBuilder, rng: random.Random) -> Example:
        """The `Example` of one record; with `track_context`, the frame size places the crop (the record's
        `frame_size`, else its first frame's header, read once a video)."""
        if builder.track_context is None:
            return builder.track_example(record, rng)
        frame_size = tuple(record.get("frame_size") or ())
        if len(frame_size) != 2 or min(frame_size) <= 0:
            first = record["frames"][0]
            if first not in self._sizes:
                self._sizes[first] = self.frames.image_size(first)
            frame_size = self._sizes[first]
        return builder.track_example(record, rng, frame_size=frame_size)

    def load_frames(self, example: Example) -> list[PIL.Image.Image]:
        images = [self.frames.open_image(path) for path in example.frames]
        return images if example.crop is None else [crop_image(image, example.crop) for image in images]


@dataclass
class GroundingSource:
    """RefCOCO-style image records `{image, box (normalized), expression}` (REC / REG)."""

    records: list[dict[str, Any]]
    image_root: Path
    name: str = "grounding"
    _sizes: dict[str, tuple[int, int]] = field(default_factory=dict, init=False, repr=False)

    def __len__(self) -> int:
        return len(self.records)

    def example(self, index: int, builder: SampleBuilder, rng: random.Random) -> Example:
        record = self.records[index]
        if not box_is_valid(record.get("box", ())):
            raise BoxError(f"grounding record {index} has an unusable box {record.get('box')!r}")
        if builder.grounding_context is None:
            return builder.grounding_example(record, rng)
        return builder.grounding_example(record, rng, image_size=self._image_size(record["image"]))

    def _image_size(self, name: str) -> tuple[int, int]:
        """`(w, h)` of an image, read from its header once (a crop is placed before the image is loaded)."""
        if name not in self._sizes:
            with PIL.Image.open(self.image_root / name) as image:
                self._sizes[name] = image.size
        return self._sizes[name]

    def load_frames(self, example: Example) -> list[PIL.Image.Image]:
        with PIL.Image.open(self.image_root / example.frames[0]) as image:
            image = image.convert("RGB")
        return [image if example.crop is None else crop_image(image, example.crop)]


@dataclass
class VideoQASource:
    """VideoQA conversations over frame files `{frames, conversations}`."""

    records: list[dict[str, Any]]
    frames: FrameStore
    name: str = "video_qa"

    def __len__(self) -> int:
        return len(self.records)

    def example(self, index: int, builder: SampleBuilder, rng: random.Random) -> Example:
        return builder.video_qa_example(self.records[index], rng)

    def load_frames(self, example: Example) -> list[PIL.Image.Image]:
        return [self.frames.open_image(path) for path in example.frames]


def encode_from(source: Source, index: int, builder: SampleBuilder, rng: random.Random, counts: SkipCounts):
    """One encoded sample from `source[index]`, or None after counting why it could not be used."""
    try:
        example = source.example(index, builder, rng)
    except (KeyError, TypeError, ValueError) as error:  # BoxError is a ValueError
        counts.add(MALFORMED)
        logger.debug("skipping %s[%d]: %s", source.name, index, error)
        return None
    except OSError as error:  # an image whose size places a crop (grounding_context) cannot be read
        counts.add(UNREADABLE)
        logger.debug("skipping %s[%d]: %s", source.name, index, error)
        return None
    try:
        images = source.load_frames(example)
    except (OSError, ValueError) as error:  # missing, truncated or undecodable image files
        counts.add(UNREADABLE)
        logger.debug("skipping %s[%d]: %s", source.name, index, error)
        return None
    try:
        return builder.encode(example, images)
    except SampleTooLong:
        counts.add(TOO_LONG)
        return None


class MixtureDataset(Dataset):
    """`length` samples an epoch, each from a source drawn with `weights`; bad draws retried up to `retries`."""

    def __init__(
        self,
        sources: Sequence[Source],
        builder: SampleBuilder,
        length: int,
        weights: Sequence[float] | None = None,
        seed: int = 0,
        counts: SkipCounts | None = None,
        retries: int = 20,
    ):
        if not sources or any(len(s) == 0 for s in sources):
            raise ValueError("every training source needs at least one usable record")
        self.sources = list(sources)
        self.weights = list(weights) if weights is not None else [1.0] * len(self.sources)
        self.builder, self.length, self.seed, self.retries = builder, length, seed, retries
        self.counts = counts if counts is not None else SkipCounts()
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """New clips, tasks and paraphrases every epoch (called by `EpochCallback`)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict[str, Any]:
        rng = random.Random(f"{self.seed}:{self.epoch}:{index}")
        for _ in range(self.retries):
            source = rng.choices(self.sources, weights=self.weights)[0]
            sample = encode_from(source, rng.randrange(len(source)), self.builder, rng, self.counts)
            if sample is not None:
                return sample
        raise RuntimeError(f"{self.retries} draws in a row were unusable; see the skip counts for why")

    def __call__(self, batch: dict[str, list[int]]) -> dict[str, list[Any]]:
        """The `datasets` transform: a batch of `index` values -> encoded samples as columns."""
        samples = [self[int(i)] for i in batch["index"]]
        return {key: [s[key] for s in samples] for key in samples[0]}

    def as_hf_dataset(self) -> datasets.Dataset:
        """A `datasets.Dataset` of indices that builds samples on access (TRL's SFTTrainer takes only `datasets`)."""
        indices = datasets.Dataset.from_dict({"index": list(range(self.length))})
        indices.set_transform(self)
        return indices


class StreamingTrackDataset(IterableDataset):
    """Samples from a streaming `datasets.IterableDataset` of track records (the full 1.27M without an index).

    The stream is shuffled through a buffer of `shuffle_buffer` records (seeded by `seed` and the epoch: a new order
    every pass, the same on every rank) and, with `world_size` ranks, rank r takes every `world_size`-th record of
    it (`datasets.distributed.split_dataset_by_node`): `as_hf_dataset` has one shard a rank, which accelerate hands
    to its rank (`IterableDataset.shard`), so no rank reads, decodes and drops another's samples. Resume re-reads
    and skips, as Trainer does for iterable datasets.
    """

    def __init__(
        self,
        records: datasets.IterableDataset,
        frames: FrameStore,
        builder: SampleBuilder,
        seed: int = 0,
        counts: SkipCounts | None = None,
        world_size: int = 1,
        shuffle_buffer: int | None = None,
    ):
        self.records, self.frames, self.builder, self.seed = records, frames, builder, seed
        self.counts = counts if counts is not None else SkipCounts()
        self.world_size, self.shuffle_buffer = int(world_size), shuffle_buffer
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def as_hf_dataset(self) -> datasets.IterableDataset:
        """This stream as a `datasets.IterableDataset` (TRL's SFTTrainer rejects a plain torch `IterableDataset`)
        of `world_size` shards, shard r being rank r's records: accelerate gives each rank its shard when the
        batches are not dispatched from rank 0 (`dispatch_batches: false`); read whole, it is the whole stream.

        Every iteration reads `self` afresh, so `set_epoch` (called by `EpochCallback`) takes effect. Samples hold
        tensors; without `features` they pass through unconverted.
        """

        def generate(ranks: list[int]):
            for rank in ranks:
                yield from self.read(rank)

        return datasets.IterableDataset.from_generator(generate, gen_kwargs={"ranks": list(range(self.world_size))})

    def __iter__(self):
        for rank in range(self.world_size):
            yield from self.read(rank)

    def read(self, rank: int = 0):
        """Encoded samples of rank `rank`'s records; a record's draws are seeded by its place in the whole stream."""
        records = self.records
        if self.world_size > 1:  # `datasets` shuffles before it splits; the split is a new dataset at epoch 0
            records = datasets.distributed.split_dataset_by_node(records, rank=rank, world_size=self.world_size)
        if self.shuffle_buffer:
            records = records.shuffle(seed=self.seed, buffer_size=self.shuffle_buffer)
        if hasattr(records, "set_epoch"):
            records.set_epoch(self.epoch)
        source = TrackSource(records=None, frames=self.frames)  # type: ignore[arg-type]
        for position, record in enumerate(records):
            rng = random.Random(f"{self.seed}:{self.epoch}:{position * self.world_size + rank}")
            try:
                example = source.example_of(record, self.builder, rng)
            except (KeyError, TypeError, ValueError):
                self.counts.add(MALFORMED)
                continue
            except OSError:  # the first frame, read for its size (track_context), cannot be read
                self.counts.add(UNREADABLE)
                continue
            try:
                images = source.load_frames(example)
            except (OSError, ValueError):
                self.counts.add(UNREADABLE)
                continue
            try:
                yield self.builder.encode(example, images)
            except SampleTooLong:
                self.counts.add(TOO_LONG)
