"""The ElysiumTrack data engine: videos + captions in, ElysiumTrack-1M records out (`elysium data build`).

The paper's funnel (Sec. 3.2): spaCy noun chunks (no abstract or plural ones) -> a grounding detector on the first,
middle and last frames (score > 0.6) -> a tracker from the first-frame box (confidence > 0.8 on every frame) -> a
Kalman-filter drift check -> detector/tracker IoU agreement at the middle and last frames (>= 0.3).
Each stage sits behind a small interface (`chunks.Chunker`, `detect.Detector`, `track.Tracker`) so it can be swapped;
`engine.build` runs them as a `datasets` map over videos, resumable and split across `accelerate` processes.
"""

from .filters import FunnelThresholds

__all__ = ["FunnelThresholds"]
