"""Supervised fine-tuning of Elysium: `accelerate launch training/sft.py --config training/configs/NAME.yaml`, or
`elysium train --config ...` (training/train_cli.py: in this process, or through `accelerate launch`).

TRL's `SFTTrainer` drives the loop (its fused LM head computes the loss without materializing logits, here on the
labelled positions only: `score_labelled_positions_only`), but TRL 1.16 has no video, packing or padding-free
support for vision models, so the dataset is ours (already tokenized: `skip_prepare_dataset`), the columns stay
(`remove_unused_columns=False`) and the collator is ours.
Re-running the same command resumes from the last checkpoint in `output_dir` (weights, optimizer, scheduler,
data position and RNG states; the data is a pure function of (seed, epoch, index), so it continues exactly); a
damaged last checkpoint (a truncated file) is set aside with a warning and the one before it resumed.
With `data.streaming: true` the track records are read as a stream (`max_steps` required); on resume Trainer
re-reads the stream and skips the batches already trained on, which gives the same samples again.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import logging
import math
import os
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import trl.trainer.utils as trl_utils
from accelerate import PartialState
from transformers import TrainerCallback
from trl import SFTConfig, SFTTrainer

from elysium.hub.export import make_hub_ready
from elysium.synthetic import SynthConfig, make_squares, square_sets, synthesize
from elysium.training.callbacks import (
    EpochCallback,
    ProgressLineCallback,
    SkipCountsCallback,
    ThroughputMeter,
)
from elysium.training.checkpoints import resumable_checkpoint, set_aside
from elysium.training.collator import ElysiumCollator
from elysium.training.config import DEFAULT_OUTPUT_DIR, DataArgs, TrainConfig, load_config, stage_configs
from elysium.training.dataset_builder import build_train_dataset, clip_frames, context_range, grounding_specs
from elysium.training.decay_on_loss import DecayOnLoss, DecayOnLossSchedule
from elysium.training.distributed import check_launch, check_world_size
from elysium.training.model_setup import build_model_and_processor, count_parameters, set_trainable
from elysium.training.records import SkipCounts

logger = logging.getLogger("elysium.training")

# What every Elysium run needs from SFTConfig, whatever the YAML says.
REQUIRED_ARGS = {"remove_unused_columns": False, "dataset_kwargs": {"skip_prepare_dataset": True}}
DEFAULT_ARGS = {"report_to": "none", "max_length": None, "save_only_model": False}


class ElysiumSFTTrainer(SFTTrainer):
    """SFTTrainer that measures tokens and frames per second and adds them to every log, can scale the learning
    rate of named modules (`lr_scale`, e.g. `{"vision_tower": 0.1}`) and can hold the rate until the loss has
    fallen (`decay_on_loss`, training/decay_on_loss.py: its scheduler and callback)."""

    def __init__(
        self,
        *args: Any,
        meter: ThroughputMeter | None = None,
        lr_scale: dict[str, float] | None = None,
        decay_on_loss: DecayOnLossSchedule | None = None,
        **kwargs: Any,
    ):
        self.lr_scale = {str(k): float(v) for k, v in (lr_scale or {}).items()}
        self.decay_on_loss = decay_on_loss
        super().__init__(*args, **kwargs)
        self.meter = meter or ThroughputMeter()
        if decay_on_loss is not None:  # the same object sets the rate and, as a callback, starts its decay
            self.add_callback(decay_on_loss)

    def create_scheduler(self, num_training_steps: int, optimizer: torch.optim.Optimizer | None = None):
        if self.decay_on_loss is not None and self.lr_scheduler is None:
            self.lr_scheduler = self.decay_on_loss.scheduler(optimizer or self.optimizer)
            self._created_lr_scheduler = True
        return super().create_scheduler(num_training_steps, optimizer)

    def create_optimizer(self, model: torch.nn.Module | None = None) -> torch.optim.Optimizer:
        """Trainer's optimizer with each of its groups split by `lr_scale`: a parameter whose name contains a key
        gets that multiple of the learning rate (the scheduler then scales every group alike). A vision tower
        trained from scratch at the LLM's rate grows activations thousands of times its input, one offset shared
        by every patch, which leaves the LLM nothing to tell the patches apart by (elysium-tiny). Unscaled
        parameters come first: Trainer logs the first group's rate, which should be the run's own."""
        optimizer = super().create_optimizer(model)
        if not self.lr_scale:
            return optimizer
        names = {id(p): n for n, p in (model or self.model).named_parameters()}
        groups = []
        for group in optimizer.param_groups:
            buckets: dict[float, list[torch.nn.Parameter]] = {}
            for param in group["params"]:
                name = names.get(id(param), "")
                scale = next((v for k, v in self.lr_scale.items() if k in name), 1.0)
                buckets.setdefault(scale, []).append(param)
            for scale, params in sorted(buckets.items(), key=lambda item: item[0] != 1.0):
                groups.append({**group, "params": params, "lr": group["lr"] * scale})
        optimizer.param_groups = groups
        return optimizer

    def training_step(self, model: torch.nn.Module, inputs: dict[str, Any], *args: Any, **kwargs: Any):
        self.meter.add(inputs)
        return super().training_step(model, inputs, *args, **kwargs)

    def compute_loss(self, model: torch.nn.Module, inputs: dict[str, Any], *args: Any, **kwargs: Any):
        with score_labelled_positions_only():
            return super().compute_loss(model, inputs, *args, **kwargs)

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        if "loss" in logs:  # training logs only; all ranks log, so the reduction is collective
            tokens, frames, seconds = self.meter.read()
            totals = self.accelerator.reduce(
                torch.tensor([tokens, frames], dtype=torch.float64, device=self.args.device), "sum"
            )
            logs["tokens_per_second"] = round(float(totals[0]) / seconds, 1)
            logs["frames_per_second"] = round(float(totals[1]) / seconds, 2)
        super().log(logs, start_time)


@contextlib.contextmanager
def score_labelled_positions_only():
    """Have TRL's fused LM head score only the positions that carry a label on CPU, as it does on CUDA/XPU. Elsewhere
    it scores every position (so that a compiled tile keeps one shape on Neuron), and an Elysium sequence is mostly
    image tokens, which never carry one: on CPU that was a fifth of a tiny model's step
    (benchmarks/lm_head_positions.py). The loss and gradients are the same either way (tests/test_sft_loss.py).
    TRL has no option for it, so this wraps the one check it makes (`compact = _use_triton(device)`, TRL 1.16); a
    TRL without that check keeps its own path."""
    check = getattr(trl_utils, "_use_triton", None)
    if check is None:
        yield
        return
    trl_utils._use_triton = lambda device: check(device) or device.type == "cpu"
    try:
        yield
    finally:
        trl_utils._use_triton = check


def prepare_synthetic(data: DataArgs) -> DataArgs:
    """For `data.synthetic`, generate the synthetic set (`synth.synthesize`; main process first, resuming what is
    on disk) and return `data` with `track` (and the `grounding` source of that name) pointing at it.

    Keys: `out_dir`, `videos`, `seed`, `frames_per_video: [MIN, MAX]`, `size: [W, H]`, `sources` (which of
    `track` and `grounding` (first-frame REC/REG images) to train on; default `[track]`) and any other
    `SynthConfig` field (`photos`, `objects_per_video`, `tracks_per_video`, `min_track_frames`, ...).
    `data.squares` (`synthetic/squares.py`) makes position-only square images and adds them as grounding sources.
    """
    sets = square_sets(data.squares)
    if sets:  # position-only squares (synthetic/squares.py), each a grounding source of its own name
        state = PartialState()
        with state.main_process_first():
            if state.is_main_process:
                for one in sets:
                    make_squares(
                        one["out_dir"],
                        int(one["images"]),
                        int(one["seed"]),
                        str(one["background"]),
                        count=tuple(one["count"]),
                    )
        made = [
            {
                "file": str(Path(one["out_dir"]) / "grounding.jsonl"),
                "image_root": str(one["out_dir"]),
                "name": one["name"],
            }
            for one in sets
        ]
        files = {spec["file"] for spec in made}
        kept = [spec for spec in grounding_specs(data) if spec["file"] not in files]
        data = dataclasses.replace(data, grounding=kept + made)
    spec = dict(data.synthetic or {})
    if not spec:
        return data
    out_dir = Path(spec.pop("out_dir", "runs/synthetic-data"))
    videos, seed = int(spec.pop("videos", 32)), int(spec.pop("seed", 0))
    frames_per_video, size = tuple(spec.pop("frames_per_video", (24, 48))), tuple(spec.pop("size", (160, 120)))
    sources = list(spec.pop("sources", ["track"]))
    if not sources or set(sources) - {"track", "grounding"}:
        raise ValueError(f"data.synthetic.sources {sources}: choose from track, grounding")
    fields = {f.name for f in dataclasses.fields(SynthConfig)} - {"size", "frames_per_video"}
    if set(spec) - fields:
        unknown, known = ", ".join(sorted(set(spec) - fields)), ", ".join(sorted(fields))
        raise ValueError(
            f"data.synthetic: unknown keys {unknown}; besides out_dir, videos, seed, "
            f"frames_per_video, size and sources, use SynthConfig fields: {known}"
        )
    config = SynthConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in spec.items()})
    state = PartialState()
    with state.main_process_first():
        if state.is_main_process:
            synthesize(out_dir, videos, seed, frames_per_video, size, config=config, progress=False)
    if "track" in sources:  # records name frames `frames/<vid>/000000.jpg`
        data = dataclasses.replace(data, track=[str(out_dir / "annotations.jsonl")], frames_root=str(out_dir))
    if "grounding" in sources:  # beside any grounding sources the config names (another `name` each)
        generated = {"file": str(out_dir / "grounding.jsonl"), "image_root": str(out_dir), "name": "grounding"}
        others = [spec for spec in grounding_specs(data) if spec.get("file") != generated["file"]]
        data = dataclasses.replace(data, grounding=[*others, generated])
    return data


def save_final(trainer: SFTTrainer, output_dir: Path) -> None:
    """Full Elysium weights + processor in `output_dir` (LoRA merged), Hub-ready: `AutoModel.from_pretrained(dir,
    trust_remote_code=True)` loads it even where this package is not installed.

    Written to a sibling folder renamed into place when complete: `output_dir` is whole or absent, so a recipe
    of stages can take an existing `final/` as a finished stage."""
    accelerator = trainer.accelerator
    partial = output_dir.with_name(f".{output_dir.name}.partial")
    if accelerator.is_main_process:
        shutil.rmtree(partial, ignore_errors=True)
    accelerator.wait_for_everyone()
    model = accelerator.unwrap_model(trainer.model)
    if hasattr(model, "merge_and_unload"):  # PEFT: one folder an inference user can load without peft
        merged = model.merge_and_unload()
        if accelerator.is_main_process:
            merged.save_pretrained(partial)
    else:
        trainer.save_model(str(partial))  # gathers ZeRO-3 / FSDP shards, calls save_pretrained
    if accelerator.is_main_process:
        trainer.processing_class.save_pretrained(partial)
        # Code files + auto_map: the folder loads with trust_remote_code where elysium is not installed.
        make_hub_ready(partial, accelerator.unwrap_model(trainer.model).config, trainer.processing_class)
        shutil.rmtree(output_dir, ignore_errors=True)
        os.replace(partial, output_dir)
    accelerator.wait_for_everyone()


def resume_from(trainer: SFTTrainer, output_dir: Path) -> str | None:
    """The newest whole checkpoint in `output_dir` (None: start afresh). Newer damaged ones (a job killed while it
    saved) are reported, with why, and renamed `damaged-checkpoint-N` by the main process, out of Trainer's way."""
    accelerator = trainer.accelerator
    last, rejected = resumable_checkpoint(output_dir)  # every rank reads the same files, so decides alike
    accelerator.wait_for_everyone()  # all have read before any folder moves
    for folder, problem in rejected:
        if accelerator.is_main_process:
            moved = set_aside(folder)
            logger.warning("%s rejected: %s; moved to %s", folder.name, problem, moved.name)
    if rejected:
        accelerator.wait_for_everyone()
        if accelerator.is_main_process:
            logger.warning("resuming from %s, the newest whole checkpoint", last.name)
    elif last is not None:
        logger.info("resuming from %s", last)
    return str(last) if last is not None else None


def check_streaming_args(args: SFTConfig) -> None:
    """A stream has no length: `max_steps` sets the run's length. Its skip counts live in the process that reads
    it, so it is read in the training process (`dataloader_num_workers: 0`; one JSONL is one shard, which
    `datasets` would hand to a single worker anyway), and by every rank for itself (`dispatch_batches: false`)."""
    if args.max_steps is None or args.max_steps <= 0:
        raise ValueError(
            "data.streaming needs training.max_steps > 0: a stream has no length, so the number of steps "
            f"cannot come from num_train_epochs (got max_steps={args.max_steps})"
        )
    if args.accelerator_config.dispatch_batches:
        logger.warning("data.streaming: accelerator_config.dispatch_batches -> false (each rank reads its own records)")
    # Each rank reads its own share of the stream (`StreamingTrackDataset.as_hf_dataset`), rather than rank 0 reading
    # every batch and sending the others theirs (accelerate's default for iterable datasets).
    args.accelerator_config.dispatch_batches = False
    if args.dataloader_num_workers:
        logger.warning(
            "data.streaming: dataloader_num_workers %d -> 0 (the stream and its skip counts are read in the "
            "training process)",
            args.dataloader_num_workers,
        )
        args.dataloader_num_workers = 0
        args.dataloader_persistent_workers = False
        args.dataloader_prefetch_factor = None


def train(config: TrainConfig, callbacks: Sequence[TrainerCallback] = ()) -> ElysiumSFTTrainer | None:
    """Train every stage of `config` in order (one, unless it has `stages`), resuming where a run was cut off:
    a stage whose `final/` exists is done and skipped. Returns the last trained stage's trainer (None when all
    were done already)."""
    stages = stage_configs(config)
    trainer = None
    for number, (name, stage) in enumerate(stages, 1):
        final = Path(stage.training.get("output_dir", DEFAULT_OUTPUT_DIR)) / "final"
        if len(stages) > 1 and (final / "config.json").is_file():
            logger.info("stage %d/%d %s: done already (%s), skipping", number, len(stages), name, final)
            continue
        if len(stages) > 1:
            logger.info("stage %d/%d %s -> %s", number, len(stages), name, final)
        trainer = train_stage(stage, callbacks)
    return trainer


def train_stage(config: TrainConfig, callbacks: Sequence[TrainerCallback] = ()) -> ElysiumSFTTrainer:
    """Build everything from a one-stage `config`, train (resuming if possible), save `final/`."""
    # The distributed setup first (SFTConfig makes accelerate's state): the data preparation below runs on the main
    # process only, and the streaming reader splits the records by rank.
    args = SFTConfig(**{**DEFAULT_ARGS, **check_launch(config.training), **REQUIRED_ARGS})
    check_world_size(args.world_size)
    if args.world_size > 1 and args.process_index == 0:
        logger.info("%d ranks, %s", args.world_size, args.distributed_state.distributed_type)
    data = prepare_synthetic(config.data)
    model, processor = build_model_and_processor(config.model)
    track_context = context_range(data, "track_context")
    if track_context is not None:  # the tracker crops clips as training did: the range's geometric middle
        model.config.track_search_context = round(math.sqrt(track_context[0] * track_context[1]), 3)
    if data.track:  # the tracker's clips as long as training's longest (its default clip length)
        model.config.track_clip_len = clip_frames(data)[1]
    if args.gradient_checkpointing:
        args.gradient_checkpointing_kwargs = args.gradient_checkpointing_kwargs or {"use_reentrant": False}
    model = set_trainable(model, config.stage, config.lora)
    trainable, total = count_parameters(model)
    logger.info("stage %s: training %d of %d parameters", config.stage, trainable, total)

    streaming = data.streaming
    if streaming:
        check_streaming_args(args)
    validation, runtime = SkipCounts(), SkipCounts()
    dataset = build_train_dataset(data, processor, args.seed, validation, runtime)
    collator = ElysiumCollator(processor.tokenizer.pad_token_id, padding_free=data.padding_free)
    skip_counts = SkipCountsCallback(validation, runtime, validation_so_far=streaming)
    rule = DecayOnLoss.from_config(config.decay_on_loss, args.max_steps, args.logging_steps)
    schedule = DecayOnLossSchedule(rule, args.get_warmup_steps(args.max_steps), args.max_steps) if rule else None
    if schedule is not None:
        logger.info(
            "decay_on_loss: the rate holds until the loss is below %.3g (lr_scheduler_type %s not used)",
            rule.below,
            config.training.get("lr_scheduler_type", "linear"),  # as written (args holds an enum)
        )
    trainer = ElysiumSFTTrainer(
        model=model,
        args=args,
        train_dataset=dataset.as_hf_dataset(),
        data_collator=collator,
        processing_class=processor,
        callbacks=[EpochCallback(dataset), skip_counts, ProgressLineCallback(), *callbacks],
        lr_scale=config.model.lr_scale,
        decay_on_loss=schedule,
    )
    if streaming:  # SFTTrainer read the first sample (a shuffle buffer of records) to inspect it: not trained on
        validation.clear()
        runtime.clear()
    output_dir = Path(args.output_dir)
    last = resume_from(trainer, output_dir)
    trainer.train(resume_from_checkpoint=last)
    save_final(trainer, output_dir / "final")
    return trainer


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0], allow_abbrev=False)
    parser.add_argument("--config", required=True, help="training/configs/NAME.yaml")
    known, overrides = parser.parse_known_args(argv)
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    try:
        config = load_config(known.config, overrides)
        train(config)
    except (FileNotFoundError, ValueError) as error:  # a bad config, path or record set: one line, not a traceback
        logger.debug("training stopped", exc_info=True)
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
