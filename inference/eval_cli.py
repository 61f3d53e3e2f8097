"""`elysium eval`: run the tracker over a benchmark (resumable) and score it; `elysium score` only scores."""

from __future__ import annotations

import argparse
import sys

from elysium.utils.errors import UserError, check_at_least, check_out_folder


def run_eval(args: argparse.Namespace) -> int:
    from dataclasses import fields
    from pathlib import Path

    from tqdm.auto import tqdm

    from elysium.evaluation.benchmarks import BenchmarkError, load_benchmark
    from elysium.inference.benchmark_runner import EvalRunError, run_benchmark
    from elysium.inference.default_model import DEFAULT_MODEL
    from elysium.inference.loading import load_model_and_processor, model_fingerprint
    from elysium.inference.track_cli import tracker_from_args
    from elysium.inference.tracker_settings import TrackerSettings

    check_at_least(
        [
            ("--max-frames", args.max_frames, 1),
            ("--batch-size", args.batch_size, 1),
            ("--clip-len", args.clip_len, 2),
            ("--max-new-tokens", args.max_new_tokens, 1),
        ]
    )
    out = Path(args.out) if args.out else Path(f"eval_{args.benchmark}_{args.task}")
    check_out_folder(str(out))
    try:  # read the benchmark before loading the model: a wrong --root fails in a second
        benchmark = load_benchmark(args.benchmark, args.root, subset=args.subset)
    except BenchmarkError as error:
        raise UserError(str(error)) from None
    if not benchmark.sequences:
        raise UserError(f"{args.root}: no readable {args.benchmark} sequence ({len(benchmark.skipped)} skipped).")
    model, processor = load_model_and_processor(args.model, args.device, trust_remote_code=args.trust_remote_code)
    tracker = tracker_from_args(model, processor, args)  # the tracking commands' settings and thread policy
    # Results are resumed only if made with these weights and settings (as `elysium heldout` reuses its results);
    # --max-new-tokens and --batch-size are budgets, not settings, and may change between resumed runs.
    key = {
        **model_fingerprint(args.model or DEFAULT_MODEL),
        "benchmark": args.benchmark,
        **{f.name: getattr(tracker.settings, f.name) for f in fields(TrackerSettings) if f.name != "max_new_tokens"},
    }
    progress = tqdm(
        total=len(benchmark.sequences), unit="seq", desc=args.benchmark, file=sys.stderr, disable=args.quiet
    )

    def step(name: str, status: str) -> None:
        progress.set_postfix_str(f"{name}: {status}", refresh=False)
        progress.update(1)

    try:
        run = run_benchmark(
            tracker,
            benchmark,
            out,
            task=args.task,
            protocol=args.protocol,
            max_frames=args.max_frames,
            batch_size=args.batch_size,
            tracker_name=Path(args.model or DEFAULT_MODEL).name or "Elysium",
            on_sequence=step,
            key=key,
        )
    except EvalRunError as error:
        raise UserError(str(error)) from None
    finally:
        progress.close()
    metrics = run.metrics or {}
    print(
        f"{args.benchmark} ({args.protocol} protocol, {args.task}): AUC {100 * metrics['success_auc']:.1f}  "
        f"P@20 {100 * metrics['precision_20px']:.1f}  normP {100 * metrics['norm_precision']:.1f}  "
        f"over {metrics['sequences']} sequences"
    )
    print(
        f"tracked {len(run.tracked)}, resumed {len(run.resumed)}, failed {len(run.failed)}, "
        f"skipped by the reader {len(run.skipped)}"
    )
    for name, reason in run.failed[:5]:
        print(f"  failed {name}: {reason}")
    print(f"wrote {run.metrics_path}")
    for plot in run.plots:
        print(f"wrote {plot}")
    return 0


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    from elysium.evaluation.benchmarks import BENCHMARKS
    from elysium.evaluation.ope import PROTOCOLS
    from elysium.inference.track_cli import add_search_arguments, add_trust_argument

    parser = subparsers.add_parser(
        "eval",
        help="track every sequence of a benchmark and score it (OPE)",
        description="Run Elysium over a tracking benchmark, writing OUT/results/<seq>.txt (x,y,w,h) as it goes "
        "(re-running resumes), then OUT/metrics.json and success/precision plots.",
    )
    parser.add_argument("--benchmark", required=True, choices=BENCHMARKS)
    parser.add_argument("--root", required=True, help="benchmark folder (ElysiumTrack: the JSON-lines file)")
    parser.add_argument("--model", default=None, help="folder of a saved Elysium (default: the packaged elysium-tiny)")
    parser.add_argument("--task", choices=("sot", "rsot"), default="sot", help="start from the box or the words")
    parser.add_argument("--protocol", choices=PROTOCOLS, default="got10k", help="scoring rules (default got10k)")
    parser.add_argument("--subset", default=None, help="LaSOT test/all, GOT-10k val/test, UAV123/UAV20L")
    parser.add_argument("--out", default=None, help="output folder (default eval_<benchmark>_<task>)")
    parser.add_argument("--max-frames", type=int, default=None, help="track only the first N frames a sequence")
    parser.add_argument("--batch-size", type=int, default=1, help="sequences tracked together (default 1)")
    parser.add_argument(
        "--clip-len", type=int, default=None, help="frames a clip (default: as the model was trained, else 8)"
    )
    parser.add_argument("--max-new-tokens", type=int, default=None)
    add_search_arguments(parser)
    parser.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: cuda if present)")
    add_trust_argument(parser)
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(run=run_eval)
