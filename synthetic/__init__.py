"""The generated world: procedurally made tracking videos with exact ground truth, in the ElysiumTrack-1M format.

A tiny model must be trainable and testable on CPU, so the loaders, training and evaluation can be exercised end
to end without the 1.27M-record corpus.

- `scenes`: the attributes, the settings (`SynthConfig`), planning and rendering one video, its track records;
- `wording`: referring expressions and Video-REG descriptions; `tokenizer`: a small tokenizer for them;
- `writer`: `synthesize`, a data set on disk that resumes where a cut-off run stopped;
- `squares`: position-only grounding images (`elysium data squares`);
- `demo`: the bundled demo video (`python -m elysium.synthetic.demo`; `make_demo`, `write_demo_video`);
- `cli`: `elysium data synth`.

Importing this package loads no model (numpy and Pillow only; transformers when the tokenizer is made).
"""

from .scenes import (
    COLORS,
    SHAPES,
    SIZES,
    SOURCE,
    TEXTURES,
    SynthConfig,
    grounding_rows,
    plan_video,
    procedural_background,
    render_frames,
    render_video,
    texture_color,
    track_records,
)
from .squares import make_squares, square_sets
from .tokenizer import synth_tokenizer
from .wording import expression_matches
from .writer import SynthSummary, synthesize

__all__ = [
    "COLORS",
    "SHAPES",
    "SIZES",
    "SOURCE",
    "TEXTURES",
    "SynthConfig",
    "SynthSummary",
    "expression_matches",
    "grounding_rows",
    "make_squares",
    "plan_video",
    "procedural_background",
    "render_frames",
    "render_video",
    "square_sets",
    "synth_tokenizer",
    "synthesize",
    "texture_color",
    "track_records",
]
