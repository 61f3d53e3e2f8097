"""A training step's time with TRL's fused LM head scoring only the labelled positions (what the trainer does,
`training/sft.py`'s `score_labelled_positions_only`) versus every position (TRL's own path off CUDA/XPU), same
model, same batches, one run.

    python benchmarks/lm_head_positions.py [--model models/elysium-tiny] [--stage frames-96] [--image-size N]
        [--batch 8] [--steps 20]

Loads the shipped elysium-tiny (or `--model`), draws batches of SOT / RSOT / Video-REG clips from a small generated
set (`synthetic/`) as the recipe's last stage builds them, and times forward + backward + AdamW step
through `add_fused_lm_head`, the two modes alternating step by step. Most of an Elysium sequence is image tokens,
which never carry a label.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import random
import statistics
import tempfile
import time

import torch

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from trl.trainer.utils import add_fused_lm_head  # noqa: E402

from elysium.modeling_elysium import ElysiumForConditionalGeneration  # noqa: E402
from elysium.processing import ElysiumProcessor  # noqa: E402
from elysium.synthetic import SynthConfig, synthesize  # noqa: E402
from elysium.training.collator import ElysiumCollator  # noqa: E402
from elysium.training.config import DataArgs, load_config, stage_configs  # noqa: E402
from elysium.training.dataset_builder import build_train_dataset  # noqa: E402
from elysium.training.model_setup import resize_frames  # noqa: E402
from elysium.training.records import SkipCounts  # noqa: E402
from elysium.training.sft import score_labelled_positions_only  # noqa: E402

ROOT = os.path.join(os.path.dirname(__file__), "..")
DEFAULT_MODEL = os.path.join(ROOT, "models", "elysium-tiny")
RECIPE = os.path.join(ROOT, "training", "configs", "tiny.yaml")


def batches(processor: ElysiumProcessor, args: argparse.Namespace, folder: str) -> list[dict]:
    """`args.steps` collated batches of `args.batch` samples from the training dataset a stage of the recipe builds
    (`tiny.yaml`'s `args.stage`: its clip lengths, crops and box jitter), on a small generated set."""
    summary = synthesize(folder, 12, 0, (24, 48), (160, 120), config=SynthConfig(photos=False), progress=False)
    stage = dict(stage_configs(load_config(RECIPE)))[args.stage].data
    data = DataArgs(  # the stage's clips, crops and box jitter, on the generated set
        **{k: v for k, v in dataclasses.asdict(stage).items() if k.startswith(("track_", "min_", "max_", "task_"))},
        track=[str(summary.annotations)],
        frames_root=folder,
    )
    dataset = build_train_dataset(data, processor, 0, SkipCounts(), SkipCounts())
    collate, rng = ElysiumCollator(processor.tokenizer.pad_token_id), random.Random(0)
    return [collate([dataset[rng.randrange(len(dataset))] for _ in range(args.batch)]) for _ in range(args.steps)]


def timed_step(model, optimizer, batch: dict, labelled_only: bool) -> float:
    start = time.perf_counter()
    with score_labelled_positions_only() if labelled_only else contextlib.nullcontext():
        loss = model(**batch, fused_lm_head=True).loss
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return time.perf_counter() - start


def step_setup(description: str) -> tuple[argparse.Namespace, torch.nn.Module, torch.optim.Optimizer, list[dict]]:
    """The command line, model, optimizer and batches this script and `cpu_bf16.py` time their steps with."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--stage", default="frames-96", help="the tiny.yaml stage whose clips to draw")
    parser.add_argument(
        "--image-size", type=int, help="take the model to these frames first (e.g. 64 for a 64-px stage)"
    )
    args = parser.parse_args()

    model = ElysiumForConditionalGeneration.from_pretrained(args.model, attn_implementation="sdpa").train()
    processor = ElysiumProcessor.from_pretrained(args.model)
    if args.image_size and args.image_size != model.config.vision_config.image_size:
        resize_frames(model, processor, args.image_size)
    add_fused_lm_head(model, outputs=("log_probs", "entropy", "is_top1"))  # as SFTTrainer does
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-6)
    with tempfile.TemporaryDirectory() as folder:
        data = batches(processor, args, folder)
    return args, model, optimizer, data


def main() -> None:
    args, model, optimizer, data = step_setup(__doc__.split("\n")[0])
    positions = sum(b["labels"][:, 1:].numel() for b in data)
    labelled = sum(int((b["labels"][:, 1:] != -100).sum()) for b in data)
    size = model.config.vision_config.image_size
    tokens = model.config.t_selector_tokens
    print(f"{args.model}, {args.stage}'s clips: {size}x{size} frames, {tokens} tokens a frame, batch {args.batch}")
    print(f"{labelled} of {positions} positions carry a label ({100 * labelled / positions:.1f}%)")
    timed_step(model, optimizer, data[0], False)  # warm-up
    timed_step(model, optimizer, data[0], True)
    times: dict[str, list[float]] = {"every position": [], "labelled only": []}
    for batch in data:  # alternate step by step so load from other processes hits both modes alike
        times["every position"].append(timed_step(model, optimizer, batch, False))
        times["labelled only"].append(timed_step(model, optimizer, batch, True))
    medians = {name: statistics.median(t) for name, t in times.items()}
    for name, median in medians.items():
        print(f"{name:>15}: median step {median * 1e3:.1f} ms, total {sum(times[name]):.2f} s")
    ratio = sum(times["every position"]) / sum(times["labelled only"])
    print(f"labelled only / every position, steps per second: {ratio:.2f}x")


if __name__ == "__main__":
    main()
