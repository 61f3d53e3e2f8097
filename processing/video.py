"""The one place that decodes and writes video (PyAV only: no OpenCV, no torchvision).

Frames are resized *while decoding*: libswscale converts each decoded YUV frame straight to a
336x336 RGB array, so the full-size RGB frame is never built (that is most of the cost of the
frame path on HD video; see ``benchmarks/frame_path.py``). The scaler is **bicubic** by default
because the CLIP image processor the vision tower was trained with resizes with bicubic (PIL
``BICUBIC``); swscale widens its filter when it downscales, so like PIL it is antialiased (on RGB
input the two differ by 0.3 of 255 levels on average). Bilinear is ~1.3x faster but blurs more.
Chroma is interpolated at full output resolution (``FULL_CHR_H_INT``), see ``_CHROMA_FLAGS``.

Sources: video files (mp4, avi, mkv, webm, gif, anything FFmpeg reads), a folder of frames
(jpg/jpeg/png/bmp/webp, sorted naturally so ``2.jpg`` comes before ``10.jpg``), or one image.
Everything ends as ``uint8`` RGB, whatever the source pixel format (gray, RGBA, YUV, palette).

Broken input raises :class:`VideoError` (a ``ValueError``) naming the file and the fix, except a
truncated video whose first frames still decode: those are returned with ``truncated=True``, so a
long dataset run keeps going and can report the damaged files afterwards.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import NamedTuple

import av
import numpy as np
from av.video.reformatter import Interpolation, VideoReformatter
from PIL import Image, ImageDraw, ImageFont

__all__ = [
    "IMAGE_EXTENSIONS",
    "FrameItem",
    "Video",
    "VideoError",
    "VideoInfo",
    "VideoReader",
    "draw_boxes",
    "iter_video",
    "probe_video",
    "read_video",
    "write_video",
]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
DEFAULT_SIZE = (336, 336)
DEFAULT_FOLDER_FPS = 30.0

# swscale algorithms we allow; "bicubic" matches CLIP's PIL BICUBIC preprocessing.
_INTERPOLATIONS = {
    "bicubic": Interpolation.BICUBIC,
    "bilinear": Interpolation.BILINEAR,
    "area": Interpolation.AREA,
    "lanczos": Interpolation.LANCZOS,
}
# Without FULL_CHR_H_INT swscale computes RGB output with chroma at half the output width; for a
# 4:2:0 source scaled to 336 px that loses colour detail (7.4 levels mean error against a full-chroma
# reference on the benchmark video, 0.3 with the flag, for +0.5 ms a frame).
_CHROMA_FLAGS = Interpolation.FULL_CHR_H_INT | Interpolation.FULL_CHR_H_INP
_WRITE_FORMATS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska", ".gif": "gif"}
_FIX = "re-download it or re-encode it, e.g. `ffmpeg -i in.mp4 -c:v libx264 -pix_fmt yuv420p out.mp4`"


class VideoError(ValueError):
    """A video (or folder of frames) that cannot be read; the message names the file and the fix."""


@dataclass
class VideoInfo:
    """What a video is, without decoding it: size, rate, length."""

    path: str
    width: int
    height: int
    fps: float
    num_frames: int
    duration: float
    codec: str | None = None


@dataclass
class Video:
    """Decoded frames plus what is needed to map them back to the source (indices, times, size)."""

    frames: np.ndarray  # (N, H, W, 3) uint8 RGB, resized to ``size``
    indices: np.ndarray  # (N,) int64 index of each frame in the source
    timestamps: np.ndarray  # (N,) float64 seconds from the start of the stream
    original_size: tuple[int, int]  # (w, h) of the source frames
    fps: float
    truncated: bool = False  # the source ended early or had damaged packets; frames may be missing
    original_frames: np.ndarray | None = None  # (N, h, w, 3) full size, only with keep_original=True
    path: str = ""

    def __len__(self) -> int:
        return int(self.frames.shape[0])


class FrameItem(NamedTuple):
    """One decoded frame as :func:`iter_video` yields it."""

    index: int
    timestamp: float
    frame: np.ndarray  # (H, W, 3) uint8 RGB, resized
    original: np.ndarray | None  # full size, only with keep_original=True


# ----------------------------------------------------------------------------------------------
# helpers


def _natural_key(name: str) -> list[object]:
    """Sort key so ``frame2.jpg`` < ``frame10.jpg`` (digit runs compare as numbers)."""
    return [(0, int(tok), "") if tok.isdigit() else (1, 0, tok.lower()) for tok in re.split(r"(\d+)", name) if tok]


def _list_images(folder: Path) -> list[Path]:
    files = [p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS]
    return sorted(files, key=lambda p: _natural_key(p.name))


def _check_size(size: tuple[int, int] | None) -> tuple[int, int] | None:
    if size is None:
        return None
    if len(size) != 2 or int(size[0]) <= 0 or int(size[1]) <= 0:
        raise ValueError(f"size must be (width, height) with positive values, got {size!r}")
    return int(size[0]), int(size[1])


def _interpolation(name: str) -> Interpolation:
    try:
        return _INTERPOLATIONS[name.lower()] | _CHROMA_FLAGS
    except KeyError:
        raise ValueError(f"interpolation must be one of {sorted(_INTERPOLATIONS)}, got {name!r}") from None


def _open(path: Path) -> av.container.InputContainer:
    try:
        return av.open(str(path), mode="r")
    except (av.FFmpegError, OSError) as err:
        raise VideoError(
            f"{path}: cannot open as a video ({err}). The file is corrupt, truncated before its "
            f"header/index, or not a video; {_FIX}."
        ) from err


def _video_stream(container: av.container.InputContainer, path: Path) -> av.video.stream.VideoStream:
    if not container.streams.video:
        kinds = ", ".join(s.type for s in container.streams) or "nothing"
        raise VideoError(f"{path}: has no video stream (it holds {kinds}). Pass a file with a video track.")
    return container.streams.video[0]


def _stream_fps(stream: av.video.stream.VideoStream) -> float:
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if rate:
            value = float(rate)
            if 0 < value < 1000:  # mkv "1000 fps" time bases are not frame rates
                return value
    return DEFAULT_FOLDER_FPS


def _parse_hms(text: str) -> float | None:
    """Matroska's per-stream ``DURATION`` tag, ``HH:MM:SS.nnnnnnnnn``."""
    m = re.fullmatch(r"(\d+):(\d+):(\d+(?:\.\d+)?)", text.strip())
    return None if m is None else int(m[1]) * 3600 + int(m[2]) * 60 + float(m[3])


def _stream_duration(container: av.container.InputContainer, stream: av.video.stream.VideoStream) -> float | None:
    """Duration of the video stream itself (not of a longer audio track) when the file says it."""
    if stream.duration is not None and stream.time_base is not None and stream.duration > 0:
        return float(stream.duration * stream.time_base)
    tag = stream.metadata.get("DURATION") or stream.metadata.get("duration")
    if tag and (seconds := _parse_hms(tag)) is not None:
        return seconds
    if len(container.streams) == 1 and container.duration:
        return container.duration / av.time_base
    return None


def _count_packets(container: av.container.InputContainer, stream: av.video.stream.VideoStream) -> int:
    """Count frames by demuxing (no decoding): for mkv/webm/gif, whose headers don't store a count."""
    count = 0
    try:
        for packet in container.demux(stream):
            if packet.size:
                count += 1
    except av.FFmpegError:
        pass  # a truncated tail: the packets read so far are what the file holds
    return count


def _probe_image(path: Path, fps: float, num_frames: int) -> VideoInfo:
    try:
        with Image.open(path) as img:
            width, height = img.size
    except (OSError, ValueError) as err:
        raise VideoError(f"{path}: cannot read this image ({err}); replace or delete it.") from err
    return VideoInfo(str(path), width, height, fps, num_frames, num_frames / fps, codec="image")


def _resolve(path: str | os.PathLike[str]) -> Path:
    p = Path(path)
    if not p.exists():
        raise VideoError(f"{p}: no such file or folder. Check the path (relative paths start at {Path.cwd()}).")
    return p


def _images_of(path: Path) -> list[Path] | None:
    """The frame files when ``path`` is a folder or one image, else None (a video file)."""
    if path.is_dir():
        images = _list_images(path)
        if not images:
            raise VideoError(
                f"{path}: folder has no images ({', '.join(IMAGE_EXTENSIONS)}). Put the frames there, "
                "named so they sort in order (e.g. 000001.jpg), or pass a video file."
            )
        return images
    if path.suffix.lower() in IMAGE_EXTENSIONS:
        return [path]
    return None


def probe_video(path: str | os.PathLike[str], *, fps: float | None = None) -> VideoInfo:
    """Size, rate and frame count of a video file or folder of frames, without decoding pixels.

    ``num_frames`` comes from the container when it stores it (mp4, avi), else packets are counted
    (mkv, webm, gif); ``fps`` only applies to folders/images (default 30).
    """
    p = _resolve(path)
    images = _images_of(p)
    if images is not None:
        info = _probe_image(images[0], float(fps or DEFAULT_FOLDER_FPS), len(images))
        info.path = str(p)
        return info
    with _open(p) as container:
        stream = _video_stream(container, p)
        rate = _stream_fps(stream)
        num_frames = stream.frames if stream.frames and stream.frames > 0 else _count_packets(container, stream)
        duration = _stream_duration(container, stream)
        codec = stream.codec_context.name
        width, height = stream.codec_context.width, stream.codec_context.height
    if num_frames == 0:
        raise VideoError(f"{p}: the video stream has 0 frames (an empty or aborted recording); {_FIX}.")
    if not width or not height:
        raise VideoError(f"{p}: the video stream has no frame size ({codec}); {_FIX}.")
    return VideoInfo(str(p), width, height, rate, num_frames, duration or num_frames / rate, codec=codec)


# ----------------------------------------------------------------------------------------------
# frame selection


class _Selection:
    """Which source indices to keep: every ``stride``-th, capped at ``max_frames``, or explicit ``indices``."""

    def __init__(self, stride: int, max_frames: int | None, indices: Sequence[int] | None) -> None:
        if stride < 1:
            raise ValueError(f"stride must be >= 1, got {stride}")
        if max_frames is not None and max_frames < 1:
            raise ValueError(f"max_frames must be >= 1 or None, got {max_frames}")
        self.stride, self.max_frames = int(stride), max_frames
        self.requested: list[int] | None = None
        self.wanted: set[int] | None = None
        if indices is not None:
            if stride != 1:
                raise ValueError("pass either indices or stride, not both")
            req = [int(i) for i in indices]
            if not req:
                raise ValueError("indices is empty; pass None to read every frame")
            if min(req) < 0:
                raise ValueError(f"indices must be >= 0 (source frame numbers), got {min(req)}")
            self.requested = req[:max_frames] if max_frames is not None else req
            self.wanted = set(self.requested)
            self.last = max(self.wanted)
        self.taken = 0

    def want(self, index: int) -> bool:
        if self.wanted is not None:
            return index in self.wanted
        return index % self.stride == 0 and (self.max_frames is None or self.taken < self.max_frames)

    def done(self, index: int) -> bool:
        """True once nothing after ``index`` is wanted, so decoding can stop early."""
        if self.wanted is not None:
            return index >= self.last
        return self.max_frames is not None and self.taken >= self.max_frames


# ----------------------------------------------------------------------------------------------
# decoding


class VideoReader:
    """Streams :class:`FrameItem` s of a video or folder, one frame in memory at a time.

    Made by :func:`iter_video`. The path is checked when it is made (so errors surface at the
    call, not at the first ``next``); the file is opened on each iteration and closed at the end,
    so the reader can be iterated again. After an iteration, ``truncated`` says whether the source
    ended early or had damaged packets, and ``frames_decoded`` how many source frames were seen.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        size: tuple[int, int] | None = DEFAULT_SIZE,
        stride: int = 1,
        max_frames: int | None = None,
        indices: Sequence[int] | None = None,
        *,
        keep_original: bool = False,
        fps: float | None = None,
        interpolation: str = "bicubic",
        check_end: bool = False,
    ) -> None:
        self.path = _resolve(path)
        self.size = _check_size(size)
        self.keep_original = keep_original
        self.check_end = check_end  # decode past the last wanted frame to the end, so `truncated` covers the file
        self.interpolation = _interpolation(interpolation)
        self._selection_args = (stride, max_frames, None if indices is None else tuple(indices))
        _Selection(*self._selection_args)  # validate now
        self._images = _images_of(self.path)
        if self._images is not None:
            self.fps = float(fps or DEFAULT_FOLDER_FPS)
            info = _probe_image(self._images[0], self.fps, len(self._images))
            self.original_size = (info.width, info.height)
        else:
            with _open(self.path) as container:
                stream = _video_stream(container, self.path)
                self.fps = _stream_fps(stream)
                self.original_size = (stream.codec_context.width, stream.codec_context.height)
        self.truncated = False
        self.frames_decoded = 0
        self.problems: list[str] = []
        self.selection = _Selection(*self._selection_args)

    def __iter__(self) -> Iterator[FrameItem]:
        self.truncated, self.frames_decoded, self.problems = False, 0, []
        self.selection = _Selection(*self._selection_args)
        if self._images is not None:
            yield from self._iter_images(self._images)
        else:
            yield from self._iter_video()

    # -- folders ---------------------------------------------------------------------------------

    def _iter_images(self, images: list[Path]) -> Iterator[FrameItem]:
        sel, reformatter = self.selection, VideoReformatter()
        for index, file in enumerate(images):
            self.frames_decoded = index + 1
            if not sel.want(index):
                if sel.done(index):
                    return
                continue
            original = _load_rgb(file)
            if (original.shape[1], original.shape[0]) != self.original_size:
                w, h = self.original_size
                raise VideoError(
                    f"{file}: is {original.shape[1]}x{original.shape[0]} but the first frame of "
                    f"{self.path} is {w}x{h}; all frames of a folder must have one size."
                )
            frame = original
            if self.size is not None and self.size != self.original_size:
                # The same swscale filter as for video files, so folders and mp4s give equal pixels.
                src = av.VideoFrame.from_ndarray(original, format="rgb24")
                frame = reformatter.reformat(
                    src, width=self.size[0], height=self.size[1], format="rgb24", interpolation=self.interpolation
                ).to_ndarray()
            sel.taken += 1
            yield FrameItem(index, index / self.fps, frame, original if self.keep_original else None)
            if sel.done(index):
                return

    # -- video files -----------------------------------------------------------------------------

    def _iter_video(self) -> Iterator[FrameItem]:
        sel = self.selection
        with _open(self.path) as container:
            stream = _video_stream(container, self.path)
            stream.thread_type = "AUTO"  # frame + slice threads: decoding is the other half of the cost
            time_base = stream.time_base
            start = stream.start_time or 0
            expected = stream.frames if stream.frames and stream.frames > 0 else None
            duration = _stream_duration(container, stream)
            scaler, full = VideoReformatter(), VideoReformatter()  # reused: one swscale context each
            width, height = self.size if self.size is not None else (None, None)
            index, last_time, finished = -1, None, False
            packets = container.demux(stream)
            while True:
                try:
                    packet = next(packets)
                except StopIteration:
                    finished = True
                    break
                except av.FFmpegError as err:  # demuxer hit the cut-off end of the file
                    self._damaged(f"demux: {err}")
                    finished = True
                    break
                try:
                    decoded = packet.decode()
                except av.FFmpegError as err:  # a damaged packet: skip it, keep what still decodes
                    self._damaged(f"decode at packet pts={packet.pts}: {err}")
                    continue
                for frame in decoded:
                    index += 1
                    self.frames_decoded = index + 1
                    if frame.pts is not None and time_base is not None:
                        last_time = float((frame.pts - start) * time_base)
                    else:
                        last_time = index / self.fps
                    if not sel.want(index):
                        if sel.done(index) and not self.check_end:
                            return
                        continue
                    small = scaler.reformat(
                        frame, width=width, height=height, format="rgb24", interpolation=self.interpolation
                    ).to_ndarray()
                    original = None
                    if self.keep_original:
                        original = (
                            small
                            if self.size is None
                            else full.reformat(frame, format="rgb24", interpolation=self.interpolation).to_ndarray()
                        )
                    sel.taken += 1
                    yield FrameItem(index, last_time, small, original)
                    if sel.done(index) and not self.check_end:
                        return
            if finished:
                decoded_count = index + 1
                if expected is not None and decoded_count < expected:
                    self._damaged(f"decoded {decoded_count} of the {expected} frames the header lists")
                elif expected is None and duration is not None and last_time is not None:
                    if duration - (last_time + 1 / self.fps) > 2 / self.fps:
                        self._damaged(f"frames end at {last_time:.2f}s but the stream lasts {duration:.2f}s")

    def _damaged(self, what: str) -> None:
        self.truncated = True
        self.problems.append(what)


def _load_rgb(file: Path) -> np.ndarray:
    """Decode one image to RGB uint8; 16-bit gray is scaled down rather than clipped."""
    try:
        with Image.open(file) as img:
            if img.mode.startswith("I;16") or img.mode == "I":
                gray = (np.asarray(img, dtype=np.uint32) >> 8).clip(0, 255).astype(np.uint8)
                return np.repeat(gray[:, :, None], 3, axis=2)
            return np.array(img.convert("RGB"))  # a writable copy, like the frames of video files
    except (OSError, ValueError) as err:
        raise VideoError(f"{file}: cannot read this image ({err}); replace or delete it.") from err


def iter_video(
    path: str | os.PathLike[str],
    size: tuple[int, int] | None = DEFAULT_SIZE,
    stride: int = 1,
    max_frames: int | None = None,
    indices: Sequence[int] | None = None,
    *,
    keep_original: bool = False,
    fps: float | None = None,
    interpolation: str = "bicubic",
    check_end: bool = False,
) -> VideoReader:
    """Stream frames as :class:`FrameItem` (index, timestamp, resized frame, original or None).

    Use this for long videos: only one frame is held at a time. ``indices`` are yielded in source
    order. See :func:`read_video` for the arguments; ``reader.truncated`` is set after iterating.
    ``check_end``: decode (without converting) to the end of the file after the last wanted frame, so
    ``truncated`` also reports a damaged end that no wanted frame reaches.
    """
    return VideoReader(
        path,
        size,
        stride,
        max_frames,
        indices,
        keep_original=keep_original,
        fps=fps,
        interpolation=interpolation,
        check_end=check_end,
    )


def read_video(
    path: str | os.PathLike[str],
    size: tuple[int, int] | None = DEFAULT_SIZE,
    stride: int = 1,
    max_frames: int | None = None,
    indices: Sequence[int] | None = None,
    *,
    keep_original: bool = False,
    fps: float | None = None,
    interpolation: str = "bicubic",
) -> Video:
    """Decode a video file, folder of frames or image into RGB frames resized to ``size`` (w, h).

    - ``size=None`` keeps the source size. Resizing happens in swscale while decoding (bicubic).
    - ``stride``/``max_frames`` take every ``stride``-th frame from 0, at most ``max_frames``;
      ``indices`` takes those source frames instead (any order, repeats allowed; returned in that
      order). Decoding stops after the last frame needed.
    - ``keep_original`` also returns the full-size frames (for drawing annotated videos).
    - ``fps`` is the frame rate of a folder of frames (default 30); video files use their own.

    Raises :class:`VideoError` for missing, unreadable, empty or video-less input, and when no
    frame decodes. A truncated file whose first frames decode returns them with ``truncated=True``.
    """
    reader = iter_video(
        path, size, stride, max_frames, indices, keep_original=keep_original, fps=fps, interpolation=interpolation
    )
    items = list(reader)
    if not items:
        if reader.truncated:
            got = (
                "no frame could be decoded"
                if reader.frames_decoded == 0
                else (f"only its first {reader.frames_decoded} frames decode, none of those requested")
            )
            raise VideoError(
                f"{reader.path}: {got} ({'; '.join(reader.problems)}). The file is truncated or corrupt; {_FIX}."
            )
        if reader.frames_decoded == 0:
            raise VideoError(f"{reader.path}: the video has 0 frames (an empty or aborted recording); {_FIX}.")
        raise VideoError(
            f"{reader.path}: none of the requested frames exist (the video has "
            f"{reader.frames_decoded} frames); ask for indices below {reader.frames_decoded}."
        )
    sel = reader.selection
    if sel.requested is not None:
        by_index = {item.index: item for item in items}
        missing = sorted({i for i in sel.requested if i not in by_index})
        if missing and not reader.truncated:
            raise VideoError(
                f"{reader.path}: frames {missing[:10]} do not exist (the video has "
                f"{reader.frames_decoded} frames); ask for indices below {reader.frames_decoded}."
            )
        items = [by_index[i] for i in sel.requested if i in by_index]
    frames = np.stack([item.frame for item in items])
    original = None
    if keep_original:
        original = frames if reader.size is None else np.stack([item.original for item in items])
    return Video(
        frames=frames,
        indices=np.array([item.index for item in items], dtype=np.int64),
        timestamps=np.array([item.timestamp for item in items], dtype=np.float64),
        original_size=reader.original_size,
        fps=reader.fps,
        truncated=reader.truncated,
        original_frames=original,
        path=str(reader.path),
    )


# ----------------------------------------------------------------------------------------------
# writing


def _as_rgb(frame: np.ndarray, i: int) -> np.ndarray:
    arr = np.asarray(frame)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3 or arr.shape[2] not in (1, 3, 4) or arr.dtype != np.uint8:
        raise ValueError(f"frame {i}: expected an HxWx3 uint8 array, got shape {arr.shape} dtype {arr.dtype}")
    if arr.shape[2] == 1:
        arr = np.repeat(arr, 3, axis=2)
    return np.ascontiguousarray(arr[:, :, :3])


def _pad_even(arr: np.ndarray) -> np.ndarray:
    """yuv420p needs even sides: repeat the last row/column (keeps every pixel and box coordinate)."""
    h, w = arr.shape[:2]
    if h % 2 == 0 and w % 2 == 0:
        return arr
    return np.pad(arr, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")


def _gif_frame(arr: np.ndarray) -> av.VideoFrame:
    """Quantize with PIL to a per-frame palette: far better colours than swscale's fixed rgb8 palette."""
    quant = Image.fromarray(arr).quantize(256, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE)
    palette = np.zeros((256, 4), dtype=np.uint8)
    rgb = np.asarray(quant.getpalette() or [], dtype=np.uint8).reshape(-1, 3)[:256]
    palette[:, 0] = 255  # ARGB, opaque
    palette[: len(rgb), 1:] = rgb
    return av.VideoFrame.from_ndarray((np.asarray(quant), palette), format="pal8")


def _add_stream(
    container: av.container.OutputContainer, codec: str, rate: Fraction, width: int, height: int, crf: int
) -> av.video.stream.VideoStream:
    stream = container.add_stream(codec, rate=rate)
    stream.width, stream.height = width, height
    if codec == "gif":
        stream.pix_fmt = "pal8"
    else:
        stream.pix_fmt = "yuv420p"
        if codec == "libx264":
            stream.options = {"crf": str(crf), "preset": "veryfast"}
        else:  # mpeg4: fixed quantizer 2 (high quality) instead of the low default bit rate
            stream.codec_context.qscale = True
            stream.codec_context.global_quality = 2 * 118  # FF_QP2LAMBDA
    return stream


# Time base of frames written with their own times (`write_video(..., timed=True)`): milliseconds, which every
# container and both encoders (mpeg4 allows denominators up to 65535) take.
_TIMED_BASE = Fraction(1, 1000)


def write_video(
    path: str | os.PathLike[str],
    frames: Iterable[np.ndarray] | Iterable[tuple[np.ndarray, float]],
    fps: float,
    *,
    codec: str | None = None,
    crf: int = 18,
    timed: bool = False,
) -> int:
    """Write HxWx3 uint8 RGB frames to ``.mp4``/``.mov``/``.mkv`` (H.264, yuv420p) or ``.gif``.

    ``timed=True``: ``frames`` yields ``(frame, seconds)`` pairs and each frame is written at its own time
    (millisecond precision, kept increasing), so a variable-frame-rate source is not retimed to ``fps``, which then
    only names the average rate. GIFs are written at ``fps`` either way.

    Frames are streamed (any iterable). Odd sides are padded by one edge pixel because yuv420p
    needs even sizes. H.264 falls back to the ``mpeg4`` codec when this PyAV build lacks libx264;
    ``codec`` forces one. The file is written next to its destination under a temporary name and
    moved into place at the end, so an interrupted write never leaves a half file. Returns the
    number of frames written.
    """
    dest = Path(path)
    ext = dest.suffix.lower()
    if ext not in _WRITE_FORMATS:
        raise VideoError(f"{dest}: cannot write '{ext}' files; use one of {', '.join(_WRITE_FORMATS)}.")
    if not fps or fps <= 0:
        raise ValueError(f"fps must be > 0, got {fps}")
    if codec is None:
        codec = "gif" if ext == ".gif" else ("libx264" if "libx264" in av.codecs_available else "mpeg4")
    rate = Fraction(fps).limit_denominator(1001) if not isinstance(fps, Fraction) else fps
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.stem}.{uuid.uuid4().hex[:8]}.tmp{dest.suffix}")
    count = 0
    container = av.open(str(tmp), mode="w", format=_WRITE_FORMATS[ext])
    try:
        stream = None
        first_shape: tuple[int, ...] = ()
        last_pts = -1
        for i, item in enumerate(frames):
            frame, seconds = item if timed else (item, None)
            arr = _as_rgb(frame, i)
            if stream is None:
                first_shape = arr.shape
                h, w = arr.shape[:2] if codec == "gif" else _pad_even(arr).shape[:2]
                stream = _add_stream(container, codec, rate, w, h, crf)
                if timed and codec != "gif":
                    stream.codec_context.time_base = _TIMED_BASE
            elif arr.shape != first_shape:
                raise ValueError(
                    f"frame {i} is {arr.shape[1]}x{arr.shape[0]} but frame 0 is "
                    f"{first_shape[1]}x{first_shape[0]}; resize frames to one size before writing"
                )
            vframe = _gif_frame(arr) if codec == "gif" else av.VideoFrame.from_ndarray(_pad_even(arr), format="rgb24")
            if timed and codec != "gif":
                pts = max(last_pts + 1, round(float(seconds) / _TIMED_BASE))
                vframe.pts, vframe.time_base, last_pts = pts, _TIMED_BASE, pts
            else:
                vframe.pts = i
                vframe.time_base = 1 / rate
            for packet in stream.encode(vframe):
                container.mux(packet)
            count += 1
        if stream is None:
            raise VideoError(f"{dest}: no frames to write; pass at least one HxWx3 uint8 frame.")
        for packet in stream.encode():
            container.mux(packet)
        container.close()
        os.replace(tmp, dest)
    except BaseException:
        container.close()
        tmp.unlink(missing_ok=True)
        raise
    return count


# ----------------------------------------------------------------------------------------------
# drawing

Color = tuple[int, int, int] | str


def draw_boxes(
    frame: np.ndarray,
    boxes: Sequence[Sequence[float] | None],
    colors: Color | Sequence[Color],
    labels: Sequence[str | None] | None = None,
    thickness: int = 2,
    *,
    normalized: bool = False,
) -> np.ndarray:
    """Draw ``[x1, y1, x2, y2]`` boxes (pixels, or 0..1 with ``normalized=True``) on a copy of ``frame``.

    One colour for all boxes or one per box (RGB tuple or a PIL colour name). ``None`` or NaN boxes
    (object absent) are skipped. Used for the annotated ``track.mp4``, so it draws on full-size frames.
    """
    image = Image.fromarray(np.ascontiguousarray(frame[:, :, :3]))
    draw = ImageDraw.Draw(image)
    w, h = image.size
    if isinstance(colors, str) or (len(colors) == 3 and all(isinstance(c, (int, np.integer)) for c in colors)):
        palette: list[Color] = [colors] * len(boxes)  # type: ignore[list-item]
    else:
        palette = list(colors)  # type: ignore[arg-type]
        if len(palette) < len(boxes):
            raise ValueError(f"got {len(boxes)} boxes but {len(palette)} colors")
    font = ImageFont.load_default()
    for k, box in enumerate(boxes):
        if box is None or len(box) != 4 or not np.all(np.isfinite(np.asarray(box, dtype=float))):
            continue
        x1, y1, x2, y2 = (float(v) for v in box)
        if normalized:
            x1, x2, y1, y2 = x1 * w, x2 * w, y1 * h, y2 * h
        x1, x2 = sorted((min(max(x1, 0), w - 1), min(max(x2, 0), w - 1)))
        y1, y2 = sorted((min(max(y1, 0), h - 1), min(max(y2, 0), h - 1)))
        color = palette[k]
        draw.rectangle((x1, y1, x2, y2), outline=color, width=max(1, int(thickness)))
        label = labels[k] if labels is not None and k < len(labels) else None
        if label:
            left, top, right, bottom = draw.textbbox((0, 0), label, font=font)
            tw, th = right - left, bottom - top
            ty = y1 - th - 4 if y1 - th - 4 >= 0 else y1 + thickness
            draw.rectangle((x1, ty, x1 + tw + 4, ty + th + 4), fill=color)
            draw.text((x1 + 2 - left, ty + 2 - top), label, fill=_contrast(color), font=font)
    return np.asarray(image)


def _contrast(color: Color) -> tuple[int, int, int]:
    """Black or white text, whichever reads better on ``color``."""
    from PIL import ImageColor

    r, g, b = ImageColor.getrgb(color)[:3] if isinstance(color, str) else color[:3]
    return (0, 0, 0) if 0.299 * r + 0.587 * g + 0.114 * b > 140 else (255, 255, 255)
