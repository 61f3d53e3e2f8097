"""Training tokens/s of padded versus padding-free batches, same samples, same model, one run.

    python benchmarks/train_throughput.py [--batch 8] [--steps 6] [--hidden 256] [--layers 4] [--attn sdpa]

Builds a small random Elysium (CLIP 112 px -> 64 patches, T-Selector keeps 32 tokens a frame; Llama of width
`--hidden`), draws a realistic mixed-length batch from generated synthetic videos (`synthetic/`; clips of
2..8 frames at random strides, SOT / RSOT / Video-REG answers), and times forward + backward + optimizer step on
the same batch collated both ways. tokens/s counts real tokens only (padding excluded), so the ratio is the useful
speed-up. On CPU with sdpa the packed row gets a block-diagonal mask over the whole row; on GPU with
`--attn flash_attention_2` the varlen kernel skips cross-sample blocks entirely.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import tempfile
import time

import torch

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from elysium.modeling_elysium import ElysiumForConditionalGeneration  # noqa: E402
from elysium.processing import ElysiumImageProcessor, ElysiumProcessor  # noqa: E402
from elysium.synthetic import SynthConfig, synth_tokenizer, synthesize  # noqa: E402
from elysium.training.collator import ElysiumCollator  # noqa: E402
from elysium.training.frames import FrameStore  # noqa: E402
from elysium.training.model_setup import tiny_model_config  # noqa: E402
from elysium.training.records import SkipCounts, load_track_records, usable_track_records  # noqa: E402
from elysium.training.samples import SampleBuilder  # noqa: E402


def build(args: argparse.Namespace):
    tokenizer = synth_tokenizer()
    config = tiny_model_config(
        len(tokenizer), tokenizer.convert_tokens_to_ids("<image>"), image_size=112, t_selector_tokens=32
    )
    config.text_config.hidden_size = args.hidden
    config.text_config.intermediate_size = args.hidden * 4
    config.text_config.num_hidden_layers = args.layers
    config.text_config.num_attention_heads = args.hidden // 32
    config.text_config.num_key_value_heads = args.hidden // 32
    torch.manual_seed(0)
    model = ElysiumForConditionalGeneration(config).to(args.device)
    model.set_attn_implementation(args.attn)
    processor = ElysiumProcessor(
        ElysiumImageProcessor(size={"height": 112, "width": 112}), tokenizer, num_image_tokens=32
    )
    return model, processor


def mixed_batch(processor: ElysiumProcessor, size: int, folder: str) -> list[dict]:
    config = SynthConfig(tracks_per_video=1, photos=False)  # one track a video: about `size` samples
    summary = synthesize(folder, size, 0, (80, 80), (112, 112), config=config, progress=False)
    records = usable_track_records(load_track_records(str(summary.annotations), folder), SkipCounts())
    frames, builder, rng = FrameStore.from_path(folder), SampleBuilder(processor), random.Random(0)
    samples = []
    for record in records:
        example = builder.track_example(record, rng)
        samples.append(builder.encode(example, [frames.open_image(p) for p in example.frames]))
    return samples


def timed_step(model, optimizer, batch: dict, device: str) -> float:
    """Seconds for one forward + backward + optimizer step."""
    start = time.perf_counter()
    model(**batch).loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--attn", default="sdpa")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()

    model, processor = build(args)
    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-4)  # cheap: the step is not what is compared
    with tempfile.TemporaryDirectory() as folder:
        samples = mixed_batch(processor, args.batch, folder)
    lengths = [len(s["input_ids"]) for s in samples]
    frames = [s["pixel_values"].shape[0] for s in samples]
    real_tokens = sum(lengths)
    pad_id = processor.tokenizer.pad_token_id
    batches = {
        "padded": ElysiumCollator(pad_id)(samples),
        "padding-free": ElysiumCollator(pad_id, padding_free=True)(samples),
    }
    print(f"device {args.device}, attention {args.attn}, Llama {args.layers}x{args.hidden}, batch {args.batch}")
    print(f"frames per sample {frames}; tokens per sample {lengths}")
    print(
        f"padded row {max(lengths)} x {len(lengths)} = {max(lengths) * len(lengths)} tokens "
        f"({100 * (1 - real_tokens / (max(lengths) * len(lengths))):.0f}% padding); packed row {real_tokens}"
    )
    batches = {
        name: {k: v.to(args.device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
        for name, batch in batches.items()
    }
    for batch in batches.values():  # warm-up
        timed_step(model, optimizer, batch, args.device)
    medians: dict[str, list[float]] = {name: [] for name in batches}
    for _ in range(args.steps):  # alternate step by step so load from other processes hits both modes alike
        for name, batch in batches.items():
            medians[name].append(timed_step(model, optimizer, batch, args.device))
    rates = {name: real_tokens / statistics.median(times) for name, times in medians.items()}
    for name, rate in rates.items():
        print(f"{name:>13}: {rate:9.0f} real tokens/s  (median step {statistics.median(medians[name]) * 1e3:.1f} ms)")
    print(f"padding-free / padded tokens/s ratio: {rates['padding-free'] / rates['padded']:.2f}x")


if __name__ == "__main__":
    main()
