"""Rerun issue #32's bad-input matrix and count the outcomes: clean, traceback, silently wrong, uninvited code.

    python tests/bad_input_matrix.py            # prints one line per case, then the counts

Not a test (pytest does not collect it): it runs the table of `tests/test_bad_inputs.py` through the CLI's
`main(argv)` and a few Python API calls, on a tiny random model built here, and classifies each outcome:
- clean: the expected exit code and phrase, exactly one `error: ` line for an error, no exception escaping;
- traceback: an exception escaped `main` (what a user would see as a traceback);
- silently wrong: a case meant to fail that succeeded, or a success without the expected result;
- uninvited code: a model folder's own code ran (the evil folder's marker file appeared) or transformers prompted.
"""

from __future__ import annotations

import builtins
import contextlib
import io
import os
import sys
import tempfile
import traceback
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from conftest import IMAGE_SIZE, T_SELECTOR_TOKENS, tiny_config  # noqa: E402
from test_bad_inputs import CASES, EVIL_MARKER, make_files, prepare_runs  # noqa: E402

from elysium.cli import UserError, main  # noqa: E402
from elysium.modeling_elysium import ElysiumForConditionalGeneration  # noqa: E402
from elysium.processing import ElysiumImageProcessor, ElysiumProcessor  # noqa: E402
from elysium.synthetic import synth_tokenizer  # noqa: E402


def tiny_model(folder: Path) -> Path:
    tokenizer = synth_tokenizer()
    torch.manual_seed(0)
    model = ElysiumForConditionalGeneration(tiny_config(len(tokenizer), tokenizer.convert_tokens_to_ids("<image>")))
    model.save_pretrained(folder)
    size = {"height": IMAGE_SIZE, "width": IMAGE_SIZE}
    processor = ElysiumProcessor(ElysiumImageProcessor(size=size), tokenizer, num_image_tokens=T_SELECTOR_TOKENS)
    processor.save_pretrained(folder)
    return folder


def api_cases(f: dict[str, Path]) -> dict[str, tuple[object, type[BaseException] | None, str]]:
    """Python API cases: name -> (callable, the error expected (None: success), a phrase of it)."""
    from elysium.inference import ElysiumTracker, tracking_pipeline
    from elysium.inference.loading import load_model_and_processor
    from elysium.inference.track_cli import describe_video

    tracker = ElysiumTracker.from_pretrained(f["model"], max_new_tokens=4)
    frames = [np.zeros((48, 64, 3), np.uint8)] * 4
    return {
        "api: load_model_and_processor, remote code": (
            lambda: load_model_and_processor(f["evil"]),
            UserError,
            "trust_remote_code=True",
        ),
        "api: ElysiumTracker.from_pretrained, remote code": (
            lambda: ElysiumTracker.from_pretrained(f["evil"]),
            UserError,
            "trust_remote_code",
        ),
        "api: tracking_pipeline, remote code": (lambda: tracking_pipeline(f["evil"]), UserError, "trust_remote_code"),
        "api: track, normalized box": (
            lambda: tracker.track(frames, box=[0.25, 0.33, 0.41, 0.58]),
            ValueError,
            "looks normalized",
        ),
        "api: track, </s> and <image> in the expression": (
            lambda: tracker.track(frames, expression="<image> the </s> square"),
            None,
            "",
        ),
        "api: ground, non-UTF-8 expression": (
            lambda: tracker.ground(frames[0], "caf\udce9"),
            ValueError,
            "not valid UTF-8",
        ),
        "api: describe_video, truncated": (
            lambda: describe_video(tracker, str(f["cut"]), [0, 10, 10, 20]),
            UserError,
            "truncated",
        ),
        "api: run_benchmark, batch_size 0": (
            lambda: __import__("elysium.inference.benchmark_runner", fromlist=["x"]).run_benchmark(
                tracker,
                __import__("elysium.evaluation.benchmarks", fromlist=["x"]).load_benchmark("otb", f["otb"]),
                f["tmp"] / "api_eval",
                batch_size=0,
            ),
            ValueError,
            "batch_size must be >= 1",
        ),
    }


def main_matrix() -> int:
    prompted = []
    builtins.input = lambda *a, **k: prompted.append(a) or "n"  # a prompt is counted as uninvited, answered "no"
    counts = {"clean": 0, "traceback": 0, "silently wrong": 0, "uninvited code": 0}
    with tempfile.TemporaryDirectory() as tmp:
        files = make_files(Path(tmp), tiny_model(Path(tmp) / "model"))
        prepare_runs(files)
        rows = []
        for name, (build, expected, phrase) in CASES.items():
            out, err = io.StringIO(), io.StringIO()
            try:
                with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                    code = main(build(files))
                raised = None
            except BaseException as error:  # noqa: BLE001  (an escaping exception is what is counted)
                code, raised = None, "".join(traceback.format_exception_only(type(error), error)).strip()
            text = out.getvalue() + err.getvalue()
            errors = [line for line in text.splitlines() if line.startswith("error: ")]
            if raised is not None or "Traceback" in text:
                outcome = "traceback"
            elif (expected is None and code in (0, 1)) or (
                code == expected and phrase in text and (expected != 2 or len(errors) == 1)
            ):
                outcome = "clean"
            else:
                outcome = "silently wrong"
            rows.append((name, outcome, raised or (errors[0] if errors else text.strip().splitlines()[-1:])))
        for name, (call, error_type, phrase) in api_cases(files).items():
            try:
                call()
                outcome = "clean" if error_type is None else "silently wrong"
                detail = "ok"
            except BaseException as error:  # noqa: BLE001
                clean = error_type is not None and isinstance(error, error_type) and phrase in str(error)
                outcome = "clean" if clean else "traceback"
                detail = f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
            rows.append((name, outcome, detail))
        if (files["evil"] / EVIL_MARKER).exists() or prompted:
            counts["uninvited code"] += 1
    for name, outcome, detail in rows:
        counts[outcome] += 1
        print(f"{outcome:15s} {name}: {str(detail)[:150]}")
    print(f"cases tried {len(rows)}: " + ", ".join(f"{key} {value}" for key, value in counts.items()))
    return 0 if counts["clean"] == len(rows) and not counts["uninvited code"] else 1


if __name__ == "__main__":
    torch.set_num_threads(1)
    sys.exit(main_matrix())
