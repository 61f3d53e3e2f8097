"""Where a model's training gradient goes, module by module, on a training config's samples of one stage.

    python -m experiments.gradient_by_module --model runs/elysium-tiny/clutter-squares/final \
        --stage clutter-squares [--straight-through false]

Prints the gradient norm of the vision tower, each T-Selector parameter, the projector, the LLM and the head for a
few batches, and the vision features' mean norm a token. It found that the gate's straight-through gradient carried
almost all of the vision tower's gradient in v3's first clutter-squares run (docs/elysium-tiny/history.md).
"""

from __future__ import annotations

import argparse
from collections import defaultdict

import torch

from elysium.modeling_elysium import ElysiumForConditionalGeneration
from elysium.processing import ElysiumProcessor
from experiments.pixel_reliance import stage_batches


def module_of(name: str) -> str:
    parts = name.removeprefix("model.").split(".")
    return f"t_selector.{parts[-1]}" if parts[0] == "t_selector" else parts[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--config", default="training/configs/tiny.yaml")
    parser.add_argument("--stage", default=None)
    parser.add_argument("--samples", type=int, default=32)
    parser.add_argument("--straight-through", choices=["true", "false"], default=None, help="default: as saved")
    args = parser.parse_args()
    model = ElysiumForConditionalGeneration.from_pretrained(args.model)
    if args.straight_through is not None:
        model.model.t_selector.straight_through = args.straight_through == "true"
    processor = ElysiumProcessor.from_pretrained(args.model)
    model.train()
    for batch in stage_batches(args.config, args.stage, processor, args.samples, 16, seed=0):
        batch = {k: batch[k] for k in ("input_ids", "attention_mask", "labels", "pixel_values")}
        model.zero_grad()
        model(**batch).loss.backward()
        squares: dict[str, float] = defaultdict(float)
        for name, param in model.named_parameters():
            if param.grad is not None:
                squares[module_of(name)] += float(param.grad.norm()) ** 2
        print({module: round(total**0.5, 3) for module, total in squares.items()})
    with torch.no_grad():
        features = model.model.vision_tower(pixel_values=batch["pixel_values"]).last_hidden_state
    print(f"vision features: mean norm {float(features.norm(dim=-1).mean()):.1f} a token")


if __name__ == "__main__":
    main()
