"""`elysium track`, `elysium describe` and `elysium ground`: the model on a video or image from the command line.

`track` streams the video once: frames are decoded at the model's input size *and* at full size, tracked clip by
clip, and each frame is drawn and encoded into `track.mp4` as soon as its box is known, so memory stays flat on
long videos. Input is validated before the (slow) model load, so a typo fails in a second, not a minute.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from elysium.inference.default_model import DEFAULT_MODEL
from elysium.inference.threads import add_thread_argument, use_threads
from elysium.utils.errors import UserError, check_at_least, check_out_folder

GIVEN_COLOR = (40, 220, 90)  # boxes read from the model
REPAIRED_COLOR = (255, 150, 0)  # boxes carried over malformed output


def parse_box_argument(text: str, flag: str = "--box") -> list[float]:
    """`"x1,y1,x2,y2"` (pixels) -> four floats, or a UserError saying how to write it."""
    parts = [part for part in text.replace(" ", ",").split(",") if part]
    try:
        values = [float(part) for part in parts]
    except ValueError:
        raise UserError(f"{flag} {text!r} is not four numbers; write it as X1,Y1,X2,Y2 in pixels.") from None
    if len(values) != 4:
        raise UserError(f"{flag} {text!r} has {len(values)} numbers; write it as X1,Y1,X2,Y2 in pixels.")
    return values


def _check_expression(expression: str | None) -> str | None:
    if expression is not None and not expression.strip():
        raise UserError("--expression is empty; say which object to follow, e.g. --expression 'the red car'.")
    if expression is not None:
        try:  # bytes that are not UTF-8 reach Python as lone surrogates, which no tokenizer can encode
            expression.encode("utf-8")
        except UnicodeEncodeError:
            raise UserError(
                "--expression is not valid UTF-8 text; write it in UTF-8 (check the terminal's or script's encoding)."
            ) from None
    return expression.strip() if expression is not None else None


def truncated_error(video: str, decoded: int, option: str = "--allow-truncated") -> UserError:
    """The one refusal `track` and `describe` give for a video whose end does not decode."""
    return UserError(
        f"{video} is truncated or damaged; only its first {decoded} frames decode. Nothing was saved; re-encode the "
        f"file, or pass {option} to use the frames that decode."
    )


# Temporary files `track_to_files` writes beside its results, named with the writing process's id so a later run can
# tell those of a killed run (whose process is gone) from those of a run still going.
_TEMP_PREFIX = ".elysium-track."


def _process_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def remove_stale_temps(out_dir: Path) -> list[Path]:
    """Delete the temporary files a killed `track` left in `out_dir` (ours only: our prefix and a dead writer's id),
    including the ones `write_video` made inside them; returns what was removed."""
    removed = []
    if not out_dir.is_dir():
        return removed
    for entry in out_dir.iterdir():
        name = entry.name.lstrip(".")
        if not name.startswith(_TEMP_PREFIX.lstrip(".")) or not entry.is_file():
            continue
        try:
            pid = int(name[len(_TEMP_PREFIX) - 1 :].split(".")[0])
        except ValueError:
            continue
        if not _process_alive(pid):
            entry.unlink(missing_ok=True)
            removed.append(entry)
    return removed


def _publish_together(pairs: list[tuple[Path, Path]]) -> None:
    """Move finished temporaries into place: the old done-marker (the last target) goes first, the new one last,
    so a reader that sees the marker sees the whole set, and one that does not treats the run as unfinished."""
    marker = pairs[-1][1]
    marker.unlink(missing_ok=True)
    for temp, target in pairs:
        os.replace(temp, target)


def _expected_frames(path: str, stride: int, max_frames: int | None) -> int | None:
    from elysium.processing.video import VideoError, probe_video

    try:
        count = math.ceil(probe_video(path).num_frames / stride)
    except VideoError:
        return None
    return min(count, max_frames) if max_frames else count


def track_to_files(
    tracker: Any,
    video: str,
    out_dir: Path,
    *,
    box: list[float] | None = None,
    expression: str | None = None,
    stride: int = 1,
    max_frames: int | None = None,
    allow_truncated: bool = False,
    quiet: bool = False,
    extra: dict[str, Any] | None = None,
) -> tuple[Any, dict[str, Any], Path, Path]:
    """What `elysium track` does once the model is loaded: track, write `track.mp4` while tracking, then `track.json`.

    Both are written to temporary files and published together, `track.json` last: a folder with `track.mp4` but no
    `track.json` is an unfinished run. Temporaries a killed run left here are removed first. The annotated video
    keeps each frame's time in the source (a variable-frame-rate video is not retimed). `extra` is added to the
    json. Returns `(TrackResult, json data, json path, video path)`; `tracker.stats` holds the time split.
    """
    from tqdm.auto import tqdm

    from elysium.inference.tracker import TrackResult, VideoSource
    from elysium.processing.video import draw_boxes, write_video
    from elysium.utils.atomic import write_bytes_atomic

    source = VideoSource.from_path(video, tracker.model_size, stride, max_frames, keep_original=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(out_dir)
    temp = f"{_TEMP_PREFIX}{os.getpid()}.{uuid.uuid4().hex[:8]}"
    frames = []
    started = time.perf_counter()
    progress = tqdm(
        total=_expected_frames(video, stride, max_frames), unit="frame", desc="tracking", file=sys.stderr, disable=quiet
    )

    def annotated() -> Iterator[np.ndarray]:
        for _, emitted in tracker.iter_track([source], [box], [expression]):
            for frame, item in emitted:
                frames.append(frame)
                progress.update(1)
                color = REPAIRED_COLOR if frame.repaired else GIVEN_COLOR
                yield draw_boxes(item.original, [frame.box], color, [f"#{frame.index}"]), frame.time
        if source.truncated and not allow_truncated:
            raise truncated_error(video, len(frames))

    video_path, json_path = out_dir / "track.mp4", out_dir / "track.json"
    video_temp, json_temp = out_dir / f"{temp}.mp4", out_dir / f"{temp}.json"
    try:
        write_video(video_temp, annotated(), fps=source.fps / stride, timed=True)
    except BaseException:
        video_temp.unlink(missing_ok=True)
        raise
    finally:
        progress.close()
    elapsed = time.perf_counter() - started
    clips = max(1, math.ceil((len(frames) - 1) / (tracker.clip_len - 1)))
    result = TrackResult(
        frames, source.frame_size, source.fps, "rsot" if expression else "sot", clips, source.truncated, str(video)
    )
    data = result.to_dict()
    data.update(
        stride=stride,
        seconds=round(elapsed, 3),
        frames_per_second=round(len(frames) / elapsed, 3) if elapsed > 0 else None,
        initial_box=box,
        expression=expression,
        **(extra or {}),
    )
    try:
        write_bytes_atomic(json_temp, (json.dumps(data, indent=1) + "\n").encode("utf-8"))
        _publish_together([(video_temp, video_path), (json_temp, json_path)])
    finally:
        video_temp.unlink(missing_ok=True)
        json_temp.unlink(missing_ok=True)
    return result, data, json_path, video_path


def run_track(args: argparse.Namespace) -> int:
    from elysium.inference.loading import load_model_and_processor
    from elysium.inference.tracker import VideoSource
    from elysium.processing.boxes import check_box

    box = parse_box_argument(args.box) if args.box is not None else None
    expression = _check_expression(args.expression)
    check_at_least(
        [
            ("--stride", args.stride, 1),
            ("--max-frames", args.max_frames, 1),
            ("--clip-len", args.clip_len, 2),
            ("--max-new-tokens", args.max_new_tokens, 1),
        ]
    )
    out_dir = Path(args.out) if args.out else Path(f"{Path(args.video).stem}_track")
    check_out_folder(str(out_dir))
    # Open the video and check the box before loading the model: bad input fails fast.
    probe_source = VideoSource.from_path(args.video, (1, 1), args.stride, args.max_frames)
    if box is not None:
        check_box(box, probe_source.frame_size, what="--box")
    model, processor = load_model_and_processor(args.model, args.device, trust_remote_code=args.trust_remote_code)
    tracker = tracker_from_args(model, processor, args)
    result, data, json_path, video_path = track_to_files(
        tracker,
        args.video,
        out_dir,
        box=box,
        expression=expression,
        stride=args.stride,
        max_frames=args.max_frames,
        allow_truncated=args.allow_truncated,
        quiet=args.quiet,
        extra={"model": str(args.model or DEFAULT_MODEL)},
    )
    warning = " (the video is truncated: tracked the frames that decode)" if result.truncated else ""
    print(f"tracked {len(result.frames)} frames ({result.num_repaired} repaired) in {data['seconds']:.1f}s{warning}")
    print(f"wrote {json_path}")
    print(f"wrote {video_path}")
    return 0


def describe_video(
    tracker: Any,
    video: str,
    box: list[float],
    *,
    num_frames: int = 8,
    max_new_tokens: int = 64,
    allow_truncated: bool = False,
) -> str:
    """What `elysium describe` does once the model is loaded: describe the object at `box` (pixels of frame 0),
    shown `num_frames` frames spread evenly over the video, decoded at the model's input size. A truncated video is
    refused as `track` refuses it, unless `allow_truncated` (then the frames that decode are described)."""
    from elysium.processing.video import VideoError, iter_video, probe_video

    if num_frames < 1:
        raise UserError(f"--frames must be >= 1, got {num_frames}.")
    info = probe_video(video)
    count = max(1, min(info.num_frames, num_frames))
    indices = sorted(set(np.linspace(0, info.num_frames - 1, count).round().astype(int).tolist()))
    reader = iter_video(video, size=tracker.model_size, indices=indices, check_end=True)  # to the end, as track reads
    frames = [item.frame for item in reader]
    if reader.truncated and not allow_truncated:
        raise truncated_error(video, reader.frames_decoded)
    if not frames:
        raise VideoError(f"{video}: no frame decodes; re-encode the file or pass another one.")
    return tracker.describe(frames, box, frame_size=reader.original_size, max_new_tokens=max_new_tokens)


def run_describe(args: argparse.Namespace) -> int:
    from elysium.inference.loading import load_model_and_processor
    from elysium.inference.tracker import ElysiumTracker
    from elysium.processing.boxes import check_box
    from elysium.processing.video import probe_video

    box = parse_box_argument(args.box)
    check_at_least([("--frames", args.frames, 1), ("--max-new-tokens", args.max_new_tokens, 1)])
    info = probe_video(args.video)
    check_box(box, (info.width, info.height), what="--box")
    model, processor = load_model_and_processor(args.model, args.device, trust_remote_code=args.trust_remote_code)
    tracker = ElysiumTracker(model, processor, clip_len=max(2, args.frames))
    description = describe_video(
        tracker,
        args.video,
        box,
        num_frames=args.frames,
        max_new_tokens=args.max_new_tokens,
        allow_truncated=args.allow_truncated,
    )
    print(description)
    return 0


def run_ground(args: argparse.Namespace) -> int:
    from elysium.inference.loading import load_model_and_processor
    from elysium.inference.tracker import ElysiumTracker
    from elysium.processing.video import read_video

    expression = _check_expression(args.expression)
    image = read_video(args.image, size=None, max_frames=1)
    model, processor = load_model_and_processor(args.model, args.device, trust_remote_code=args.trust_remote_code)
    box = ElysiumTracker(model, processor).ground(image.frames[0], expression)
    if box is None:
        print("no box: the model's answer held no well-formed box", file=sys.stderr)
        return 1
    print(",".join(f"{value:.1f}" for value in box))
    return 0


def _model_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default=None, help="folder of a saved Elysium (default: the packaged elysium-tiny)")
    parser.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: cuda if present)")
    add_trust_argument(parser)


def add_trust_argument(parser: argparse.ArgumentParser) -> None:
    """`--trust-remote-code`: the one way a command runs code found in a model folder (its config's auto_map)."""
    parser.add_argument(
        "--trust-remote-code",
        action="store_true",
        help="run code the model folder ships (its config's auto_map) if its model type needs it; only for folders "
        "you trust (default: never; this package's own model type loads without it)",
    )


def _search_context(text: str) -> float | str | None:
    """`--search-context`: "model" (as the model trained), "none" (whole frames) or a factor >= 1."""
    word = text.strip().lower()
    if word in ("model", "none"):
        return None if word == "none" else "model"
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value >= 1:
        raise argparse.ArgumentTypeError(
            f"{text!r}: give 'model', 'none' (whole frames) or a factor >= 1 (the region holds the whole target)"
        )
    return value


def _views(text: str) -> int | str:
    """`--views`: "model" (the model's config's track_views) or a number of test-time views, 1 to len(VIEWS)."""
    from elysium.inference.tracker_settings import VIEWS

    if text.strip().lower() == "model":
        return "model"
    if not text.strip().isdigit() or not 1 <= int(text) <= len(VIEWS):
        raise argparse.ArgumentTypeError(
            f"{text!r}: give 'model' or a number of test-time views from 1 (none) to {len(VIEWS)}"
        )
    return int(text)


def _box_scale(text: str) -> float | str:
    """`--box-scale`: "model" (the model's config's track_box_scale) or a factor in (0, 4]."""
    from elysium.processing.boxes import check_box_scale

    if text.strip().lower() == "model":
        return "model"
    try:
        return check_box_scale(float(text), what="--box-scale")
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r}: give 'model' or a factor in (0, 4] the reported boxes are widened by (1: as answered)"
        ) from None


def add_search_arguments(parser: argparse.ArgumentParser) -> None:
    """How each clip is cut: `--search-context` (the square) and `--views` (test-time views of it); and how its
    boxes are reported: `--box-scale`."""
    parser.add_argument(
        "--search-context",
        type=_search_context,
        default="model",
        help="cut each clip to a square this many times the target's last box; 'none': whole frames "
        "(default: as the model was trained, its config's track_search_context)",
    )
    parser.add_argument(
        "--views",
        type=_views,
        default="model",
        help="test-time views of each square (the square, mirrored, shifted by half a patch, ...), their boxes "
        "combined frame by frame; each view is one more pass (default: the model's config's track_views, else 1)",
    )
    parser.add_argument(
        "--box-scale",
        type=_box_scale,
        default="model",
        help="widen each reported box by this factor about its centre; the tracker follows the box as answered "
        "(default: as calibrated for the model, its config's track_box_scale, else 1)",
    )
    parser.add_argument(
        "--decoder",
        choices=["auto", "constrained", "strict", "generate"],
        default="auto",
        help="constrained: greedy along the box grammar, forced tokens and verified guesses fed in chunks (the same "
        "answers as generate, in fewer LLM passes); strict: the same but the grammar is kept where the model leaves "
        "it, so every answer parses; generate: transformers' generate; auto (default): constrained where the "
        "tokenizer fits the grammar",
    )
    add_thread_argument(parser)


def tracker_from_args(model: Any, processor: Any, args: argparse.Namespace) -> Any:
    """The `ElysiumTracker` of a command's `--clip-len`, `--max-new-tokens` and `add_search_arguments` flags, laid
    over the model's own settings (`TrackerSettings.from_args`: a flag left at "model" or unset keeps the model's)."""
    from elysium.inference.tracker import ElysiumTracker
    from elysium.inference.tracker_settings import TrackerSettings

    use_threads(getattr(args, "threads", None))
    return ElysiumTracker(model, processor, settings=TrackerSettings.from_args(model.config, args))


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    track = subparsers.add_parser(
        "track",
        help="track an object through a video from a box or an expression",
        description="Track an object through a video (mp4/avi/mkv/webm/gif or a folder of frames) and write "
        "DIR/track.json (per-frame pixel boxes) and an annotated DIR/track.mp4.",
    )
    track.add_argument("video", help="video file or folder of frames")
    what = track.add_mutually_exclusive_group(required=True)
    what.add_argument("--box", help="X1,Y1,X2,Y2: the object in the first frame, in pixels of the video (SOT)")
    what.add_argument("--expression", help="words naming the object, e.g. 'the red car' (RSOT)")
    _model_arguments(track)
    track.add_argument("--out", default=None, help="output folder (default: <video name>_track)")
    track.add_argument("--stride", type=int, default=1, help="track every N-th frame (default 1)")
    track.add_argument("--max-frames", type=int, default=None, help="track at most N frames")
    track.add_argument(
        "--clip-len",
        type=int,
        default=None,
        help="frames per clip; clips overlap by one (default: as the model was trained, else 8)",
    )
    track.add_argument("--max-new-tokens", type=int, default=None, help="answer length cap a clip (default: fits)")
    add_search_arguments(track)
    track.add_argument("--allow-truncated", action="store_true", help="track what decodes of a damaged video")
    track.add_argument("--quiet", action="store_true", help="no progress bar")
    track.set_defaults(run=run_track)

    describe = subparsers.add_parser("describe", help="describe the object at a box in a video (Video-REG)")
    describe.add_argument("video", help="video file or folder of frames")
    describe.add_argument("--box", required=True, help="X1,Y1,X2,Y2 in the first frame, in pixels")
    describe.add_argument("--frames", type=int, default=8, help="frames to show the model, evenly spaced (default 8)")
    describe.add_argument("--max-new-tokens", type=int, default=64)
    describe.add_argument("--allow-truncated", action="store_true", help="describe what decodes of a damaged video")
    _model_arguments(describe)
    describe.set_defaults(run=run_describe)

    ground = subparsers.add_parser("ground", help="find the box of an expression in an image (REC)")
    ground.add_argument("image", help="image file")
    ground.add_argument("--expression", required=True, help="words naming the object")
    _model_arguments(ground)
    ground.set_defaults(run=run_ground)
