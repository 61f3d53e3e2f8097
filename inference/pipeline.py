"""The `video-object-tracking` transformers pipeline: `elysium track` as a `pipeline(...)` call.

    from transformers import pipeline
    import elysium.inference  # registers the task (an exported folder ships it: custom_pipelines + trust_remote_code)
    tracker = pipeline("video-object-tracking", model="path/to/elysium")  # no model: the packaged elysium-tiny
    # or elysium.inference.tracking_pipeline("path/to/elysium"): trust_remote_code=False unless asked, no prompt
    out = tracker("video.mp4", box=[x1, y1, x2, y2])  # or expression="the red car"
    out["frames"][i] == {"index", "time", "box" (pixels of the source), "repaired"}

It runs the same `ElysiumTracker` as the CLI, so both give the same boxes for the same video.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from transformers import AutoModelForImageTextToText
from transformers.pipelines import PIPELINE_REGISTRY

from elysium.inference import default_model
from elysium.inference.video_tracking import VideoObjectTrackingPipeline

TASK = "video-object-tracking"


class _PackagedDefault(dict):
    """The task's `default` entry, read when `pipeline(TASK)` gets no model: the installed `elysium-tiny` folder.

    Resolved at that moment rather than at registration, so a checkout without the weights fails with one line
    saying so (transformers would report the folder as a malformed Hub repo id) and `DEFAULT_MODEL` can be moved.
    """

    def __getitem__(self, key: str) -> Any:
        if key == "model":
            return default_model.default_model_path(), None  # (model, revision), as transformers unpacks it
        return super().__getitem__(key)


def tracking_pipeline(model: str | Path | None = None, *, trust_remote_code: bool = False, **kwargs: Any) -> Any:
    """`pipeline("video-object-tracking", model=...)` that never runs a model folder's own code unless asked.

    transformers' `pipeline` asks interactively (and runs the code on "y") when a folder's model type is unknown
    and its config has an `auto_map`; this refuses such a folder with one line unless `trust_remote_code=True`.
    `model=None` is the packaged `elysium-tiny`.
    """
    from transformers import pipeline

    from .loading import check_no_remote_code, check_weights_file

    folder = Path(model) if model is not None else Path(default_model.default_model_path())
    if folder.is_dir():
        if not trust_remote_code:
            check_no_remote_code(folder)
        check_weights_file(folder)
    return pipeline(TASK, model=str(folder), trust_remote_code=trust_remote_code, **kwargs)


PIPELINE_REGISTRY.register_pipeline(
    TASK,
    pipeline_class=VideoObjectTrackingPipeline,
    pt_model=AutoModelForImageTextToText,
    default=_PackagedDefault(model=(default_model.DEFAULT_MODEL, None)),
    type="multimodal",
)

__all__ = ["TASK", "VideoObjectTrackingPipeline", "tracking_pipeline"]
