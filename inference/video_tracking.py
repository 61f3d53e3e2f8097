"""`VideoObjectTrackingPipeline`: `elysium track` as a transformers `Pipeline` (registered in pipeline.py).

Its own module so `elysium export` can ship it in a Hub folder as a transformers custom pipeline
(`custom_pipelines` in config.json): the export copies this file and the modules it imports flat beside the model
code, so `pipeline("video-object-tracking", model=folder, trust_remote_code=True)` works without this package.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from transformers import Pipeline

from elysium.inference.tracker import ElysiumTracker, TrackResult


def _is_frame(value: Any) -> bool:
    return isinstance(value, np.ndarray) or hasattr(value, "convert")  # an array or a PIL image


class _Frames:
    """Frames in memory, boxed so the base class does not read the list as a batch of inputs."""

    def __init__(self, frames: list[Any]):
        self.frames = frames


class VideoObjectTrackingPipeline(Pipeline):
    """Tracks an object through a video (path, folder of frames, or a list of frames) from a box or an expression.

    Call arguments: `box` (pixels `[x1,y1,x2,y2]` of the first frame) or `expression`; `stride`, `max_frames`.
    Returns a dict like `track.json`: `frames` (index, time, box, repaired), `boxes`, `num_repaired`, ...
    """

    _load_processor = True
    _load_image_processor = False
    _load_video_processor = False
    _load_feature_extractor = False
    _load_tokenizer = False

    def __init__(self, *args: Any, clip_len: int | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        if self.processor is None:
            raise ValueError("The video-object-tracking pipeline needs the model's ElysiumProcessor; save it beside.")
        self.tracker = ElysiumTracker(self.model, self.processor, clip_len=clip_len)

    def __call__(self, video: Any, **kwargs: Any) -> Any:
        # A list of frames is one video, not a batch of inputs: wrap it before the base class splits lists.
        if isinstance(video, np.ndarray) and video.ndim == 4:
            video = _Frames(list(video))
        elif isinstance(video, Sequence) and not isinstance(video, str) and video and _is_frame(video[0]):
            video = _Frames(list(video))
        return super().__call__(video, **kwargs)

    def _sanitize_parameters(
        self,
        box: Sequence[float] | None = None,
        expression: str | None = None,
        stride: int | None = None,
        max_frames: int | None = None,
        **kwargs: Any,
    ) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
        preprocess: dict[str, Any] = {}
        if box is not None:
            preprocess["box"] = list(box)
        if expression is not None:
            preprocess["expression"] = expression
        if stride is not None:
            preprocess["stride"] = stride
        if max_frames is not None:
            preprocess["max_frames"] = max_frames
        return preprocess, {}, {}

    def preprocess(
        self,
        video: Any,
        box: Sequence[float] | None = None,
        expression: str | None = None,
        stride: int = 1,
        max_frames: int | None = None,
    ) -> dict[str, Any]:
        """Open the video as a stream; frames are decoded while tracking, not here (long videos stay small)."""
        if isinstance(video, Path):
            video = str(video)
        elif isinstance(video, _Frames):
            video = video.frames
        source = self.tracker.source(video, stride=stride, max_frames=max_frames)
        return {"source": source, "box": box, "expression": expression}

    def _forward(self, model_inputs: dict[str, Any]) -> dict[str, Any]:
        result = self.tracker.track_batch([model_inputs["source"]], [model_inputs["box"]], [model_inputs["expression"]])
        return {"result": result[0]}

    def postprocess(self, model_outputs: dict[str, Any]) -> dict[str, Any]:
        result: TrackResult = model_outputs["result"]
        data = result.to_dict()
        data["boxes"] = [frame.box for frame in result.frames]
        return data


__all__ = ["VideoObjectTrackingPipeline"]
