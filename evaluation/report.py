"""``metrics.json``: the scores of one run, written atomically so an interrupted run leaves no torn file.

Strict JSON: NaN and infinities (a sequence with no valid frame, say) become ``null`` instead of the
bare ``NaN`` that ``json.dumps`` writes by default and most JSON parsers reject.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from elysium.utils.atomic import write_json_atomic

from .ope import OPEResult


def _plain(value: Any) -> Any:
    """JSON-ready copy: numpy scalars and arrays to Python, non-finite floats to None."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, np.ndarray):
        return _plain(value.tolist())
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, Path):
        return str(value)
    return value


def write_metrics_json(path: str | os.PathLike[str], metrics: Mapping[str, Any]) -> Path:
    """Write ``metrics`` as indented strict JSON to ``path`` atomically; returns the path."""
    return write_json_atomic(path, _plain(metrics), indent=2, allow_nan=False)


def ope_report(
    result: OPEResult,
    *,
    tracker: str,
    benchmark: str,
    missing: Iterable[str] = (),
    failed: Iterable[tuple[str, str]] = (),
    skipped: Iterable[tuple[str, str]] = (),
) -> dict[str, Any]:
    """One tracker's OPE scores with what was left out and why: missing results, unscorable results,
    benchmark sequences the reader skipped."""
    return {
        "tracker": tracker,
        "benchmark": benchmark,
        **result.to_dict(),
        "missing_results": list(missing),
        "failed_results": [{"sequence": n, "reason": r} for n, r in failed],
        "skipped_sequences": [{"sequence": n, "reason": r} for n, r in skipped],
    }
