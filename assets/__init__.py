"""The demo `elysium demo` tracks, bundled so a fresh install needs no download.

Regenerate it with `python -m elysium.synthetic.demo`.
"""

from __future__ import annotations

from pathlib import Path

ASSETS_DIR = Path(__file__).resolve().parent
DEMO_VIDEO = ASSETS_DIR / "demo.mp4"
DEMO_JSON = ASSETS_DIR / "demo.json"  # the target's frame-0 box, expression, description and per-frame boxes

__all__ = ["ASSETS_DIR", "DEMO_JSON", "DEMO_VIDEO"]
