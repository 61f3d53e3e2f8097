"""Quick start, end to end on a fresh CPU machine: build, export, reload and run Elysium on a generated video.

PLACEHOLDER until the default model ships (issue: `elysium-tiny`): the model here is a tiny Elysium with
RANDOM weights, so its boxes are meaningless. What this shows is the real path a trained checkpoint takes:
a Hub-ready export (config with auto_map, safetensors, processor, flat code), reloaded with
`AutoModel.from_pretrained(..., trust_remote_code=True)`, then `elysium track` by box and by expression,
writing track.json and an annotated track.mp4.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from elysium.hub.export import export_model
from elysium.inference.cli import main as elysium
from elysium.modeling_elysium import ElysiumForConditionalGeneration
from elysium.processing import ElysiumImageProcessor, ElysiumProcessor
from elysium.training.model_setup import tiny_model_config
from elysium.training.synth import synth_tokenizer, write_demo_video


def tiny_random_elysium() -> tuple[ElysiumForConditionalGeneration, ElysiumProcessor]:
    """The training code's tiny Elysium (2-layer CLIP and Llama) at 112 px (64 patches, 16 kept a frame), with the
    tokenizer of the synthetic data the demo video comes from."""
    tokenizer = synth_tokenizer()
    config = tiny_model_config(
        len(tokenizer), tokenizer.convert_tokens_to_ids("<image>"), image_size=112, t_selector_tokens=16
    )
    torch.manual_seed(0)
    processor = ElysiumProcessor(
        ElysiumImageProcessor(size={"height": 112, "width": 112}), tokenizer, num_image_tokens=16
    )
    return ElysiumForConditionalGeneration(config).eval(), processor


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="quickstart-out", help="folder for the model, the video and the results")
    out = Path(parser.parse_args().out)
    out.mkdir(parents=True, exist_ok=True)

    print("PLACEHOLDER: random weights until elysium-tiny ships; the boxes below are not a real track.")
    model, processor = tiny_random_elysium()
    hub_dir = export_model(model, processor, out / "hub-folder", overwrite=True)
    print(f"exported a Hub-ready folder: {hub_dir}")

    from transformers import AutoModel  # the reload goes through the exported code, as a Hub user's would

    reloaded = AutoModel.from_pretrained(hub_dir, trust_remote_code=True)
    print(f"reloaded with AutoModel(trust_remote_code=True): {type(reloaded).__name__}")

    demo = write_demo_video(out / "demo.mp4", seed=0)
    box = ",".join(str(round(v)) for v in demo.box)
    print(f"demo video: {demo.path} (target at {box}: {demo.expression!r})")
    code = elysium(["track", str(demo.path), "--box", box, "--model", str(hub_dir), "--out", str(out / "by-box")])
    code = code or elysium(
        [
            "track",
            str(demo.path),
            "--expression",
            demo.expression,
            "--model",
            str(hub_dir),
            "--out",
            str(out / "by-expression"),
        ]
    )
    return code


if __name__ == "__main__":
    raise SystemExit(main())
