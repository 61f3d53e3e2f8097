"""Frames per second of `elysium track` on a generated 300-frame video, at two tiny random model sizes.

Runs the CLI's own code path (`track_to_files`: decode with PyAV, track in 8-frame clips, draw, write track.mp4
and track.json) and splits the wall time with the tracker's timers into decoding (PyAV decode + scale, both
sizes), preprocessing (normalize to pixel values), the vision tower (with T-Selector and projector), the LLM
(`generate`) and the rest (drawing boxes, encoding track.mp4, parsing answers). Random weights never emit
`</s>`, so every clip generates its full token budget: the length of a real 8-box answer.

    python benchmarks/track_speed.py [--frames 300] [--size 640x360] [--image-size 224] [--tokens 16]

`--decoders` instead tracks the bundled demo video (assets/demo.mp4, by its box and by its expression) with the
shipped model (or `--model DIR`) with the constrained box decoder and with `generate`, alternating round by round in
one process, and compares frames/s and the boxes frame by frame; `--videos 1 8 32` tracks that many copies of the
demo as one batch (the GPU comparison; `--max-frames` keeps a CPU run short). Its last line is
`constrained vs generate: X.XXx frames/s; identical boxes N/M`.

    python benchmarks/track_speed.py --decoders [--rounds 3] [--threads 1] [--videos 1] [--device cpu]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from elysium.inference.threads import use_threads
from elysium.inference.track_cli import track_to_files
from elysium.inference.tracker import ElysiumTracker
from elysium.modeling_elysium import ElysiumConfig, ElysiumForConditionalGeneration
from elysium.processing import ElysiumImageProcessor, ElysiumProcessor
from elysium.processing.prompts import PARAPHRASES
from elysium.processing.tokenizer_training import train_tokenizer
from elysium.processing.video import write_video

SIZES = {
    "small (vision 2 layers x 64, LLM 2 layers x 64)": dict(
        vision_layers=2, vision_width=64, llm_layers=2, llm_width=64
    ),
    "larger (vision 4 layers x 128, LLM 4 layers x 256)": dict(
        vision_layers=4, vision_width=128, llm_layers=4, llm_width=256
    ),
}


def make_video(path: Path, frames: int, width: int, height: int, fps: float = 30.0) -> list[float]:
    """A textured background with a square moving across; returns the first frame's box."""
    rng = np.random.default_rng(0)
    background = rng.integers(0, 80, (height, width, 3), dtype=np.uint8)
    side = height // 6

    def frame(i: int) -> np.ndarray:
        image = background.copy()
        x = int((width - side) * i / max(1, frames - 1))
        y = height // 3
        image[y : y + side, x : x + side] = (230, 40, 40)
        return image

    write_video(path, (frame(i) for i in range(frames)), fps)
    return [0.0, float(height // 3), float(side), float(height // 3 + side)]


def build(
    tokenizer, image_size: int, tokens: int, vision_layers: int, vision_width: int, llm_layers: int, llm_width: int
) -> tuple[ElysiumForConditionalGeneration, ElysiumProcessor]:
    config = ElysiumConfig(
        vision_config=dict(
            model_type="clip_vision_model",
            hidden_size=vision_width,
            intermediate_size=4 * vision_width,
            num_hidden_layers=vision_layers,
            num_attention_heads=4,
            image_size=image_size,
            patch_size=14,
        ),
        text_config=dict(
            model_type="llama",
            hidden_size=llm_width,
            intermediate_size=4 * llm_width,
            num_hidden_layers=llm_layers,
            num_attention_heads=4,
            num_key_value_heads=4,
            vocab_size=len(tokenizer),
            max_position_embeddings=4096,
        ),
        image_token_id=tokenizer.convert_tokens_to_ids("<image>"),
        t_selector_tokens=tokens,
    )
    torch.manual_seed(0)
    model = ElysiumForConditionalGeneration(config).eval()
    size = {"height": image_size, "width": image_size}
    return model, ElysiumProcessor(ElysiumImageProcessor(size=size), tokenizer, num_image_tokens=tokens)


def prefill_costs(model, processor, demo: dict, repeats: int = 15) -> None:
    """What the prefill of one clip's views costs (min of `repeats`): as `generate` runs it (one left-padded, masked
    batch), as the constrained decoder runs it (rows of one length unpadded), with the shared prefix's cache reused,
    and one view alone."""
    from transformers import DynamicCache
    from transformers.modeling_outputs import BaseModelOutputWithPooling

    from elysium.inference.box_decoder import ConstrainedBoxDecoder

    tracker = ElysiumTracker(model, processor, decoder="constrained")
    asked = []
    tracker._decode_boxes = lambda prompts, features, *rest: asked.append((prompts, features)) or [""] * len(prompts)
    tracker.track(demo["path"], box=demo["box"], max_frames=tracker.clip_len * 2 - 1)
    prompts, features = asked[-1]  # a second clip: every view cut around a carried box
    encoding = processor.tokenize(prompts, return_tensors="pt", padding=True, padding_side="left")
    ids, mask = encoding["input_ids"].to(model.device), encoding["attention_mask"].to(model.device)
    plain, reuse = ConstrainedBoxDecoder(model, processor), ConstrainedBoxDecoder(model, processor, reuse_prefix=True)
    empty = [[] for _ in prompts]
    per_view = len(features) // len(prompts)

    def padded() -> None:
        model(
            input_ids=ids,
            attention_mask=mask,
            mm_encoder_outputs={"image": BaseModelOutputWithPooling(pooler_output=features)},
            cache=DynamicCache(config=model.config),
            use_cache=True,
            logits_to_keep=1,
        )

    def one_view() -> None:
        plain._prefill(ids[:1], mask[:1], features[:per_view], empty[:1])

    ways = {
        "left-padded batch (generate)": padded,
        "unpadded rows (constrained)": lambda: plain._prefill(ids, mask, features, empty),
        "unpadded, shared prefix reused": lambda: reuse._prefill(ids, mask, features, empty),
        "one view alone": one_view,
    }
    best = dict.fromkeys(ways, float("inf"))
    with torch.inference_mode():
        for _ in range(repeats):
            for name, run in ways.items():
                start = time.perf_counter()
                run()
                best[name] = min(best[name], time.perf_counter() - start)
    prefix = len(plain.shared_prefix(ids, mask))
    print(f"prefill of one clip, {len(prompts)} views of {int(mask.sum(1).max())} tokens (shared prefix {prefix}):")
    for name, seconds in best.items():
        print(f"    {name}: {1000 * seconds:.1f} ms")


def compare_decoders(args: argparse.Namespace) -> int:
    """The demo video tracked with both decoders, alternating, in this process; prints the ratio of frames/s."""
    from elysium.inference.demo_cli import load_demo
    from elysium.inference.loading import load_model_and_processor

    demo = load_demo()
    model, processor = load_model_and_processor(args.model, args.device)
    device = torch.cuda.get_device_name(0) if model.device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"demo video {demo['num_frames']} frames, model {args.model or 'elysium-tiny'}, {device}", flush=True)
    decoders = ("generate", "constrained")
    trackers = {name: ElysiumTracker(model, processor, decoder=name) for name in decoders}
    for tracker in trackers.values():  # warm-up (and the grammar, built once a tracker)
        tracker.track(demo["path"], box=demo["box"], max_frames=4)
    if args.prefill:
        prefill_costs(model, processor, demo)
    summary = None
    for videos in args.videos:
        seconds, frames, same, compared = dict.fromkeys(decoders, 0.0), dict.fromkeys(decoders, 0), 0, 0
        parts = {name: dict.fromkeys(("decode_s", "preprocess_s", "vision_s", "llm_s"), 0.0) for name in decoders}
        for round_ in range(args.rounds):
            boxes: dict[str, list[list[float]]] = {}
            for name in decoders if round_ % 2 == 0 else decoders[::-1]:
                tracker = trackers[name]
                tracker.reset_stats()
                start = time.perf_counter()
                tracked = []
                for kind in ("box", "expression"):
                    sources = [tracker.source(demo["path"], max_frames=args.max_frames) for _ in range(videos)]
                    given = [demo["box"] if kind == "box" else None] * videos
                    words = [demo["expression"] if kind == "expression" else None] * videos
                    tracked += tracker.track_batch(sources, boxes=given, expressions=words)
                seconds[name] += time.perf_counter() - start
                for part in parts[name]:
                    parts[name][part] += tracker.stats[part]
                frames[name] += sum(len(result.frames) for result in tracked)
                boxes[name] = [box for result in tracked for box in result.boxes]
            same += sum(a == b for a, b in zip(boxes["constrained"], boxes["generate"]))
            compared += len(boxes["generate"])
        rates = {name: frames[name] / seconds[name] for name in decoders}
        ratio = rates["constrained"] / rates["generate"]
        print(
            f"{videos:3d} video(s): generate {rates['generate']:.2f} frames/s, constrained {rates['constrained']:.2f} "
            f"frames/s ({args.rounds} rounds, by box and by expression)",
            flush=True,
        )
        for name in decoders:
            shares = ", ".join(f"{part[:-2]} {100 * value / seconds[name]:.0f}%" for part, value in parts[name].items())
            print(f"    {name}: {seconds[name]:.2f} s: {shares}")
        summary = f"constrained vs generate: {ratio:.2f}x frames/s; identical boxes {same}/{compared}"
        if len(args.videos) > 1:
            print(f"{videos:3d} video(s): {summary}")
    stats = trackers["constrained"]._box_decoder.stats
    print(
        f"constrained decoder, last round: {stats['forwards']} forward passes, {stats['tokens']} tokens, "
        f"{stats['departures']} departures from the model's own greedy choice; prefill {stats['prefill_s']:.2f} s, "
        f"decoding {stats['decode_s']:.2f} s"
    )
    print(summary)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--decoders", action="store_true", help="constrained decoder vs generate on the demo video")
    parser.add_argument("--rounds", type=int, default=3, help="--decoders: rounds, the decoders alternating")
    parser.add_argument("--videos", type=int, nargs="+", default=[1], help="--decoders: videos tracked as a batch")
    parser.add_argument("--max-frames", type=int, default=None, help="--decoders: frames of the demo to track")
    parser.add_argument("--prefill", action="store_true", help="--decoders: first time one clip's prefill 4 ways")
    parser.add_argument("--model", default=None, help="--decoders: model folder (default: the shipped elysium-tiny)")
    parser.add_argument("--device", default=None, help="--decoders: cpu, cuda (default: CUDA where present)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: the thread policy)")
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--size", default="640x360", help="video WxH")
    parser.add_argument("--image-size", type=int, default=224, help="model input side (CLIP-L uses 336)")
    parser.add_argument("--tokens", type=int, default=16, help="T-Selector tokens a frame")
    args = parser.parse_args(argv)
    use_threads(args.threads)
    if args.decoders:
        return compare_decoders(args)
    width, height = (int(v) for v in args.size.split("x"))

    texts = [p for options in PARAPHRASES.values() for p in options]
    texts += [f"Frame {i}: [{i},{2 * i},{3 * i},{4 * i}]." for i in range(1, 100)]
    tokenizer = train_tokenizer(texts * 3, vocab_size=400)
    tokenizer.add_tokens(["<image>"], special_tokens=True)

    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads; video {args.frames} frames {width}x{height}; "
        f"model input {args.image_size}px, {args.tokens} tokens a frame, clips of 8 overlapping by 1",
        flush=True,
    )
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        video = Path(tmp) / "moving.mp4"
        box = make_video(video, args.frames, width, height)
        for name, dims in SIZES.items():
            model, processor = build(tokenizer, args.image_size, args.tokens, **dims)
            params = sum(p.numel() for p in model.parameters()) / 1e6
            tracker = ElysiumTracker(model, processor)
            track_to_files(tracker, str(video), Path(tmp) / "warm", box=box, max_frames=16, quiet=True)  # warm-up
            tracker.reset_stats()
            start = time.perf_counter()
            result, _, _, _ = track_to_files(tracker, str(video), Path(tmp) / "out", box=box, quiet=True)
            wall = time.perf_counter() - start
            stats = tracker.stats
            other = wall - stats["decode_s"] - stats["preprocess_s"] - stats["vision_s"] - stats["llm_s"]
            rows.append((name, params, len(result.frames), wall, stats, other, tracker._answer_budget(8)))

    header = f"{'model':52} {'params':>7} {'frames/s':>9} {'wall s':>7} {'decode':>7} {'preproc':>7} {'vision':>7} "
    header += f"{'LLM':>7} {'other':>7} {'tok/clip':>8}"
    print(header)
    for name, params, frames, wall, stats, other, budget in rows:
        shares = [stats["decode_s"], stats["preprocess_s"], stats["vision_s"], stats["llm_s"], other]
        cells = " ".join(f"{100 * s / wall:6.1f}%" for s in shares)
        print(f"{name:52} {params:6.2f}M {frames / wall:9.1f} {wall:7.2f} {cells} {budget:8d}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
