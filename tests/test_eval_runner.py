"""`elysium eval` / inference.benchmark_runner on a tiny OTB-layout benchmark: results, metrics, plots, resume,
failures."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from elysium.cli import main
from elysium.evaluation.benchmarks import load_benchmark, read_boxes
from elysium.inference.benchmark_runner import run_benchmark
from elysium.inference.tracker import ElysiumTracker


def make_sequence(
    root: Path, name: str, frames: int, first_box: str = "2,10,10,10", corrupt: int | None = None
) -> None:
    folder = root / name / "img"
    folder.mkdir(parents=True)
    rows = []
    for i in range(frames):
        image = np.zeros((40, 60, 3), np.uint8)
        image[10:20, 2 + 2 * i : 12 + 2 * i] = 255
        path = folder / f"{i + 1:04d}.jpg"
        if i == corrupt:
            path.write_bytes(b"not a jpeg")
        else:
            Image.fromarray(image).save(path)
        rows.append(first_box if i == 0 else f"{2 + 2 * i},10,10,10")
    (root / name / "groundtruth_rect.txt").write_text("\n".join(rows) + "\n")


@pytest.fixture()
def otb(tmp_path) -> Path:
    root = tmp_path / "otb"
    make_sequence(root, "Square", 10)
    make_sequence(root, "Short", 4)
    make_sequence(root, "Broken", 9, corrupt=8)  # an unreadable frame: fails while tracking
    make_sequence(root, "NoStart", 5, first_box="nan,nan,nan,nan")  # nothing to start from
    return root


def test_runner_writes_results_metrics_and_resumes(otb, tmp_path, model, processor):
    tracker = ElysiumTracker(model, processor, max_new_tokens=8)
    benchmark = load_benchmark("otb", otb)
    out = tmp_path / "run"
    seen: list[tuple[str, str]] = []
    run = run_benchmark(tracker, benchmark, out, protocol="got10k", batch_size=2, on_sequence=lambda *a: seen.append(a))

    assert sorted(run.tracked) == ["Short", "Square"]
    assert sorted(name for name, _ in run.failed) == ["Broken", "NoStart"]
    assert "not a jpeg" in dict(run.failed)["Broken"] or "cannot read" in dict(run.failed)["Broken"]
    assert read_boxes(out / "results" / "Square.txt").shape == (10, 4)
    first = read_boxes(out / "results" / "Square.txt")[0]
    assert first.tolist() == [2, 10, 10, 10]  # x,y,w,h, the given box on frame 1
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["sequences"] == 2 and metrics["protocol"] == "got10k"
    assert 0 <= metrics["success_auc"] <= 1 and len(metrics["run"]["failed"]) == 2
    assert set(metrics["missing_results"]) == {"Broken", "NoStart"}
    assert (out / "success.png").stat().st_size > 0 and (out / "precision.png").stat().st_size > 0
    assert len(seen) == 4

    # a second run resumes: finished sequences are not tracked again, failed ones are retried
    (out / "results" / "Square.txt").write_text("1,1,5,5\n" * 10)
    again = run_benchmark(tracker, benchmark, out, protocol="pytracking")
    assert sorted(again.resumed) == ["Short", "Square"] and again.tracked == [] and len(again.failed) == 2
    assert (out / "results" / "Square.txt").read_text() == "1,1,5,5\n" * 10
    assert json.loads((out / "metrics.json").read_text())["protocol"] == "pytracking"


def test_eval_cli_end_to_end(otb, tmp_path, model, processor, capsys):
    folder = tmp_path / "model"
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    out = tmp_path / "cli_run"
    argv = ["eval", "--benchmark", "otb", "--root", str(otb), "--model", str(folder), "--out", str(out)]
    assert main([*argv, "--max-frames", "6", "--max-new-tokens", "8", "--quiet"]) == 0
    printed = capsys.readouterr().out
    # only the first 6 frames are read, so Broken's unreadable 9th frame is never reached
    assert "tracked 3, resumed 0, failed 1" in printed and str(out / "metrics.json") in printed
    assert read_boxes(out / "results" / "Square.txt").shape == (6, 4)
    assert main([*argv, "--max-frames", "6", "--quiet"]) == 0
    assert "tracked 0, resumed 3, failed 1" in capsys.readouterr().out

    assert main(["eval", "--benchmark", "otb", "--root", str(tmp_path / "none"), "--model", str(folder)]) == 2
    assert capsys.readouterr().err.startswith("error: ")
