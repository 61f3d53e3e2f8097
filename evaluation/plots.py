"""Success, precision and normalized-precision plots of several trackers, as PNG files.

Drawn on matplotlib's Agg canvas directly (``Figure`` + ``FigureCanvasAgg``), so importing this
never switches the global pyplot backend of the program that uses it, and it runs headless.
Trackers are sorted best first and the legend carries the score the toolkits print (x100).
"""

from __future__ import annotations

import io
import os
from collections.abc import Mapping
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from elysium.utils.atomic import write_bytes_atomic

from .ope import OPEResult

_STYLES = ("-", "--", "-.", ":")


def _plot(
    results: Mapping[str, OPEResult],
    path: str | os.PathLike[str],
    kind: str,
) -> Path:
    if not results:
        raise ValueError("no trackers to plot")
    if kind == "success":
        curve, score, label = "success_curve", "success_auc", "AUC"
        x_label, title, x_of = "Overlap threshold", "Success plot", "success_thresholds"
    elif kind == "precision":
        curve, score, label = "precision_curve", "precision_20px", "P@20"
        x_label, title, x_of = "Location error threshold (px)", "Precision plot", "precision_thresholds"
    else:
        curve, score, label = "norm_precision_curve", "norm_precision", "NP"
        x_label, title, x_of = (
            "Normalized location error threshold",
            "Normalized precision plot",
            ("norm_precision_thresholds"),
        )
    ranked = sorted(results.items(), key=lambda item: getattr(item[1], score), reverse=True)
    protocols = sorted({r.protocol for r in results.values()})

    figure = Figure(figsize=(6.0, 4.5), dpi=120)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    for index, (name, result) in enumerate(ranked):
        axes.plot(
            getattr(result, x_of),
            getattr(result, curve),
            _STYLES[(index // 10) % len(_STYLES)],
            label=f"{name} [{label} {100 * getattr(result, score):.1f}]",
        )
    thresholds = getattr(ranked[0][1], x_of)
    axes.set(
        xlabel=x_label,
        ylabel="Success rate" if kind == "success" else "Precision",
        xlim=(float(thresholds[0]), float(thresholds[-1])),
        ylim=(0, 1.0),
        title=f"{title} of OPE ({', '.join(protocols)} protocol)",
    )
    axes.grid(True, alpha=0.4)
    axes.legend(loc="lower left" if kind == "success" else "lower right", fontsize=8)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return write_bytes_atomic(path, buffer.getvalue())


def plot_success(results: Mapping[str, OPEResult], path: str | os.PathLike[str]) -> Path:
    """Success curves (IoU threshold vs fraction of frames), legend with the AUC."""
    return _plot(results, path, "success")


def plot_precision(results: Mapping[str, OPEResult], path: str | os.PathLike[str]) -> Path:
    """Precision curves (center error 0..50 px vs fraction of frames), legend with precision at 20 px."""
    return _plot(results, path, "precision")


def plot_norm_precision(results: Mapping[str, OPEResult], path: str | os.PathLike[str]) -> Path:
    """Normalized precision curves (0..0.5), legend with the protocol's normalized precision."""
    return _plot(results, path, "norm_precision")


def save_plots(results: Mapping[str, OPEResult], directory: str | os.PathLike[str]) -> list[Path]:
    """``success.png``, ``precision.png`` and ``norm_precision.png`` in ``directory``."""
    directory = Path(directory)
    return [
        plot_success(results, directory / "success.png"),
        plot_precision(results, directory / "precision.png"),
        plot_norm_precision(results, directory / "norm_precision.png"),
    ]
