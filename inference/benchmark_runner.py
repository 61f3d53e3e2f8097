"""The model-running half of `elysium eval`: track every sequence of a benchmark, then score it.

Why it works the way it does:
- Results are written per sequence as soon as it is tracked (`<out>/results/<seq>.txt`, x,y,w,h lines, atomic),
  so a run of hours can be interrupted and resumed: sequences whose result file exists are not tracked again.
  What they were made with (the model's weights and config, the task and tracker settings: `key`) is saved in
  `<out>/results_key.json`; results made with another key are never reused (nor relabelled), the run stops instead.
- A sequence that fails (a missing frame, an unreadable image, no first-frame ground truth) is counted and
  reported, never fatal: one broken sequence must not cost a 280-sequence run.
- Scoring uses this package's OPE implementation under a named protocol (got10k or pytracking), so the numbers are
  comparable with those toolkits; `metrics.json` and the success/precision plots are written at the end.

`track_heldout` is the model-running half of `elysium heldout` (generated held-out tracks). This module is where a
model meets a benchmark; `elysium.evaluation` only reads benchmarks and scores boxes and captions.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from elysium.evaluation.benchmarks import Benchmark, read_results, results_path, write_results
from elysium.evaluation.benchmarks import Sequence as BenchmarkSequence
from elysium.evaluation.heldout import HeldoutPredictions, Track, score_heldout
from elysium.evaluation.ope import score_dataset, score_sequence, xyxy_to_xywh
from elysium.evaluation.plots import save_plots
from elysium.evaluation.report import ope_report, write_metrics_json
from elysium.inference.tracker import ElysiumTracker, VideoSource
from elysium.processing.video import FrameItem, VideoError

TASKS = ("sot", "rsot")
BENCHMARK_FPS = 30.0  # image-folder benchmarks carry no frame rate; times in results are index / 30


class EvalRunError(ValueError):
    """A run that cannot produce scores (nothing tracked, a bad option); the message says why."""


@dataclass
class EvalRun:
    """What a run did: sequences tracked now, resumed from earlier result files, failed (with reasons)."""

    benchmark: str
    out_dir: Path
    tracked: list[str] = field(default_factory=list)
    resumed: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    frames: int = 0
    seconds: float = 0.0
    metrics: dict[str, Any] | None = None
    metrics_path: Path | None = None
    plots: list[Path] = field(default_factory=list)

    @property
    def frames_per_second(self) -> float | None:
        return self.frames / self.seconds if self.seconds > 0 else None


def _frame_items(paths: Sequence[Path], size: tuple[int, int]) -> Iterator[FrameItem]:
    """Decode benchmark frames lazily, one at a time (the processor resizes them to the model's input).

    Every frame must be `size` (w, h), the size boxes are read and normalized in: a sequence whose frames change
    size would be tracked in the wrong coordinates, so it fails (and is counted) instead."""
    for index, path in enumerate(paths):
        try:
            with Image.open(path) as image:
                array = np.asarray(image.convert("RGB"))
        except (OSError, ValueError) as error:
            raise VideoError(f"{path}: cannot read this frame ({error})") from None
        if (array.shape[1], array.shape[0]) != tuple(size):
            raise VideoError(
                f"{path}: frame {index + 1} is {array.shape[1]}x{array.shape[0]} but the sequence's frames are "
                f"{size[0]}x{size[1]}; resize its frames to one size (its boxes are pixels of that size)"
            )
        yield FrameItem(index, index / BENCHMARK_FPS, array, None)


def sequence_source(sequence: BenchmarkSequence, max_frames: int | None = None) -> VideoSource:
    """A streamed `VideoSource` over a benchmark sequence's frame files (the first `max_frames` of them)."""
    paths = list(sequence.frame_paths[:max_frames] if max_frames else sequence.frame_paths)
    if not paths:
        raise VideoError(f"{sequence.name}: the sequence lists no frames")
    if sequence.frame_size is not None:
        size = tuple(int(v) for v in sequence.frame_size)
    else:
        try:
            with Image.open(paths[0]) as image:
                size = image.size
        except (OSError, ValueError) as error:
            raise VideoError(f"{paths[0]}: cannot read this frame ({error})") from None
    size = (int(size[0]), int(size[1]))
    return VideoSource(_frame_items(paths, size), size, BENCHMARK_FPS, str(paths[0].parent))


def initial_target(sequence: BenchmarkSequence, task: str) -> tuple[list[float] | None, str | None]:
    """The SOT box (pixels x1,y1,x2,y2 from the first ground-truth row) or the RSOT expression of a sequence."""
    if task == "rsot":
        if not sequence.description or not sequence.description.strip():
            raise EvalRunError(f"{sequence.name}: no object description, so it cannot be tracked from words (rsot)")
        return None, sequence.description.strip()
    x, y, w, h = (float(v) for v in sequence.gt_boxes[0])
    if not np.isfinite([x, y, w, h]).all() or w <= 0 or h <= 0:
        raise EvalRunError(f"{sequence.name}: the first frame has no usable ground-truth box ({x},{y},{w},{h})")
    return [x, y, x + w, y + h], None


def run_benchmark(
    tracker: ElysiumTracker,
    benchmark: Benchmark,
    out_dir: str | Path,
    *,
    task: str = "sot",
    protocol: str = "got10k",
    max_frames: int | None = None,
    batch_size: int = 1,
    tracker_name: str = "Elysium",
    on_sequence: Callable[[str, str], None] | None = None,
    key: dict[str, Any] | None = None,
) -> EvalRun:
    """Track each sequence of `benchmark` (resuming), write `<out>/results/*.txt`, `metrics.json` and plots.

    `on_sequence(name, status)` is called per sequence with status "tracked", "resumed" or "failed" (for a
    progress bar). `batch_size` sequences are tracked together as one batch; when a batch fails, its sequences are
    retried one by one so only the broken one is counted as failed. `key` (what the results depend on: the model's
    fingerprint, task and tracker settings) guards resuming: see `check_results_key`.
    """
    if task not in TASKS:
        raise EvalRunError(f"unknown task {task!r}; choose one of {', '.join(TASKS)}")
    if batch_size < 1:
        raise EvalRunError(f"batch_size must be >= 1, got {batch_size}")
    out = Path(out_dir)
    results_dir = out / "results"
    if key is not None:
        check_results_key(out, {"task": task, "max_frames": max_frames, **key})
    run = EvalRun(benchmark.name, out, skipped=list(benchmark.skipped))
    notify = on_sequence or (lambda name, status: None)
    todo: list[BenchmarkSequence] = []
    for sequence in benchmark.sequences:
        if results_path(results_dir, sequence.name).is_file():
            run.resumed.append(sequence.name)
            notify(sequence.name, "resumed")
        else:
            todo.append(sequence)

    started = time.perf_counter()
    for start in range(0, len(todo), max(1, batch_size)):
        batch = todo[start : start + max(1, batch_size)]
        try:
            _track_and_write(tracker, batch, results_dir, task, max_frames, run)
            for sequence in batch:
                notify(sequence.name, "tracked")
        except Exception as error:  # noqa: BLE001  (a failing sequence is counted, the run goes on)
            if len(batch) == 1:
                run.failed.append((batch[0].name, f"{type(error).__name__}: {error}"))
                notify(batch[0].name, "failed")
                continue
            for sequence in batch:
                try:
                    _track_and_write(tracker, [sequence], results_dir, task, max_frames, run)
                    notify(sequence.name, "tracked")
                except Exception as single_error:  # noqa: BLE001
                    run.failed.append((sequence.name, f"{type(single_error).__name__}: {single_error}"))
                    notify(sequence.name, "failed")
    run.seconds = time.perf_counter() - started

    run.metrics, run.metrics_path, run.plots = score_run(
        benchmark, results_dir, out, protocol=protocol, max_frames=max_frames, tracker_name=tracker_name, run=run
    )
    return run


RESULTS_KEY = "results_key.json"


def check_results_key(out: Path, key: dict[str, Any]) -> None:
    """Resume only results made with `key`: a `results/` folder made with another model, weights or settings (or
    one that does not say what made it) is refused; otherwise `key` is recorded in `<out>/results_key.json`."""
    from elysium.utils.atomic import write_json_atomic

    digest = hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()
    results_dir = out / "results"
    has_results = results_dir.is_dir() and any(results_dir.iterdir())
    try:
        saved = json.loads((out / RESULTS_KEY).read_text(encoding="utf-8-sig"))
    except (OSError, ValueError):
        saved = None
    saved_digest = saved.get("digest") if isinstance(saved, dict) else None
    if has_results and saved_digest != digest:
        made_by = (
            f"made with {saved.get('key', {}).get('path', 'another model')} and other settings"
            if isinstance(saved, dict) and isinstance(saved.get("key"), dict)
            else "that do not record which model made them"
        )
        raise EvalRunError(
            f"{results_dir} holds results {made_by}; they are not reused for this model and settings. Give another "
            f"--out, or delete {results_dir} to track again."
        )
    if saved_digest != digest:
        write_json_atomic(out / RESULTS_KEY, {"digest": digest, "key": key}, sort_keys=True)


def _track_and_write(
    tracker: ElysiumTracker,
    batch: list[BenchmarkSequence],
    results_dir: Path,
    task: str,
    max_frames: int | None,
    run: EvalRun,
) -> None:
    targets = [initial_target(sequence, task) for sequence in batch]
    sources = [sequence_source(sequence, max_frames) for sequence in batch]
    results = tracker.track_batch(sources, [t[0] for t in targets], [t[1] for t in targets])
    for sequence, result in zip(batch, results):
        write_results(results_dir, sequence.name, xyxy_to_xywh(result.boxes))
        run.tracked.append(sequence.name)
        run.frames += len(result.frames)


def score_run(
    benchmark: Benchmark,
    results_dir: Path,
    out_dir: Path,
    *,
    protocol: str = "got10k",
    max_frames: int | None = None,
    tracker_name: str = "Elysium",
    run: EvalRun | None = None,
) -> tuple[dict[str, Any], Path, list[Path]]:
    """Score every sequence with a result file; write `metrics.json` and the plots into `out_dir`."""
    scores, missing, unscorable = [], [], []
    for sequence in benchmark.sequences:
        try:
            pred = read_results(results_dir, sequence.name)
        except FileNotFoundError:
            missing.append(sequence.name)
            continue
        except ValueError as error:
            unscorable.append((sequence.name, str(error)))
            continue
        gt, absent = sequence.gt_boxes, sequence.absent
        if max_frames:  # a shortened run is scored on the frames it tracked
            gt = gt[:max_frames]
            absent = absent[:max_frames] if absent is not None else None
        try:
            scores.append(
                score_sequence(pred, gt, protocol, absent, benchmark=benchmark.name, name=sequence.name)  # type: ignore[arg-type]
            )
        except ValueError as error:
            unscorable.append((sequence.name, str(error)))
    if not scores:
        failed = "; ".join(f"{n}: {r}" for n, r in (run.failed if run else [])[:3])
        raise EvalRunError(
            f"no sequence of {benchmark.name} could be scored ({len(missing)} without results)"
            + (f"; failures: {failed}" if failed else "")
        )
    result = score_dataset(scores, protocol)  # type: ignore[arg-type]
    report = ope_report(
        result,
        tracker=tracker_name,
        benchmark=benchmark.name,
        missing=missing,
        failed=unscorable,
        skipped=benchmark.skipped,
    )
    if run is not None:
        report["run"] = {
            "tracked": len(run.tracked),
            "resumed": len(run.resumed),
            "failed": [{"sequence": n, "reason": r} for n, r in run.failed],
            "frames_tracked": run.frames,
            "seconds": run.seconds,
            "frames_per_second": run.frames_per_second,
            "max_frames": max_frames,
        }
    metrics_path = write_metrics_json(out_dir / "metrics.json", report)
    plots = save_plots({tracker_name: result}, out_dir)
    return report, metrics_path, plots


__all__ = [
    "EvalRun",
    "EvalRunError",
    "TASKS",
    "evaluate_heldout",
    "initial_target",
    "run_benchmark",
    "score_run",
    "sequence_source",
    "track_heldout",
]


# ----------------------------------------------------------------------------------------------
# held-out generated tracks (`elysium heldout`): scored by `elysium.evaluation.heldout`


def track_heldout(
    tracker: Any, tracks: Sequence[Track], batch_size: int = 8, progress: bool = True
) -> HeldoutPredictions:
    """Track every record twice with `tracker` (an `ElysiumTracker`): by its first-frame box and by its expression."""
    sot, rsot = [], []
    batches = range(0, len(tracks), batch_size)
    for start in tqdm(batches, desc="held-out tracking", disable=not progress):
        chunk = tracks[start : start + batch_size]
        sources = [VideoSource.from_frames(t.frames) for t in chunk]
        for result in tracker.track_batch(sources, boxes=[t.boxes[0].tolist() for t in chunk]):
            sot.append(np.asarray(result.boxes, dtype=np.float64))
        sources = [VideoSource.from_frames(t.frames) for t in chunk]
        for result in tracker.track_batch(sources, expressions=[t.expression for t in chunk]):
            rsot.append(np.asarray(result.boxes, dtype=np.float64))
    return HeldoutPredictions(sot, rsot)


def evaluate_heldout(
    tracker: Any,
    tracks: Sequence[Track],
    batch_size: int = 8,
    captions: bool = True,
    progress: bool = True,
) -> dict[str, Any]:
    """SOT, RSOT and Video-REG scores of `tracker` (an `ElysiumTracker`) on `tracks`, each beside its baseline."""
    predictions = track_heldout(tracker, tracks, batch_size, progress)
    return score_heldout(tracker, tracks, predictions, captions, progress)
