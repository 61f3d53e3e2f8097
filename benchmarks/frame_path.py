"""Frames/s of the frame path: decode + resize to 336x336 + CLIP normalize to a float tensor.

    python benchmarks/frame_path.py [--frames 150] [--repeats 3]

Generates a 1280x720 H.264 mp4 (textured, moving content) in a temp folder, then times, in
one process and on the same file:

  decode only        the floor: decoding the H.264 stream, nothing else
  (a) PIL baseline   full-size RGB frame -> PIL ``resize((336, 336), BICUBIC)`` -> numpy normalize
  (b) PyAV + torch   ``read_video``: swscale resizes YUV straight to 336x336 RGB (bicubic) while
                     decoding, then one batched torch normalize
  (b) bilinear       the same with the bilinear scaler (what bicubic costs)
  (b) to_ndarray     ``frame.to_ndarray(width=, height=, ...)`` per frame: a new swscale context
                     each frame, instead of read_video's reused one
  (c) CLIP processor full-size frames -> transformers' ``CLIPImageProcessor`` (its PIL backend
                     here, as torchvision does not import), 8 frames a call like an 8-frame clip

Every path decodes with the same FFmpeg threading (``thread_type="AUTO"``). The ``|diff|``
columns are mean absolute differences in 0..255 pixel levels, so a speed-up that changes what the
model sees shows up next to the speed: against (a), and against a high-quality reference (not
timed): full-size RGB with full chroma interpolation, then PIL bicubic. (a) and (c) convert to RGB
with swscale's default horizontally-subsampled chroma, so they sit ~2 levels from that reference.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import av
import numpy as np
import torch
from av.video.reformatter import Interpolation
from PIL import Image
from transformers.image_utils import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD

from elysium.processing.video import read_video, write_video

SIZE = (336, 336)
MEAN = np.array(OPENAI_CLIP_MEAN, dtype=np.float32)
STD = np.array(OPENAI_CLIP_STD, dtype=np.float32)
# x / 255 - mean) / std folded into one multiply and one subtract
SCALE_T = torch.tensor(1.0 / (255.0 * STD)).view(1, 3, 1, 1)
SHIFT_T = torch.tensor(MEAN / STD).view(1, 3, 1, 1)


def make_video(path: Path, frames: int, width: int = 1280, height: int = 720, fps: int = 30) -> None:
    """Textured background that pans plus a moving box: gives the decoder realistic work."""
    rng = np.random.default_rng(0)
    coarse = rng.integers(0, 256, (height // 16 + 2, width // 16 + 2, 3), dtype=np.uint8)
    base = np.asarray(Image.fromarray(coarse).resize((width + 32, height + 32), Image.Resampling.BICUBIC))
    grain = rng.integers(0, 24, (height, width, 1), dtype=np.uint8)

    def gen():
        for i in range(frames):
            frame = base[i % 32 : i % 32 + height, (2 * i) % 32 : (2 * i) % 32 + width].copy()
            frame = np.clip(frame.astype(np.int16) + grain - 12, 0, 255).astype(np.uint8)
            x, y = 100 + 6 * i, 200 + 2 * i
            frame[y : y + 120, x : x + 160] = (230, 40, 40)
            yield frame

    write_video(path, gen(), fps=fps, crf=23)


def decoded_frames(path: Path):
    """Full-size decoded frames with the same threading read_video uses."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        yield from container.decode(stream)


def torch_normalize(frames: np.ndarray) -> torch.Tensor:
    """(N, H, W, 3) uint8 -> (N, 3, H, W) float32 CLIP-normalized: one cast-copy, two in-place ops."""
    src = torch.from_numpy(frames).permute(0, 3, 1, 2)
    out = torch.empty(src.shape, dtype=torch.float32)
    out.copy_(src)
    return out.mul_(SCALE_T).sub_(SHIFT_T)


def decode_only(path: Path) -> None:
    for _ in decoded_frames(path):
        pass


def pil_baseline(path: Path) -> np.ndarray:
    out = []
    for frame in decoded_frames(path):
        img = frame.to_image().resize(SIZE, Image.Resampling.BICUBIC)
        arr = (np.asarray(img, dtype=np.float32) / 255.0 - MEAN) / STD
        out.append(arr.transpose(2, 0, 1))
    return np.stack(out)


def pyav_torch(path: Path, interpolation: str = "bicubic") -> torch.Tensor:
    return torch_normalize(read_video(path, size=SIZE, interpolation=interpolation).frames)


def pyav_to_ndarray(path: Path) -> torch.Tensor:
    flags = Interpolation.BICUBIC | Interpolation.FULL_CHR_H_INT | Interpolation.FULL_CHR_H_INP  # as read_video
    frames = [
        frame.to_ndarray(width=SIZE[0], height=SIZE[1], format="rgb24", interpolation=flags)
        for frame in decoded_frames(path)
    ]
    return torch_normalize(np.stack(frames))


def hq_reference(path: Path) -> np.ndarray:
    """Full-size RGB with full-resolution chroma (accurate rounding), then PIL bicubic: the target."""
    flags = Interpolation.BICUBIC | Interpolation.FULL_CHR_H_INT | Interpolation.ACCURATE_RND
    out = []
    for frame in decoded_frames(path):
        full = Image.fromarray(frame.to_ndarray(format="rgb24", interpolation=flags))
        img = full.resize(SIZE, Image.Resampling.BICUBIC)
        out.append(((np.asarray(img, dtype=np.float32) / 255.0 - MEAN) / STD).transpose(2, 0, 1))
    return np.stack(out)


def clip_processor():
    try:  # transformers 5.x: the PIL backend, which is what CLIPImageProcessor falls back to without torchvision
        from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil as Processor
    except ImportError:
        from transformers import CLIPImageProcessor as Processor
    return Processor(do_center_crop=False, size={"height": SIZE[1], "width": SIZE[0]})


def clip_reference(path: Path, processor, clip_len: int = 8) -> torch.Tensor:
    out, clip = [], []
    for frame in decoded_frames(path):
        clip.append(frame.to_image())
        if len(clip) == clip_len:
            out.append(processor(images=clip, return_tensors="pt")["pixel_values"])
            clip = []
    if clip:
        out.append(processor(images=clip, return_tensors="pt")["pixel_values"])
    return torch.cat(out)


def best_times(rows: list[tuple[str, Callable[[], object]]], repeats: int) -> dict[str, tuple[float, float, object]]:
    """Best wall and CPU seconds of ``repeats`` per path, after a warm-up.

    Rounds run every path in turn, so a burst of load from other processes hits all paths alike.
    CPU time (all threads of this process) is the work a path costs; it moves much less than wall
    time when the machine is shared.
    """
    results = {name: (float("inf"), float("inf"), fn()) for name, fn in rows}
    for _ in range(repeats):
        for name, fn in rows:
            wall, cpu = time.perf_counter(), time.process_time()
            out = fn()
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            best_wall, best_cpu, _ = results[name]
            results[name] = (min(best_wall, wall), min(best_cpu, cpu), out)
    return results


def levels_diff(x: object, ref: np.ndarray) -> float:
    """Mean |x - ref| in 0..255 pixel levels (undoing the CLIP std scaling)."""
    arr = x.numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    return float((np.abs(arr - ref) * STD.reshape(1, 3, 1, 1) * 255).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=150)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    print(
        f"PyAV {av.__version__}, FFmpeg {av.ffmpeg_version_info}, torch {torch.__version__} "
        f"({torch.get_num_threads()} threads), {os.cpu_count()} CPUs"
    )
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench_720p.mp4"
        start = time.perf_counter()
        make_video(path, args.frames)
        print(
            f"generated {path.name}: {args.frames} frames 1280x720 H.264, {path.stat().st_size / 1e6:.1f} MB "
            f"in {time.perf_counter() - start:.1f}s; best of {args.repeats} interleaved runs each\n"
        )

        processor = clip_processor()
        rows: list[tuple[str, Callable[[], object]]] = [
            ("decode only (floor)", lambda: decode_only(path)),
            ("(a) PIL resize + numpy", lambda: pil_baseline(path)),
            ("(b) PyAV scale + torch", lambda: pyav_torch(path)),
            ("(b) same, bilinear", lambda: pyav_torch(path, "bilinear")),
            ("(b) to_ndarray per frame", lambda: pyav_to_ndarray(path)),
            (f"(c) {type(processor).__name__}", lambda: clip_reference(path, processor)),
        ]
        results = best_times(rows, args.repeats)

        hq = hq_reference(path)

    base_wall, base_cpu, ref = results["(a) PIL resize + numpy"]
    n = args.frames
    print(f"{'path':<30}{'frames/s':>9}{'x (a)':>7}{'CPU ms/frame':>14}{'x (a)':>7}{'|diff| vs (a)':>15}{'vs HQ':>7}")
    for name, (wall, cpu, out) in results.items():
        diffs = ("", "") if out is None else (f"{levels_diff(out, ref):.2f}", f"{levels_diff(out, hq):.2f}")
        print(
            f"{name:<30}{n / wall:>9.1f}{base_wall / wall:>7.2f}{1000 * cpu / n:>14.2f}{base_cpu / cpu:>7.2f}"
            f"{diffs[0]:>15}{diffs[1]:>7}"
        )
    b_wall, b_cpu, _ = results["(b) PyAV scale + torch"]
    print(f"\nratio b/a: {base_wall / b_wall:.2f}x frames/s (wall), {base_cpu / b_cpu:.2f}x less CPU per frame")


if __name__ == "__main__":
    main()
