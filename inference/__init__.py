"""Inference: the long-video tracker, the `video-object-tracking` pipeline (registered on import) and the CLI."""

import elysium.modeling_elysium  # noqa: F401  (registers the Auto classes the pipeline loads with)
import elysium.processing  # noqa: F401

from .pipeline import TASK, VideoObjectTrackingPipeline, tracking_pipeline
from .tracker import ElysiumTracker, TrackedFrame, TrackResult, VideoSource
from .tracker_settings import TrackerSettings

__all__ = [
    "ElysiumTracker",
    "TASK",
    "TrackResult",
    "TrackedFrame",
    "TrackerSettings",
    "VideoObjectTrackingPipeline",
    "VideoSource",
    "tracking_pipeline",
]
