"""Does a model read the pixels? Its loss on training samples with their own frames vs with other samples' frames.

A model that answers from the text alone (the prompt's box, the most common colour, where objects usually are)
scores the same either way: a gap near zero. Scores against baselines say *that* a model is weak; this says
*why*, and it is cheap enough to watch while a recipe is tuned. Every sample keeps its text and labels; the
batch's frames are passed on to the next sample (`frames_of_other_samples`), so shapes and token counts match.

    python -m experiments.pixel_reliance --model runs/elysium-tiny/stage1a-one-object/final \\
        --config training/configs/tiny.yaml --stage stage1a-one-object --samples 128
"""

from __future__ import annotations

import argparse
import random
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from elysium.modeling_elysium import ElysiumForConditionalGeneration
from elysium.processing import ElysiumProcessor
from elysium.training.collator import ElysiumCollator
from elysium.training.config import load_config, stage_configs
from elysium.training.dataset_builder import build_train_dataset
from elysium.training.records import SkipCounts
from elysium.utils.atomic import write_json_atomic


@dataclass
class PixelReliance:
    """Mean answer-token losses (nats) with each sample's own frames and with another sample's."""

    loss_own_frames: float
    loss_other_frames: float
    samples: int
    answer_tokens: int

    @property
    def gap(self) -> float:
        """How much worse the answers get without their own frames: ~0 means the pixels are ignored."""
        return self.loss_other_frames - self.loss_own_frames

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "gap": self.gap}


def frames_of_other_samples(pixel_values: torch.Tensor, frames_per_sample: Sequence[int]) -> torch.Tensor:
    """Each sample's frames replaced by the previous sample's (sample 0 takes the last one's), repeated or cut to
    its own count, so no sample keeps any of its frames and the shapes stay."""
    counts = [int(n) for n in frames_per_sample]
    if len(counts) < 2:
        raise ValueError("pixel reliance swaps frames between samples: give batches of at least 2 samples")
    if sum(counts) != pixel_values.shape[0]:
        raise ValueError(f"{pixel_values.shape[0]} frames in the batch but the prompts ask for {sum(counts)}")
    chunks = pixel_values.split(counts)
    return torch.cat([chunks[i - 1][torch.arange(n) % counts[i - 1]] for i, n in enumerate(counts)])


def _answer_loss(model: ElysiumForConditionalGeneration, batch: dict[str, torch.Tensor]) -> tuple[float, int]:
    """The model's summed answer-token loss and the token count (its mean loss times the count), so batches add up."""
    count = int((batch["labels"][:, 1:] != -100).sum())
    return float(model(**batch).loss) * count, count


@torch.no_grad()
def pixel_reliance(model: ElysiumForConditionalGeneration, batches: Iterable[dict[str, torch.Tensor]]) -> PixelReliance:
    """Losses over padded batches (`input_ids`, `attention_mask`, `labels`, `pixel_values`) of >= 2 samples each."""
    model.eval()
    image_token_id = model.config.image_token_id
    tokens_per_frame = model.config.t_selector_tokens
    own = other = 0.0
    samples = answer_tokens = 0
    for batch in batches:
        batch = {k: batch[k] for k in ("input_ids", "attention_mask", "labels", "pixel_values") if k in batch}
        frames = ((batch["input_ids"] == image_token_id).sum(dim=1) // tokens_per_frame).tolist()
        swapped = {**batch, "pixel_values": frames_of_other_samples(batch["pixel_values"], frames)}
        loss_own, count = _answer_loss(model, batch)
        loss_other, _ = _answer_loss(model, swapped)
        own, other = own + loss_own, other + loss_other
        samples, answer_tokens = samples + len(frames), answer_tokens + count
    if not answer_tokens:
        raise ValueError("no labelled answer tokens in the batches: nothing to measure")
    return PixelReliance(own / answer_tokens, other / answer_tokens, samples, answer_tokens)


def stage_batches(
    config_path: str | Path, stage: str | None, processor: ElysiumProcessor, samples: int, batch_size: int, seed: int
) -> list[dict[str, torch.Tensor]]:
    """`samples` training samples of `stage` (default: the first) of a training config, built with `processor`
    (the model's own, so the prompt is the one it trained on), in padded batches."""
    from elysium.training.sft import prepare_synthetic

    stages = stage_configs(load_config(config_path))
    names = [name for name, _ in stages]
    chosen = stages[0] if stage is None else next((s for s in stages if s[0] == stage), None)
    if chosen is None:
        raise ValueError(f"{config_path} has no stage {stage!r}; its stages: {', '.join(map(str, names))}")
    data = prepare_synthetic(chosen[1].data)
    dataset = build_train_dataset(data, processor, seed, SkipCounts(), SkipCounts())
    order = random.Random(seed).sample(range(len(dataset)), min(samples, len(dataset)))
    collator = ElysiumCollator(processor.tokenizer.pad_token_id)
    items = [dataset[i] for i in order]
    chunks = [items[i : i + batch_size] for i in range(0, len(items), batch_size)]
    return [collator(chunk) for chunk in chunks if len(chunk) > 1]  # a last lone sample has no frames to swap


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True, help="an Elysium folder (weights + processor)")
    parser.add_argument("--config", required=True, help="the training config whose data to sample")
    parser.add_argument("--stage", help="which stage's data (default: the first stage, or the config's data)")
    parser.add_argument("--samples", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--seed", type=int, default=1234, help="which samples (not the training order's seed)")
    parser.add_argument("--out", help="also write the result as JSON here")
    args = parser.parse_args(argv)
    if args.batch_size < 2:
        parser.error("--batch-size must be at least 2 (frames are swapped between samples)")
    model = ElysiumForConditionalGeneration.from_pretrained(args.model)
    processor = ElysiumProcessor.from_pretrained(args.model)
    batches = stage_batches(args.config, args.stage, processor, args.samples, args.batch_size, args.seed)
    result = pixel_reliance(model, tqdm(batches, desc="pixel reliance", unit="batch"))
    print(
        f"{args.model}: answer loss {result.loss_own_frames:.4f} with its own frames, "
        f"{result.loss_other_frames:.4f} with another sample's (gap {result.gap:+.4f} nats/token; "
        f"{result.samples} samples, {result.answer_tokens} answer tokens)"
    )
    if args.out:
        write_json_atomic(args.out, {"model": args.model, "config": args.config, **result.as_dict()})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
