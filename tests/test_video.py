"""processing/video.py against small videos generated here with PyAV: a red square moves 1 px a frame
to the right (and 1 px every 2 frames down), so each frame's content says which source frame it is."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from elysium.processing.video import (
    FrameItem,
    VideoError,
    draw_boxes,
    iter_video,
    probe_video,
    read_video,
    write_video,
)

W, H, N, FPS, SQ = 64, 48, 40, 25, 8
RED = (255, 60, 40)  # bright on a dark background: the square shows in luma, which yuv420p keeps at full size
BG = (10, 20, 60)


def square_xy(i: int) -> tuple[int, int]:
    """Top-left corner of the square in source frame ``i``."""
    return 2 + i, 4 + i // 2


def make_frame(i: int, w: int = W, h: int = H) -> np.ndarray:
    frame = np.empty((h, w, 3), np.uint8)
    frame[:] = BG
    x, y = square_xy(i)
    frame[y : y + SQ, x : x + SQ] = RED
    return frame


def expected_center(i: int, size: tuple[int, int] | None = None) -> tuple[float, float]:
    """Square centre in a frame resized to ``size`` (pixel-centre convention, as swscale uses)."""
    x, y = square_xy(i)
    cx, cy = x + (SQ - 1) / 2, y + (SQ - 1) / 2
    if size is None:
        return cx, cy
    sx, sy = size[0] / W, size[1] / H
    return (cx + 0.5) * sx - 0.5, (cy + 0.5) * sy - 0.5


def luma(rgb: np.ndarray | tuple[int, int, int]) -> np.ndarray:
    return np.asarray(rgb, dtype=float) @ np.array([0.299, 0.587, 0.114])


def centroid(frame: np.ndarray) -> tuple[float, float]:
    """Luma-weighted centre of the square (chroma is subsampled by the codecs, luma is not)."""
    weight = np.clip(luma(frame) - luma(BG) - 10, 0, None)
    assert weight.sum() > 0, "no square found"
    ys, xs = np.indices(weight.shape)
    return float((xs * weight).sum() / weight.sum()), float((ys * weight).sum() / weight.sum())


def assert_square_at(frame: np.ndarray, i: int, size: tuple[int, int] | None, tol: float) -> None:
    cx, cy = centroid(frame)
    ex, ey = expected_center(i, size)
    assert abs(cx - ex) <= tol and abs(cy - ey) <= tol, f"frame {i}: square at ({cx:.2f},{cy:.2f}), want ({ex},{ey})"


def encode(
    path: Path,
    codec: str,
    pix_fmt: str = "yuv420p",
    n: int = N,
    options: dict | None = None,
    container_options: dict | None = None,
) -> Path:
    """Write the moving-square test video with PyAV directly (independent of write_video)."""
    with av.open(str(path), "w", options=container_options or {}) as out:
        stream = out.add_stream(codec, rate=FPS)
        stream.width, stream.height, stream.pix_fmt = W, H, pix_fmt
        stream.options = options or {}
        if codec == "mpeg4":  # fixed high quality (-q:v 2); the default bit rate smears 1 px motion
            stream.codec_context.qscale = True
            stream.codec_context.global_quality = 2 * 118
        for i in range(n):
            arr = make_frame(i)
            if pix_fmt == "pal8":
                quant = Image.fromarray(arr).quantize(4, dither=Image.Dither.NONE)
                pal = np.zeros((256, 4), np.uint8)
                pal[:, 0] = 255
                rgb = np.asarray(quant.getpalette(), np.uint8).reshape(-1, 3)[:256]
                pal[: len(rgb), 1:] = rgb
                frame = av.VideoFrame.from_ndarray((np.asarray(quant), pal), format="pal8")
            else:
                frame = av.VideoFrame.from_ndarray(arr, format="rgb24")
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("videos")
    return {
        "mp4": encode(d / "square.mp4", "libx264", options={"crf": "12"}),
        "webm": encode(d / "square.webm", "libvpx-vp9", options={"crf": "10", "b": "0", "deadline": "realtime"}),
        "avi": encode(d / "square.avi", "mpeg4"),
        "gif": encode(d / "square.gif", "gif", pix_fmt="pal8"),
        "mkv_gray": encode(d / "gray.mkv", "ffv1", pix_fmt="gray"),
    }


# ------------------------------------------------------------------------------------------------
# reading


@pytest.mark.parametrize("kind", ["mp4", "webm", "avi", "gif"])
def test_read_resizes_to_336_and_keeps_content(videos: dict[str, Path], kind: str) -> None:
    video = read_video(videos[kind])
    assert video.frames.shape == (N, 336, 336, 3) and video.frames.dtype == np.uint8
    assert video.original_size == (W, H) and video.fps == pytest.approx(FPS)
    assert not video.truncated and video.original_frames is None
    np.testing.assert_array_equal(video.indices, np.arange(N))
    assert np.all(np.diff(video.timestamps) > 0)
    np.testing.assert_allclose(video.timestamps, np.arange(N) / FPS, atol=1e-3)
    for i, frame in enumerate(video.frames):
        assert_square_at(frame, i, (336, 336), tol=2.0)
    # Colours survive the YUV -> RGB conversion (RGB order, not BGR): background and square centre.
    assert np.abs(video.frames[:, -5:, -5:].reshape(-1, 3).mean(0) - BG).max() < 8
    cx, cy = (round(v) for v in expected_center(N // 2, (336, 336)))
    assert np.abs(video.frames[N // 2, cy, cx].astype(int) - RED).max() < 25


@pytest.mark.parametrize("kind", ["mp4", "webm", "avi", "gif"])
def test_probe(videos: dict[str, Path], kind: str) -> None:
    info = probe_video(videos[kind])
    assert (info.width, info.height, info.num_frames) == (W, H, N)  # webm/gif: counted, not in the header
    assert info.fps == pytest.approx(FPS)
    assert info.duration == pytest.approx(N / FPS, abs=0.05)
    assert info.path == str(videos[kind])


def test_full_size_frames_are_the_source_frames(videos: dict[str, Path]) -> None:
    video = read_video(videos["mp4"], size=None)
    assert video.frames.shape == (N, H, W, 3)
    for i, frame in enumerate(video.frames):  # 1 px motion per frame, so 0.5 px pins the frame index
        assert_square_at(frame, i, None, tol=0.5)


def test_non_square_size_is_width_height(videos: dict[str, Path]) -> None:
    video = read_video(videos["mp4"], size=(100, 30), max_frames=3, interpolation="bilinear")
    assert video.frames.shape == (3, 30, 100, 3)
    for i, frame in enumerate(video.frames):
        assert_square_at(frame, i, (100, 30), tol=2.0)


def test_stride_and_max_frames_pick_the_right_frames(videos: dict[str, Path]) -> None:
    video = read_video(videos["webm"], size=None, stride=3, max_frames=5)
    np.testing.assert_array_equal(video.indices, [0, 3, 6, 9, 12])
    np.testing.assert_allclose(video.timestamps, video.indices / FPS, atol=1e-3)
    for i, frame in zip(video.indices, video.frames):
        assert_square_at(frame, int(i), None, tol=0.5)
    tail = read_video(videos["mp4"], size=None, stride=7)
    np.testing.assert_array_equal(tail.indices, [0, 7, 14, 21, 28, 35])
    assert_square_at(tail.frames[-1], 35, None, tol=0.5)


def test_indices_any_order_with_repeats(videos: dict[str, Path]) -> None:
    wanted = [30, 5, 5, 17, 39]
    video = read_video(videos["avi"], size=(32, 24), indices=np.array(wanted), keep_original=True)
    np.testing.assert_array_equal(video.indices, wanted)
    np.testing.assert_allclose(video.timestamps, np.array(wanted) / FPS, atol=1e-3)
    assert video.original_frames is not None and video.original_frames.shape == (5, H, W, 3)
    for i, small, full in zip(wanted, video.frames, video.original_frames):
        assert_square_at(full, i, None, tol=0.5)
        assert_square_at(small, i, (32, 24), tol=1.0)


def test_indices_past_the_end_raise(videos: dict[str, Path]) -> None:
    with pytest.raises(VideoError, match=r"\[40, 55\].*40 frames"):
        read_video(videos["mp4"], indices=[3, 40, 55])
    with pytest.raises(ValueError, match="either indices or stride"):
        read_video(videos["mp4"], indices=[1], stride=2)


def test_iter_video_streams_and_can_stop_early(videos: dict[str, Path]) -> None:
    reader = iter_video(videos["mp4"], size=(32, 24), keep_original=True)
    assert reader.original_size == (W, H) and reader.fps == pytest.approx(FPS)
    seen = []
    for item in reader:
        assert isinstance(item, FrameItem)
        assert item.frame.shape == (24, 32, 3) and item.original is not None and item.original.shape == (H, W, 3)
        assert_square_at(item.original, item.index, None, tol=0.5)
        assert item.timestamp == pytest.approx(item.index / FPS, abs=1e-3)
        seen.append(item.index)
        if len(seen) == 4:
            break
    assert seen == [0, 1, 2, 3]
    # Re-iterable (the file is reopened), and the whole pass ends untruncated.
    assert [item.index for item in reader] == list(range(N)) and not reader.truncated
    assert [item.original for item in iter_video(videos["gif"], max_frames=2)] == [None, None]


def test_gray_video_becomes_rgb(videos: dict[str, Path]) -> None:
    video = read_video(videos["mkv_gray"], size=(32, 24))
    assert video.frames.shape == (N, 24, 32, 3)
    frames = video.frames.astype(int)
    assert np.abs(frames[..., 0] - frames[..., 1]).max() <= 1 and np.abs(frames[..., 1] - frames[..., 2]).max() <= 1
    assert probe_video(videos["mkv_gray"]).num_frames == N  # mkv has no count in its header


# ------------------------------------------------------------------------------------------------
# folders of frames


def test_folder_natural_order_and_fps(tmp_path: Path) -> None:
    for i in range(12):  # 1.png .. 12.png: plain string sorting would put 10 and 11 after 1
        Image.fromarray(make_frame(i)).save(tmp_path / f"{i + 1}.png")
    (tmp_path / "notes.txt").write_text("not a frame")
    video = read_video(tmp_path, size=(128, 96), fps=10)
    assert video.frames.shape == (12, 96, 128, 3) and video.original_size == (W, H)
    np.testing.assert_allclose(video.timestamps, np.arange(12) / 10)
    for i, frame in enumerate(video.frames):
        assert_square_at(frame, i, (128, 96), tol=1.0)
    info = probe_video(tmp_path)
    assert (info.num_frames, info.fps, info.width, info.height) == (12, 30.0, W, H)
    picked = read_video(tmp_path, size=None, indices=[11, 2])
    assert_square_at(picked.frames[0], 11, None, tol=0.01)
    assert_square_at(picked.frames[1], 2, None, tol=0.01)


def test_folder_gray_rgba_palette_images_become_rgb(tmp_path: Path) -> None:
    rgb = make_frame(0)
    Image.fromarray(rgb).convert("L").save(tmp_path / "frame_01.png")
    Image.fromarray(rgb).convert("RGBA").save(tmp_path / "frame_02.png")
    Image.fromarray(rgb).quantize(8).save(tmp_path / "frame_03.png")
    Image.fromarray(rgb).save(tmp_path / "frame_04.jpg", quality=95)
    video = read_video(tmp_path, size=None)
    assert video.frames.shape == (4, H, W, 3) and video.frames.dtype == np.uint8
    gray = video.frames[0].astype(int)
    assert (gray[..., 0] == gray[..., 1]).all() and (gray[..., 1] == gray[..., 2]).all()
    np.testing.assert_array_equal(video.frames[1], rgb)
    for frame in video.frames[2:]:
        assert_square_at(frame, 0, None, tol=0.5)


def test_corrupt_image_in_folder_names_the_file(tmp_path: Path) -> None:
    Image.fromarray(make_frame(0)).save(tmp_path / "1.png")
    (tmp_path / "2.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    with pytest.raises(VideoError, match="2.jpg: cannot read this image"):
        read_video(tmp_path)
    assert len(read_video(tmp_path, max_frames=1)) == 1  # frames before the bad one are fine


def test_empty_folder_and_mixed_sizes(tmp_path: Path) -> None:
    with pytest.raises(VideoError, match="no images") as err:
        read_video(tmp_path)
    assert str(tmp_path) in str(err.value)
    Image.fromarray(make_frame(0)).save(tmp_path / "1.png")
    Image.fromarray(make_frame(1, w=32, h=32)).save(tmp_path / "2.png")
    with pytest.raises(VideoError, match="one size"):
        read_video(tmp_path)


# ------------------------------------------------------------------------------------------------
# broken input


def test_truncated_webm_returns_the_decodable_frames(videos: dict[str, Path], tmp_path: Path) -> None:
    data = videos["webm"].read_bytes()
    cut = tmp_path / "cut.webm"
    cut.write_bytes(data[: len(data) // 2])
    video = read_video(cut, size=None)
    assert video.truncated
    assert 5 <= len(video) < N
    np.testing.assert_array_equal(video.indices, np.arange(len(video)))
    for i, frame in enumerate(video.frames):
        assert_square_at(frame, i, None, tol=0.5)
    reader = iter_video(cut)
    assert len(list(reader)) == len(video) and reader.truncated and reader.problems
    # Frames before the cut are still served without the flag: the reader never reached the damage.
    assert not read_video(cut, max_frames=3).truncated


def test_truncated_mp4_without_index_raises_clearly(videos: dict[str, Path], tmp_path: Path) -> None:
    data = videos["mp4"].read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])  # the moov index is at the end: nothing can be decoded
    with pytest.raises(VideoError, match="truncated") as err:
        read_video(cut)
    assert str(cut) in str(err.value) and "ffmpeg" in str(err.value)


def test_truncated_faststart_mp4_is_flagged(tmp_path: Path) -> None:
    path = encode(tmp_path / "fast.mp4", "libx264", options={"crf": "12"}, container_options={"movflags": "faststart"})
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 4 // 5])  # the index is at the front: the cut loses the last frames
    video = read_video(path, size=None)
    assert video.truncated and 0 < len(video) < N
    for i, frame in zip(video.indices, video.frames):
        assert_square_at(frame, int(i), None, tol=0.5)


def test_text_file_named_mp4(tmp_path: Path) -> None:
    fake = tmp_path / "clip.mp4"
    fake.write_text("this is not a video\n" * 20)
    for call in (read_video, probe_video, iter_video):
        with pytest.raises(VideoError) as err:
            call(fake)
        assert str(fake) in str(err.value) and "not a video" in str(err.value)
    assert issubclass(VideoError, ValueError)


def test_missing_path(tmp_path: Path) -> None:
    with pytest.raises(VideoError, match="no such file") as err:
        read_video(tmp_path / "nope.mp4")
    assert "nope.mp4" in str(err.value)


def test_no_video_stream(tmp_path: Path) -> None:
    path = tmp_path / "audio.mp4"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("aac", rate=16000)
        for k in range(4):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            frame.sample_rate, frame.pts = 16000, k * 1024
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    with pytest.raises(VideoError, match="no video stream.*audio"):
        read_video(path)


def test_empty_video(tmp_path: Path) -> None:
    path = tmp_path / "empty.avi"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("mpeg4", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
        out.start_encoding()
    for call in (read_video, probe_video):
        with pytest.raises(VideoError, match="0 frames") as err:
            call(path)
        assert str(path) in str(err.value)


# ------------------------------------------------------------------------------------------------
# writing and drawing


@pytest.mark.parametrize("name,codec", [("out.mp4", None), ("out.mp4", "mpeg4"), ("out.mkv", None)])
def test_write_video_round_trip_pads_odd_sizes(tmp_path: Path, name: str, codec: str | None) -> None:
    frames = [make_frame(i, w=W - 1, h=H - 1) for i in range(N)]  # 63x47: odd sides are padded to 64x48
    dest = tmp_path / name
    assert write_video(dest, iter(frames), fps=FPS, codec=codec) == N
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]  # no temp file left behind
    video = read_video(dest, size=None)
    assert len(video) == N and video.original_size == (W, H) and video.fps == pytest.approx(FPS)
    np.testing.assert_allclose(video.timestamps, np.arange(N) / FPS, atol=1e-3)
    back = video.frames[:, : H - 1, : W - 1].astype(int)
    assert np.abs(back - np.stack(frames)).mean() < 3
    for i, frame in enumerate(video.frames):
        assert_square_at(frame, i, None, tol=0.5)


def test_write_gif_round_trip(tmp_path: Path) -> None:
    frames = [make_frame(i) for i in range(10)]
    write_video(tmp_path / "out.gif", frames, fps=FPS)
    video = read_video(tmp_path / "out.gif", size=None)
    assert len(video) == 10
    np.testing.assert_array_equal(video.frames, np.stack(frames))  # 2 colours: the palette is exact
    np.testing.assert_allclose(video.timestamps, np.arange(10) / FPS, atol=1e-3)


def test_interrupted_write_leaves_no_file_and_keeps_the_old_one(tmp_path: Path) -> None:
    dest = tmp_path / "track.mp4"
    write_video(dest, [make_frame(0)] * 3, fps=FPS)
    before = dest.read_bytes()

    def frames_then_crash():
        yield make_frame(1)
        yield make_frame(2)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_video(dest, frames_then_crash(), fps=FPS)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["track.mp4"] and dest.read_bytes() == before
    with pytest.raises(VideoError, match="no frames"):
        write_video(tmp_path / "none.mp4", [], fps=FPS)
    with pytest.raises(ValueError, match="frame 1 is"):
        write_video(tmp_path / "bad.mp4", [make_frame(0), make_frame(0, w=32)], fps=FPS)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["track.mp4"]


def test_draw_boxes() -> None:
    frame = np.zeros((48, 64, 3), np.uint8)
    out = draw_boxes(
        frame,
        [[10, 20, 30, 40], None, [0.5, 0.5, 0.9, 0.9]],
        [(255, 0, 0), (0, 0, 255), "lime"],
        labels=["car", None, None],
        thickness=2,
        normalized=False,
    )
    assert frame.max() == 0  # the input is not drawn on
    assert tuple(out[30, 10]) == (255, 0, 0) and tuple(out[30, 11]) == (255, 0, 0)  # left edge, 2 px thick
    assert out[30, 12].max() == 0 and out[30, 20].max() == 0  # inside stays empty
    assert tuple(out[40, 20]) == (255, 0, 0) and tuple(out[20, 30]) == (255, 0, 0)  # bottom and right edges
    assert (out[:20, 10:40] == (255, 0, 0)).all(axis=-1).sum() > 20  # the label's filled tag sits above the box
    assert not (out == (0, 0, 255)).all(axis=-1).any()  # the None box draws nothing
    # The third box is tiny in pixels (0.5..0.9 px) unless normalized: then it spans the lower right.
    norm = draw_boxes(frame, [[0.5, 0.5, 0.9, 0.9]], "lime", normalized=True)
    assert tuple(norm[30, 32]) == (0, 255, 0) and tuple(norm[43, 57]) == (0, 255, 0) and norm[36, 45].max() == 0
