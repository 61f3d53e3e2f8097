"""Supervised fine-tuning of Elysium: `accelerate launch training/sft.py --config training/configs/NAME.yaml`.

TRL's `SFTTrainer` drives the loop (and its fused LM head computes the loss without materializing logits), but
TRL 1.16 has no video, packing or padding-free support for vision models, so the dataset is ours (already
tokenized: `skip_prepare_dataset`), the columns stay (`remove_unused_columns=False`) and the collator is ours.
Re-running the same command resumes from the last checkpoint in `output_dir` (weights, optimizer, scheduler,
data position and RNG states; the data is a pure function of (seed, epoch, index), so it continues exactly).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from accelerate import PartialState
from elysium.training.callbacks import (
    EpochCallback,
    ProgressLineCallback,
    SkipCountsCallback,
    ThroughputMeter,
)
from elysium.training.collator import ElysiumCollator
from elysium.training.config import load_config
from elysium.training.dataset_builder import build_train_dataset
from elysium.training.model_setup import build_model_and_processor, count_parameters, set_trainable
from elysium.training.records import SkipCounts
from elysium.training.synthetic import generate_moving_squares
from transformers import TrainerCallback
from transformers.trainer_utils import get_last_checkpoint
from trl import SFTConfig, SFTTrainer

logger = logging.getLogger("elysium.training")

# What every Elysium run needs from SFTConfig, whatever the YAML says.
REQUIRED_ARGS = {"remove_unused_columns": False, "dataset_kwargs": {"skip_prepare_dataset": True}}
DEFAULT_ARGS = {"report_to": "none", "max_length": None, "save_only_model": False}


class ElysiumSFTTrainer(SFTTrainer):
    """SFTTrainer that measures tokens and frames per second and adds them to every log."""

    def __init__(self, *args: Any, meter: ThroughputMeter | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.meter = meter or ThroughputMeter()

    def training_step(self, model: torch.nn.Module, inputs: dict[str, Any], *args: Any, **kwargs: Any):
        self.meter.add(inputs)
        return super().training_step(model, inputs, *args, **kwargs)

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        if "loss" in logs:  # training logs only; all ranks log, so the reduction is collective
            tokens, frames, seconds = self.meter.read()
            totals = self.accelerator.reduce(
                torch.tensor([tokens, frames], dtype=torch.float64, device=self.args.device), "sum"
            )
            logs["tokens_per_second"] = round(float(totals[0]) / seconds, 1)
            logs["frames_per_second"] = round(float(totals[1]) / seconds, 2)
        super().log(logs, start_time)


def prepare_synthetic(data_cfg: dict[str, Any]) -> None:
    """For `data.synthetic`, generate the moving-squares set once (main process first) and point `track` at it."""
    spec = data_cfg.get("synthetic")
    if not spec:
        return
    out_dir = Path(spec.get("out_dir", "runs/synthetic-data"))
    jsonl = out_dir / "train.jsonl"
    with PartialState().main_process_first():
        if PartialState().is_main_process and not jsonl.exists():
            generate_moving_squares(
                out_dir, int(spec.get("num_videos", 32)), int(spec.get("num_frames", 12)), seed=int(spec.get("seed", 0))
            )
    data_cfg["track"] = [str(jsonl)]
    data_cfg["frames_root"] = str(out_dir / "frames")


def save_final(trainer: SFTTrainer, output_dir: Path) -> None:
    """Full Elysium weights + processor in `output_dir` (LoRA merged), loadable with `AutoModel.from_pretrained`."""
    model = trainer.accelerator.unwrap_model(trainer.model)
    if hasattr(model, "merge_and_unload"):  # PEFT: one folder an inference user can load without peft
        merged = model.merge_and_unload()
        if trainer.accelerator.is_main_process:
            merged.save_pretrained(output_dir)
    else:
        trainer.save_model(str(output_dir))  # gathers ZeRO-3 / FSDP shards, calls save_pretrained
    if trainer.accelerator.is_main_process:
        trainer.processing_class.save_pretrained(output_dir)


def train(config: dict[str, Any], callbacks: Sequence[TrainerCallback] = ()) -> ElysiumSFTTrainer:
    """Build everything from `config` (see `config.load_config`), train (resuming if possible), save `final/`."""
    data_cfg = dict(config["data"])
    prepare_synthetic(data_cfg)
    args = SFTConfig(**{**DEFAULT_ARGS, **config["training"], **REQUIRED_ARGS})
    model, processor = build_model_and_processor(config["model"])
    if args.gradient_checkpointing:
        args.gradient_checkpointing_kwargs = args.gradient_checkpointing_kwargs or {"use_reentrant": False}
    model = set_trainable(model, config["stage"], config.get("lora"))
    trainable, total = count_parameters(model)
    logger.info("stage %s: training %d of %d parameters", config["stage"], trainable, total)

    validation, runtime = SkipCounts(), SkipCounts()
    dataset = build_train_dataset(data_cfg, processor, args.seed, validation, runtime)
    collator = ElysiumCollator(processor.tokenizer.pad_token_id, padding_free=bool(data_cfg.get("padding_free")))
    trainer = ElysiumSFTTrainer(
        model=model,
        args=args,
        train_dataset=dataset.as_hf_dataset(),
        data_collator=collator,
        processing_class=processor,
        callbacks=[EpochCallback(dataset), SkipCountsCallback(validation, runtime), ProgressLineCallback(), *callbacks],
    )
    output_dir = Path(args.output_dir)
    last = get_last_checkpoint(str(output_dir)) if output_dir.is_dir() else None
    if last:
        logger.info("resuming from %s", last)
    trainer.train(resume_from_checkpoint=last)
    save_final(trainer, output_dir / "final")
    return trainer


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0], allow_abbrev=False)
    parser.add_argument("--config", required=True, help="training/configs/NAME.yaml")
    known, overrides = parser.parse_known_args(argv)
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    config = load_config(known.config, overrides)
    train(config)
    return 0


if __name__ == "__main__":
    sys.exit(main())
