"""Model-independent evaluation: OPE tracking metrics under named protocols, benchmark readers,
toolkit-format result files, plots, ``metrics.json``, and Video-REG caption scores.

Nothing here imports the model, so any tracker's result files can be scored (``elysium score``); running a model
over a benchmark is ``elysium.inference.benchmark_runner`` (tests/test_layout.py checks both).
Plots and caption scoring import matplotlib and pycocoevalcap lazily, when used.
"""

from .benchmarks import (
    BENCHMARKS,
    Benchmark,
    BenchmarkError,
    Sequence,
    load_benchmark,
    read_boxes,
    read_elysiumtrack,
    read_got10k,
    read_lasot,
    read_otb,
    read_results,
    read_uav123,
    results_path,
    write_results,
)
from .ope import (
    PROTOCOLS,
    OPEResult,
    SequenceScore,
    center_error,
    normalized_center_error,
    rect_iou,
    score_dataset,
    score_sequence,
)
from .report import ope_report, write_metrics_json

__all__ = [
    "BENCHMARKS",
    "PROTOCOLS",
    "Benchmark",
    "BenchmarkError",
    "CaptionScores",
    "JavaNotFoundError",
    "OPEResult",
    "Sequence",
    "SequenceScore",
    "center_error",
    "load_benchmark",
    "normalized_center_error",
    "ope_report",
    "plot_norm_precision",
    "plot_precision",
    "plot_success",
    "read_boxes",
    "read_elysiumtrack",
    "read_got10k",
    "read_lasot",
    "read_otb",
    "read_results",
    "read_uav123",
    "rect_iou",
    "results_path",
    "save_plots",
    "score_captions",
    "score_dataset",
    "score_sequence",
    "simple_tokenize",
    "write_metrics_json",
    "write_results",
]

_LAZY = {
    "plot_success": "plots",
    "plot_precision": "plots",
    "plot_norm_precision": "plots",
    "save_plots": "plots",
    "score_captions": "captions",
    "simple_tokenize": "captions",
    "CaptionScores": "captions",
    "JavaNotFoundError": "captions",
}


def __getattr__(name: str):
    """Import matplotlib-backed plots and caption scoring on first use, not with the package."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
