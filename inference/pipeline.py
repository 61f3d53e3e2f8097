"""The `video-object-tracking` transformers pipeline: `elysium track` as a `pipeline(...)` call.

    from transformers import pipeline
    import elysium.inference  # registers the task (an exported folder ships it: custom_pipelines + trust_remote_code)
    tracker = pipeline("video-object-tracking", model="path/to/elysium")  # no model: the packaged elysium-tiny
    out = tracker("video.mp4", box=[x1, y1, x2, y2])  # or expression="the red car"
    out["frames"][i] == {"index", "time", "box" (pixels of the source), "repaired"}

It runs the same `ElysiumTracker` as the CLI, so both give the same boxes for the same video.
"""

from __future__ import annotations

from typing import Any

from elysium.inference import default_model
from elysium.inference.tracking_pipeline import VideoObjectTrackingPipeline
from transformers import AutoModelForImageTextToText
from transformers.pipelines import PIPELINE_REGISTRY

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


PIPELINE_REGISTRY.register_pipeline(
    TASK,
    pipeline_class=VideoObjectTrackingPipeline,
    pt_model=AutoModelForImageTextToText,
    default=_PackagedDefault(model=(default_model.DEFAULT_MODEL, None)),
    type="multimodal",
)

__all__ = ["TASK", "VideoObjectTrackingPipeline"]
