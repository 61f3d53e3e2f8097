"""``elysium score``: One-Pass Evaluation of any tracker's result files on a benchmark.

    elysium score --results DIR --benchmark lasot|uav123|otb|got10k|elysiumtrack --root DIR
                  [--protocol got10k|pytracking] [--subset S] [--json] [--plots DIR]
                  [--compare DIR ...] [--metrics FILE] [--strict]

Result files are toolkit format: ``DIR/<sequence>.txt``, one ``x,y,w,h`` line per frame (the
got10k toolkit's ``DIR/<seq>/<seq>_001.txt`` is read too). A sequence without a result file, or
with one that cannot be scored, is reported on stderr and left out of the averages (as pytracking's
``skip_missing_seq``); ``sequences`` in the output says how many were scored, and ``--strict``
turns any such gap into exit code 1. A result file with more or fewer boxes than its sequence has frames is an
error (the got10k toolkit asserts equal lengths); ``--missing-as-failure`` instead scores the frames a short file
lacks as failures (IoU 0, no centre), and the output says how many.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from .benchmarks import BENCHMARKS, Benchmark, BenchmarkError, load_benchmark, read_results
from .ope import PROTOCOLS, OPEResult, SequenceScore, score_dataset, score_sequence


def add_parser(subparsers: Any) -> None:
    """Register ``score`` on the ``elysium`` command."""
    parser = subparsers.add_parser(
        "score",
        help="score tracker result files on a benchmark (success AUC, precision, normalized precision)",
        description="One-Pass Evaluation of any tracker's result files on a benchmark: success AUC, precision at "
        "20 px and normalized precision, by the got10k or pytracking toolkit's rules. Missing or unscorable result "
        "files are reported on stderr and left out of the averages.",
    )
    parser.add_argument(
        "--results", metavar="DIR", required=True, type=Path, help="folder of <sequence>.txt result files"
    )
    parser.add_argument("--benchmark", required=True, choices=BENCHMARKS)
    parser.add_argument(
        "--root",
        metavar="DIR",
        required=True,
        type=Path,
        help="benchmark root folder (elysiumtrack: the JSON-lines file)",
    )
    parser.add_argument(
        "--protocol", choices=PROTOCOLS, default="got10k", help="whose rules to score by (default: got10k)"
    )
    parser.add_argument(
        "--subset",
        default=None,
        help="lasot: test (default: testing_set.txt when present) or all; got10k: val; uav123: UAV123 or UAV20L",
    )
    parser.add_argument("--json", action="store_true", help="print only the scores as one JSON object")
    parser.add_argument(
        "--plots", metavar="DIR", type=Path, help="write success/precision/normalized precision PNGs here"
    )
    parser.add_argument(
        "--compare",
        metavar="DIR",
        type=Path,
        nargs="+",
        default=[],
        help="other trackers' result folders, for the table and plots",
    )
    parser.add_argument(
        "--metrics", metavar="FILE", type=Path, help="write the full report (curves, per sequence) to this JSON file"
    )
    parser.add_argument("--strict", action="store_true", help="exit 1 when any sequence is missing or unscorable")
    parser.add_argument(
        "--missing-as-failure",
        action="store_true",
        help="score the frames a short result file lacks as failures (IoU 0) instead of refusing it",
    )
    parser.set_defaults(run=run_score)


def _score_tracker(
    benchmark: Benchmark, results: Path, protocol: str, missing_as_failure: bool = False
) -> tuple[list[SequenceScore], list[str], list[tuple[str, str]], list[str], int]:
    """Scores of the sequences with usable results; the missing ones; the failed ones; result files whose length
    is not the sequence's; how many missing frames were scored as failures (`missing_as_failure`)."""
    scores: list[SequenceScore] = []
    missing: list[str] = []
    failed: list[tuple[str, str]] = []
    mismatched: list[str] = []
    padded = 0
    for sequence in benchmark:
        try:
            boxes = read_results(results, sequence.name)
        except FileNotFoundError:
            missing.append(sequence.name)
            continue
        except (BenchmarkError, OSError, UnicodeDecodeError) as error:
            failed.append((sequence.name, str(error)))
            continue
        if len(boxes) != len(sequence.gt_boxes):
            if not (missing_as_failure and len(boxes) < len(sequence.gt_boxes)):
                mismatched.append(f"{sequence.name}: {len(boxes)} result boxes for {len(sequence.gt_boxes)} frames")
                continue
            # NaN boxes fail both tests of every protocol: no overlap, no centre within any distance
            padded += len(sequence.gt_boxes) - len(boxes)
            boxes = np.concatenate([boxes, np.full((len(sequence.gt_boxes) - len(boxes), 4), np.nan)])
        try:
            scores.append(
                score_sequence(
                    boxes,
                    sequence.gt_boxes,
                    protocol,  # type: ignore[arg-type]
                    sequence.absent,
                    benchmark=sequence.benchmark,
                    name=sequence.name,
                )
            )
        except ValueError as error:
            failed.append((sequence.name, str(error)))
    return scores, missing, failed, mismatched, padded


def _shorten(names: list[str], limit: int = 5) -> str:
    return ", ".join(names[:limit]) + (f" and {len(names) - limit} more" if len(names) > limit else "")


def run_score(args: argparse.Namespace) -> int:
    """Score ``args.results`` on the benchmark; print the scores; return the exit code."""
    from elysium.utils.errors import UserError

    if args.benchmark == "got10k" and args.subset == "test":
        raise UserError("GOT-10k test ground truth is withheld: submit test results to the GOT-10k server")
    try:
        benchmark = load_benchmark(args.benchmark, args.root, subset=args.subset, frames=False)
    except BenchmarkError as error:
        raise UserError(str(error)) from None
    if not len(benchmark):
        raise UserError(f"{args.root}: no usable {args.benchmark} sequence ({len(benchmark.skipped)} skipped)")
    for folder in [args.results, *args.compare]:
        if not folder.is_dir():
            raise UserError(f"{folder}: results folder not found")

    scores, missing, failed, mismatched, padded = _score_tracker(
        benchmark, args.results, args.protocol, args.missing_as_failure
    )
    if mismatched:
        fix = "" if args.missing_as_failure else ", or pass --missing-as-failure to score missing frames as failures"
        raise UserError(
            f"{args.results}: {len(mismatched)} result file(s) do not hold one box per frame "
            f"({_shorten(mismatched, 3)}); write one x,y,w,h line per frame{fix}"
        )
    err = sys.stderr
    for name, reason in benchmark.skipped:
        print(f"skipped sequence {name}: {reason}", file=err)
    if missing:
        print(f"missing results for {len(missing)} of {len(benchmark)} sequences: {_shorten(missing)}", file=err)
    for name, reason in failed:
        print(f"could not score {name}: {reason}", file=err)
    if not scores:
        raise UserError(f"{args.results}: no scorable result file for any of the {len(benchmark)} sequences")

    result = score_dataset(scores, args.protocol)
    tracker = args.results.resolve().name
    trackers = {tracker: result}
    for folder in args.compare:
        other, other_missing, other_failed, other_mismatched, _ = _score_tracker(
            benchmark, folder, args.protocol, args.missing_as_failure
        )
        if other_missing or other_failed or other_mismatched:
            gaps = len(other_missing) + len(other_failed) + len(other_mismatched)
            print(f"{folder}: {gaps} of {len(benchmark)} sequences missing or unscorable", file=err)
        if other:
            name = folder.resolve().name
            trackers[name if name not in trackers else str(folder)] = score_dataset(other, args.protocol)

    if args.json:
        summary = result.summary()
        if args.missing_as_failure:
            summary["missing_frames_scored_as_failures"] = padded
        print(json.dumps(summary))
    else:
        _print_table(trackers, args.protocol, args.benchmark)
        if args.missing_as_failure:
            print(f"{padded} missing frames scored as failures (IoU 0) (--missing-as-failure)")
    if args.metrics:
        from .report import ope_report, write_metrics_json

        report = ope_report(
            result, tracker=tracker, benchmark=args.benchmark, missing=missing, failed=failed, skipped=benchmark.skipped
        )
        print(f"wrote {write_metrics_json(args.metrics, report)}", file=err)
    if args.plots:
        from .plots import save_plots

        for path in save_plots(trackers, args.plots):
            print(f"wrote {path}", file=err)
    gaps = bool(missing or failed or benchmark.skipped)
    return 1 if args.strict and gaps else 0


def _print_table(trackers: dict[str, OPEResult], protocol: str, benchmark: str) -> None:
    print(f"{benchmark}, {protocol} protocol (scores x100)")
    print(f"{'tracker':<24} {'AUC':>6} {'P@20':>6} {'NP':>6} {'seqs':>5}")
    for name, result in trackers.items():
        print(
            f"{name:<24} {100 * result.success_auc:6.1f} {100 * result.precision_20px:6.1f} "
            f"{100 * result.norm_precision:6.1f} {result.sequences:5d}"
        )
