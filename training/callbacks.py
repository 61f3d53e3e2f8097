"""Trainer callbacks: a one-line progress log with throughput, per-epoch resampling, and skip counts on save."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import torch
from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments

from elysium.utils.atomic import write_json_atomic

from .records import SkipCounts

logger = logging.getLogger("elysium.training")
SKIP_COUNTS_FILE = "data_skip_counts.json"


class ThroughputMeter:
    """Tokens and frames this process has trained on since the last read; the trainer adds, the log reads."""

    def __init__(self) -> None:
        self.tokens = 0
        self.frames = 0
        self.since = time.perf_counter()

    def add(self, inputs: dict[str, Any]) -> None:
        mask = inputs.get("attention_mask")
        self.tokens += int(mask.sum()) if mask is not None else int(inputs["input_ids"].numel())
        pixel_values = inputs.get("pixel_values")
        self.frames += int(pixel_values.shape[0]) if pixel_values is not None else 0

    def read(self) -> tuple[int, int, float]:
        """(tokens, frames, seconds) since the previous read, then restart the window."""
        now = time.perf_counter()
        result = (self.tokens, self.frames, max(now - self.since, 1e-9))
        self.tokens, self.frames, self.since = 0, 0, now
        return result


class ProgressLineCallback(TrainerCallback):
    """One readable line per log step on the main process: loss, learning rate, tokens/s and frames/s."""

    def on_log(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, logs=None, **kwargs):
        if not state.is_world_process_zero or not logs or "loss" not in logs:
            return
        logger.info(
            "step %d/%d | loss %.4f | lr %.3g | %.0f tokens/s | %.1f frames/s",
            state.global_step,
            state.max_steps,
            logs["loss"],
            logs.get("learning_rate", float("nan")),
            logs.get("tokens_per_second", float("nan")),
            logs.get("frames_per_second", float("nan")),
        )


class EpochCallback(TrainerCallback):
    """Tells the dataset the epoch so every epoch draws new clips, tasks and paraphrases (deterministically)."""

    def __init__(self, dataset: Any):
        self.dataset = dataset
        self.epoch: int | None = None

    def on_epoch_begin(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs):
        epoch = int(state.epoch + 1e-6) if state.epoch else 0
        if self.epoch is not None:
            # A stream (max_steps, no length) that ran out starts its next pass with `state.epoch` still below the
            # next integer: count passes so every one reshuffles and draws anew.
            epoch = max(epoch, self.epoch + 1)
        self.epoch = epoch
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(epoch)


def gather_counts(counts: SkipCounts) -> dict[str, int]:
    """Sum of every rank's runtime skip counts (collective: call on all ranks)."""
    local = counts.as_dict()
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return local
    gathered: list[dict[str, int] | None] = [None] * torch.distributed.get_world_size()
    torch.distributed.all_gather_object(gathered, local)
    total: dict[str, int] = {}
    for part in gathered:
        for key, value in (part or {}).items():
            total[key] = total.get(key, 0) + value
    return dict(sorted(total.items()))


class SkipCountsCallback(TrainerCallback):
    """Writes `data_skip_counts.json` (validation + runtime skips, by reason) into each checkpoint and the output
    folder, atomically, so a crash never leaves half a file.

    With a streaming dataset validation happens as the stream is read: the counts are those of the records read
    so far (rank 0 reads the whole stream, so its counts stand for all ranks), flagged `validation_so_far`."""

    def __init__(self, validation: SkipCounts, runtime: SkipCounts, validation_so_far: bool = False):
        self.validation, self.runtime = validation, runtime
        self.validation_so_far = validation_so_far  # streaming: counts of the records read so far (this rank's)

    def write(self, args: TrainingArguments, state: TrainerState, folder: Path | None = None) -> None:
        runtime = gather_counts(self.runtime)
        if not state.is_world_process_zero:
            return
        data = {
            "global_step": state.global_step,
            "validation": self.validation.as_dict(),
            "runtime": runtime,
            "skipped": self.validation.skipped + sum(v for k, v in runtime.items() if k != "used"),
        }
        if self.validation_so_far:
            data["validation_so_far"] = True  # a stream is validated as it is read: not the whole file yet
        output = Path(args.output_dir)
        write_json_atomic(output / SKIP_COUNTS_FILE, data, sort_keys=True)
        if folder is not None and folder.is_dir():
            write_json_atomic(folder / SKIP_COUNTS_FILE, data, sort_keys=True)

    def on_save(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs):
        self.write(args, state, Path(args.output_dir) / f"checkpoint-{state.global_step}")

    def on_train_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs):
        self.write(args, state)
