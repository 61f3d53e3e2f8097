"""Elysium-7B on one GPU, randomly initialised in bf16: prefill, decode, tracking, memory and a training step.

    python benchmarks/gpu_7b.py                      # Elysium-7B (ElysiumConfig() defaults), cuda, bf16
    python benchmarks/gpu_7b.py --tiny --device cpu  # the same code path on a tiny config (what the tests run)

Prints one table, a column per attention implementation: SDPA always, `flash_attention_2` where `flash_attn`
imports (and the device is CUDA). Rows:

- prefill tokens/s: one forward over a prompt of `--frames` frames (vision tower, T-Selector and projector included);
- decode tokens/s: greedy tokens after the prefill, from two `generate` calls (1 and 1 + `--decode-tokens` new
  tokens, `min_new_tokens` forcing the length, as random weights stop at random), the difference timed;
- tracking frames/s: `ElysiumTracker.track_batch` (the CLI's and the pipeline's tracker) with 8-frame clips over
  `--videos` videos at once (default 1, 8, 32), each `--video-frames` generated frames at `--frame-size`; random
  weights never emit `</s>`, so every clip generates its full answer budget, the length of a real 8-box answer;
- peak memory of each phase (`torch.cuda.max_memory_allocated`; on CPU the process's peak RSS, which only grows);
- a training step (forward + backward + SGD) with the vision tower frozen and gradient checkpointing, on
  `--train-batch` mixed-length samples (2..8 frames) collated padded and padding-free (training/collator.py);
  real tokens/s (padding excluded) and the padding-free / padded ratio, measured in the same process.

The tokenizer is a small one trained here (no download): Vicuna's vocabulary only changes which ids the prompts
hold, not the shapes or the cost. Ratios, not absolute CPU figures, are what the tiny run is for.
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import os
import random
import resource
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import PIL.Image
import torch

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from elysium.inference.tracker import ElysiumTracker, VideoSource  # noqa: E402
from elysium.modeling_elysium import ElysiumConfig, ElysiumForConditionalGeneration  # noqa: E402
from elysium.processing import ElysiumImageProcessor, ElysiumProcessor  # noqa: E402
from elysium.processing.prompts import PARAPHRASES, SOT  # noqa: E402
from elysium.processing.tokenizer_training import train_tokenizer  # noqa: E402
from elysium.training.collator import ElysiumCollator  # noqa: E402
from elysium.training.samples import Example, SampleBuilder  # noqa: E402

TINY_VISION = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, image_size=56)
TINY_TEXT = dict(hidden_size=128, intermediate_size=256, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=4)  # fmt: skip
TINY_TOKENS = 8  # of the 16 patches a 56 px frame gives


def benchmark_tokenizer():
    texts = [p for options in PARAPHRASES.values() for p in options] + ["Frame 1: [12,34,56,78], Frame 2: [1,2,3,4]."]
    tokenizer = train_tokenizer(texts * 3, vocab_size=600)
    tokenizer.add_tokens(["<image>"], special_tokens=True)
    return tokenizer


def model_config(tiny: bool, image_token_id: int) -> ElysiumConfig:
    """Elysium-7B (the config defaults: Vicuna-7B v1.5 + CLIP-L/14-336, 108 tokens a frame), or the tiny stand-in."""
    if not tiny:
        return ElysiumConfig(image_token_id=image_token_id)
    vision = {**ElysiumConfig().vision_config.to_dict(), **TINY_VISION}
    text = {**ElysiumConfig().text_config.to_dict(), **TINY_TEXT}
    for sub in (vision, text):
        sub.pop("head_dim", None)
        sub.pop("transformers_version", None)
    return ElysiumConfig(
        vision_config=vision, text_config=text, t_selector_tokens=TINY_TOKENS, image_token_id=image_token_id
    )


@dataclass
class Setup:
    model: ElysiumForConditionalGeneration
    processor: ElysiumProcessor
    device: torch.device
    dtype: torch.dtype


def build(config: ElysiumConfig, tokenizer, device: str, dtype: torch.dtype, attn: str) -> Setup:
    """A random model straight on the device in `dtype` (no fp32 copy of 7B on the host)."""
    torch.manual_seed(0)
    with torch.device(device):
        model = ElysiumForConditionalGeneration._from_config(config, dtype=dtype, attn_implementation=attn)
    size = {"height": config.vision_config.image_size, "width": config.vision_config.image_size}
    processor = ElysiumProcessor(ElysiumImageProcessor(size=size), tokenizer, num_image_tokens=config.t_selector_tokens)
    return Setup(model.eval(), processor, torch.device(device), dtype)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def reset_peak(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def peak_gib(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**30
    scale = 1 if sys.platform == "darwin" else 1024  # ru_maxrss: bytes on macOS, KiB on Linux
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 2**30


def timed(fn: Callable[[], Any], device: torch.device, repeats: int) -> float:
    """Median seconds of `fn` over `repeats` runs after one warm-up."""
    fn()
    synchronize(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        synchronize(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def random_frames(count: int, size: tuple[int, int], seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8) for _ in range(count)]


def prompt_inputs(setup: Setup, frames: int, batch: int = 1) -> dict[str, torch.Tensor]:
    prompt = setup.processor.build_prompt(SOT, frames, box=[0.2, 0.3, 0.5, 0.6])
    images = [random_frames(frames, (640, 360), seed) for seed in range(batch)]
    inputs = setup.processor(text=[prompt] * batch, images=images)
    return {
        k: v.to(setup.device, setup.dtype) if k == "pixel_values" else v.to(setup.device) for k, v in inputs.items()
    }


def measure_prefill_decode(setup: Setup, frames: int, new_tokens: int, repeats: int) -> dict[str, float]:
    inputs = prompt_inputs(setup, frames)
    length = inputs["input_ids"].shape[1]
    pad = setup.processor.tokenizer.pad_token_id
    reset_peak(setup.device)
    with torch.inference_mode():
        prefill = timed(lambda: setup.model(**inputs, use_cache=False), setup.device, repeats)

        def generate(n: int) -> Callable[[], Any]:
            return lambda: setup.model.generate(
                **inputs, max_new_tokens=n, min_new_tokens=n, do_sample=False, pad_token_id=pad
            )

        first = timed(generate(1), setup.device, repeats)
        full = timed(generate(1 + new_tokens), setup.device, repeats)
    return {
        "prompt tokens": length,
        "prefill tokens/s": length / prefill,
        "decode tokens/s": new_tokens / max(full - first, 1e-9),
        "peak GiB (prefill+decode)": peak_gib(setup.device),
    }


def measure_tracking(setup: Setup, videos: int, video_frames: int, frame_size: tuple[int, int]) -> dict[str, float]:
    tracker = ElysiumTracker(setup.model, setup.processor, clip_len=8, search_context=None, views=1, box_scale=1.0)
    sources = [VideoSource.from_frames(random_frames(video_frames, frame_size, seed)) for seed in range(videos)]
    boxes = [[frame_size[0] * 0.3, frame_size[1] * 0.3, frame_size[0] * 0.6, frame_size[1] * 0.7]] * videos
    reset_peak(setup.device)
    synchronize(setup.device)
    start = time.perf_counter()
    results = tracker.track_batch(sources, boxes)
    synchronize(setup.device)
    seconds = time.perf_counter() - start
    tracked = sum(len(r.frames) for r in results)
    return {
        f"track frames/s, {videos} video(s)": tracked / seconds,
        f"peak GiB (track x{videos})": peak_gib(setup.device),
    }


def training_samples(setup: Setup, count: int) -> list[dict[str, Any]]:
    """Mixed-length SOT samples (2..8 frames, seeded), encoded as training encodes them (labels on answers)."""
    rng = random.Random(0)
    builder = SampleBuilder(setup.processor)
    size = setup.model.config.vision_config.image_size
    samples = []
    for _ in range(count):
        frames = rng.randint(2, 8)
        boxes = [[0.2 + 0.01 * i, 0.3, 0.5 + 0.01 * i, 0.6] for i in range(frames)]
        answer = setup.processor.format_track_answer(boxes)
        text = setup.processor.build_prompt(SOT, frames, box=boxes[0], answer=answer, paraphrase=None, rng=rng)
        images = [PIL.Image.fromarray(f) for f in random_frames(frames, (size, size), rng.randint(0, 10**6))]
        samples.append(builder.encode(Example(SOT, images, text, [answer]), images))
    return samples


def measure_training(setup: Setup, batch: int, repeats: int) -> dict[str, float]:
    model = setup.model
    model.train()
    model.model.vision_tower.requires_grad_(False)
    model.activation_checkpointing_enable({"use_reentrant": False})  # gradient checkpointing
    if not model.is_gradient_checkpointing or any(p.requires_grad for p in model.model.vision_tower.parameters()):
        raise RuntimeError("the training step must run with the vision tower frozen and gradient checkpointing on")
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1e-6)
    samples = training_samples(setup, batch)
    real = sum(len(s["input_ids"]) for s in samples)
    pad = setup.processor.tokenizer.pad_token_id
    row: dict[str, float] = {}
    for name, collator in (("padded", ElysiumCollator(pad)), ("padding-free", ElysiumCollator(pad, padding_free=True))):
        data = collator(samples)
        data = {
            k: (v.to(setup.device, setup.dtype) if k == "pixel_values" else v.to(setup.device))
            if isinstance(v, torch.Tensor)
            else v
            for k, v in data.items()
        }

        def step(data: dict[str, Any] = data) -> None:
            model(**data).loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)

        reset_peak(setup.device)
        seconds = timed(step, setup.device, repeats)
        row[f"train tokens/s, {name}"] = real / seconds
        row[f"peak GiB (train {name})"] = peak_gib(setup.device)
    row["train padding-free / padded"] = row["train tokens/s, padding-free"] / row["train tokens/s, padded"]
    model.activation_checkpointing_disable()
    model.eval()
    return row


def attention_implementations(device: str) -> list[str]:
    names = ["sdpa"]
    if torch.device(device).type == "cuda" and importlib.util.find_spec("flash_attn") is not None:
        try:
            import flash_attn  # noqa: F401
        except ImportError as error:  # installed but built for another torch / CUDA
            print(f"flash_attention_2 skipped: flash_attn does not import ({error})")
        else:
            names.append("flash_attention_2")
    return names


def run(args: argparse.Namespace) -> dict[str, dict[str, float]]:
    tokenizer = benchmark_tokenizer()
    config = model_config(args.tiny, tokenizer.convert_tokens_to_ids("<image>"))
    dtype = getattr(torch, args.dtype)
    table: dict[str, dict[str, float]] = {}
    for attn in attention_implementations(args.device):
        setup = build(config, tokenizer, args.device, dtype, attn)
        column = measure_prefill_decode(setup, args.frames, args.decode_tokens, args.repeats)
        for videos in args.videos:
            column |= measure_tracking(setup, videos, args.video_frames, tuple(args.frame_size))
        column |= measure_training(setup, args.train_batch, args.repeats)
        table[attn] = column
        del setup
        reset_peak(torch.device(args.device))
    return table


def print_table(table: dict[str, dict[str, float]], header: str) -> None:
    columns = list(table)
    rows = list(dict.fromkeys(key for column in table.values() for key in column))
    print(header)
    print("| measure | " + " | ".join(columns) + " |")
    print("| :-- | " + " | ".join("--:" for _ in columns) + " |")
    for row in rows:
        cells = []
        for column in columns:
            value = table[column].get(row)
            cells.append("" if value is None else f"{value:.2f}" if abs(value) < 100 else f"{value:.0f}")
        print(f"| {row} | " + " | ".join(cells) + " |")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tiny", action="store_true", help="a tiny config through the same code (CPU tests)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float16", "float32"])
    parser.add_argument("--frames", type=int, default=8, help="frames in the prefill / decode prompt")
    parser.add_argument("--decode-tokens", type=int, default=64)
    parser.add_argument("--videos", type=int, nargs="+", default=[1, 8, 32], help="videos tracked at once")
    parser.add_argument("--video-frames", type=int, default=29, help="frames a video (29: four 8-frame clips)")
    parser.add_argument("--frame-size", type=int, nargs=2, default=[640, 360], metavar=("W", "H"))
    parser.add_argument("--train-batch", type=int, default=4, help="samples in the training step")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs a measure (median), after a warm-up")
    args = parser.parse_args(argv)
    if torch.device(args.device).type == "cuda" and not torch.cuda.is_available():
        parser.error(f"--device {args.device}: this machine has no CUDA GPU; pass --device cpu (with --tiny).")
    if not args.tiny and torch.device(args.device).type == "cpu":
        parser.error("Elysium-7B in bf16 on a CPU takes hours; pass --tiny to run the same path on a tiny config.")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(max(1, int(os.environ.get("OMP_NUM_THREADS", torch.get_num_threads()))))
    name = torch.cuda.get_device_name(args.device) if torch.device(args.device).type == "cuda" else "CPU"
    size = "tiny stand-in (CLIP 2x64 at 56 px, Llama 2x128)" if args.tiny else "Elysium-7B (random init)"
    header = (
        f"{size}, {args.dtype}, {name}, torch {torch.__version__}; prompt {args.frames} frames; tracking 8-frame "
        f"clips, {args.video_frames} frames a video at {args.frame_size[0]}x{args.frame_size[1]}; train batch "
        f"{args.train_batch}"
    )
    print_table(run(args), header)


if __name__ == "__main__":
    main()
