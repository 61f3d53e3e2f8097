"""A training step's time in float32 versus bfloat16 autocast on the CPU (what `training.bf16: true` makes the
Trainer do), same model, same batches, one run.

    python benchmarks/cpu_bf16.py [--model models/elysium-tiny] [--stage frames-96] [--image-size N] [--batch 8]
        [--steps 20]

The recipe (`training/configs/tiny.yaml`) trains in float32 on two CPU cores. CPUs with AVX512-BF16 or AMX have
bfloat16 matrix units, which oneDNN uses under autocast; whether they pay off on matrices this small (widths of
96-384) is what this measures. Batches and the step are `lm_head_positions.py`'s, with the trainer's
labelled-positions-only scoring in both modes; the modes alternate step by step. It also prints how far the
bfloat16 loss is from the float32 one on the same batch, since a faster step is only worth a retrain if the
numbers stay close.
"""

from __future__ import annotations

import contextlib
import os
import statistics

import torch
from lm_head_positions import step_setup, timed_step


def bfloat16() -> torch.autocast:
    """The autocast Accelerate enters on the CPU for `mixed_precision: bf16`."""
    return torch.autocast("cpu", dtype=torch.bfloat16)


def main() -> None:
    args, model, optimizer, data = step_setup(__doc__.split("\n")[0])
    flags = set(open("/proc/cpuinfo").read().split()) if os.path.exists("/proc/cpuinfo") else set()
    units = [unit for unit in ("avx512_bf16", "amx_bf16") if unit in flags] or ["no bfloat16 units listed"]
    print(f"CPU: {torch.backends.cpu.get_cpu_capability()}, {', '.join(units)}, {torch.get_num_threads()} threads")
    print(f"{args.model}, {args.stage}'s clips, batch {args.batch}, {args.steps} steps a mode")

    with torch.no_grad():  # the same batch's loss both ways, before any step moves the weights
        loss32 = model(**data[0], fused_lm_head=True).loss.item()
        with bfloat16():
            loss16 = model(**data[0], fused_lm_head=True).loss.item()
    print(f"loss on one batch: float32 {loss32:.4f}, bfloat16 autocast {loss16:.4f}")

    modes = {"float32": contextlib.nullcontext, "bfloat16": bfloat16}
    for mode in modes.values():  # warm-up: oneDNN builds its kernels on first use
        with mode():
            timed_step(model, optimizer, data[0], True)
    times: dict[str, list[float]] = {name: [] for name in modes}
    for batch in data:  # alternate step by step so load from other processes hits both modes alike
        for name, mode in modes.items():
            with mode():
                times[name].append(timed_step(model, optimizer, batch, True))
    for name, t in times.items():
        print(f"{name:>9}: median step {statistics.median(t) * 1e3:.1f} ms, total {sum(t):.2f} s")
    print(f"bfloat16 / float32, steps per second: {sum(times['float32']) / sum(times['bfloat16']):.2f}x")


if __name__ == "__main__":
    main()
