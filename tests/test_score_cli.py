"""``elysium score`` end to end through ``elysium.cli.main`` on a small LaSOT-layout fixture."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from elysium.cli import main
from elysium.evaluation.benchmarks import write_results

GT = np.array([[10, 10, 20, 20], [12, 10, 20, 20], [14, 10, 20, 20], [16, 10, 20, 20]], dtype=float)


@pytest.fixture()
def lasot(tmp_path: Path) -> Path:
    """Three sequences; cat-2 has frame 3 out of view. Frames are not needed for scoring."""
    root = tmp_path / "LaSOT"
    for name, oov in [("cat-1", "0,0,0,0"), ("cat-2", "0,0,1,0"), ("dog-1", "0,0,0,0")]:
        folder = root / name.split("-")[0] / name
        folder.mkdir(parents=True)
        np.savetxt(folder / "groundtruth.txt", GT, fmt="%d", delimiter=",")
        (folder / "full_occlusion.txt").write_text("0,0,0,0\n")
        (folder / "out_of_view.txt").write_text(oov + "\n")
    return root


@pytest.fixture()
def results(tmp_path: Path) -> Path:
    """A tracker with results for cat-1 (perfect) and cat-2 (perfect but frame 4 lost 100 px); dog-1 missing."""
    folder = tmp_path / "mytracker"
    write_results(folder, "cat-1", GT)
    lost = GT.copy()
    lost[3, 0] += 100
    write_results(folder, "cat-2", lost)
    return folder


def run(capsys, *args: str) -> tuple[int, str, str]:
    code = main(["score", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_score_json_got10k(capsys, lasot, results):
    code, out, err = run(capsys, "--results", str(results), "--benchmark", "lasot", "--root", str(lasot), "--json")
    assert code == 0
    scores = json.loads(out)
    assert list(scores) == ["success_auc", "precision_20px", "norm_precision", "sequences"]
    # got10k ignores the out-of-view flag: cat-1 has 4 perfect frames, cat-2 3 of 4 (frame 4 lost)
    assert scores["sequences"] == 2
    assert scores["success_auc"] == pytest.approx((20 / 21 + 20 * (3 / 4) / 21) / 2, abs=1e-6)
    assert scores["precision_20px"] == pytest.approx((1 + 3 / 4) / 2)
    assert scores["norm_precision"] == pytest.approx((1 + 3 / 4) / 2)  # errors 0 or 100/20 = 5
    assert "missing results for 1 of 3 sequences: dog-1" in err


def test_score_json_pytracking(capsys, lasot, results):
    args = ["--results", str(results), "--benchmark", "lasot", "--root", str(lasot), "--json"]
    code, out, _ = run(capsys, *args, "--protocol", "pytracking")
    assert code == 0
    scores = json.loads(out)
    # pytracking on LaSOT: cat-2's out-of-view frame 3 fails too, leaving 2 of 4 frames
    assert scores["success_auc"] == pytest.approx((20 / 21 + 20 * (2 / 4) / 21) / 2, abs=1e-6)
    assert scores["precision_20px"] == pytest.approx((1 + 2 / 4) / 2)
    assert scores["norm_precision"] == pytest.approx((1 + 2 / 4) / 2)


def test_score_text_plots_metrics_and_strict(capsys, lasot, results, tmp_path):
    other = tmp_path / "baseline"
    for name in ("cat-1", "cat-2", "dog-1"):
        write_results(other, name, GT + [30, 0, 0, 0])  # always 30 px off (frame 1 still counts)
    metrics = tmp_path / "out" / "metrics.json"
    code, out, err = run(
        capsys,
        *("--results", str(results), "--benchmark", "lasot", "--root", str(lasot)),
        *("--plots", str(tmp_path / "plots"), "--compare", str(other), "--metrics", str(metrics), "--strict"),
    )
    assert code == 1  # --strict: dog-1 has no results
    assert "mytracker" in out and "baseline" in out and "AUC" in out
    for name in ("success.png", "precision.png", "norm_precision.png"):
        data = (tmp_path / "plots" / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
    report = json.loads(metrics.read_text())
    assert report["tracker"] == "mytracker" and report["protocol"] == "got10k"
    assert report["missing_results"] == ["dog-1"]
    assert sorted(report["per_sequence"]) == ["cat-1", "cat-2"]
    assert len(report["curves"]["success"]["values"]) == 21
    assert report["curves"]["precision"]["values"][20] == pytest.approx(report["precision_20px"])
    assert not [p for p in metrics.parent.iterdir() if p.name != "metrics.json"]  # no temp files left


def test_score_user_errors_and_bad_results(capsys, lasot, results, tmp_path):
    code, _, err = run(capsys, "--results", str(results), "--benchmark", "otb", "--root", str(tmp_path / "none"))
    assert code == 2 and err.startswith("error: ") and "none" in err
    code, _, err = run(capsys, "--results", str(tmp_path / "nope"), "--benchmark", "lasot", "--root", str(lasot))
    assert code == 2 and "results folder not found" in err
    code, _, err = run(
        capsys, "--results", str(results), "--benchmark", "got10k", "--root", str(lasot), "--subset", "test"
    )
    assert code == 2 and "withheld" in err

    (results / "dog-1.txt").write_text("1,2,3\n")  # malformed: reported, not a crash
    code, out, err = run(capsys, "--results", str(results), "--benchmark", "lasot", "--root", str(lasot), "--json")
    assert code == 0 and json.loads(out)["sequences"] == 2
    assert "could not score dog-1" in err and "line 1 has 3 values" in err

    empty = tmp_path / "empty"
    empty.mkdir()
    code, _, err = run(capsys, "--results", str(empty), "--benchmark", "lasot", "--root", str(lasot))
    assert code == 2 and "no scorable result file for any of the 3 sequences" in err
