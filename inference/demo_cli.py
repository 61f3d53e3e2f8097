"""`elysium demo`: the packaged model on the bundled demo video, by box and by expression, with nothing to download.

The README's first command ends here, so it runs `elysium track`'s own code (`track_to_files`) on the video in
`elysium.assets`, twice on one loaded model, and scores each track against the demo's ground truth, so a fresh
install shows in one command whether the model tracks.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from elysium.utils.errors import UserError


def load_demo() -> dict[str, Any]:
    """`demo.json` (target box, expression, description, ground-truth boxes) plus `path`, the bundled video."""
    from elysium.assets import DEMO_JSON, DEMO_VIDEO

    if not DEMO_VIDEO.is_file() or not DEMO_JSON.is_file():
        raise UserError(f"the demo video is missing from this install ({DEMO_VIDEO}); reinstall the package.")
    demo = json.loads(DEMO_JSON.read_text(encoding="utf-8"))
    demo["path"] = str(DEMO_VIDEO)
    return demo


def mean_iou(frames: list[dict[str, Any]], truth: list[list[float]], skip_first: bool = False) -> float:
    """Mean IoU of a track's frames (track.json's `frames`) against pixel ground-truth boxes, by frame index."""
    from elysium.evaluation.ope import rect_iou, xyxy_to_xywh

    scored = frames[1:] if skip_first else frames
    if not scored:
        return float("nan")
    predicted = xyxy_to_xywh([frame["box"] for frame in scored])
    expected = xyxy_to_xywh([truth[frame["index"]] for frame in scored])
    return float(rect_iou(predicted, expected).mean())


def run_demo(args: argparse.Namespace) -> int:
    from elysium.inference.default_model import DEFAULT_MODEL
    from elysium.inference.loading import load_model_and_processor
    from elysium.inference.track_cli import describe_video, track_to_files
    from elysium.inference.tracker import ElysiumTracker
    from elysium.utils.atomic import write_json_atomic
    from elysium.utils.errors import check_at_least, check_out_folder

    check_at_least([("--max-new-tokens", args.max_new_tokens, 1)])
    check_out_folder(args.out)
    demo = load_demo()
    model_name = str(args.model or DEFAULT_MODEL)
    model, processor = load_model_and_processor(args.model, args.device, trust_remote_code=args.trust_remote_code)
    tracker = ElysiumTracker(model, processor, max_new_tokens=args.max_new_tokens)
    width, height = demo["frame_size"]
    box_text = ",".join(str(v) for v in demo["box"])
    print(f"model: {model_name}" + ("" if args.model else " (the packaged default)"))
    print(
        f"video: {demo['path']} ({demo['num_frames']} frames, {width}x{height}, {demo['fps']:g} fps); "
        f"target: box {box_text} in frame 1, {demo['expression']!r}"
    )
    out = Path(args.out)
    runs = [
        ("by-box", f"by box {box_text}", {"box": demo["box"]}),
        ("by-expression", f"by expression {demo['expression']!r}", {"expression": demo["expression"]}),
    ]
    for folder, title, prompt in runs:
        result, data, json_path, video_path = track_to_files(
            tracker, demo["path"], out / folder, quiet=args.quiet, **prompt
        )
        given_first = "box" in prompt  # frame 1's box is the input, not a prediction: left out of the score
        data["model"] = model_name
        data["mean_iou"] = round(mean_iou(data["frames"], demo["boxes"], skip_first=given_first), 4)
        write_json_atomic(json_path, data)
        scored = f"frames 2-{len(result.frames)}" if given_first else f"all {len(result.frames)} frames"
        print(
            f"{title}: tracked {len(result.frames)} frames ({result.num_repaired} repaired), "
            f"mean IoU with the ground truth {data['mean_iou']:.2f} over {scored}"
        )
        print(f"  wrote {json_path}")
        print(f"  wrote {video_path}")
    if not args.no_describe:
        description = describe_video(tracker, demo["path"], demo["box"], max_new_tokens=64)
        print(f"description: {description!r}")
        print(f"reference:   {demo['description']!r}")
    return 0


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    from elysium.inference.track_cli import _model_arguments

    parser = subparsers.add_parser(
        "demo",
        help="track the bundled demo video's object by box and by expression",
        description="Track the object of the bundled 3-second demo video from its first-frame box and from its "
        "referring expression, writing OUT/by-box/ and OUT/by-expression/ (track.json and an annotated track.mp4), "
        "print the mean IoU of each track with the ground truth, and describe the object.",
    )
    parser.add_argument("--out", default="elysium-demo", help="output folder (default: elysium-demo)")
    _model_arguments(parser)
    parser.add_argument("--max-new-tokens", type=int, default=None, help="answer length cap a clip (default: fits)")
    parser.add_argument("--no-describe", action="store_true", help="skip describing the object")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(run=run_demo)
