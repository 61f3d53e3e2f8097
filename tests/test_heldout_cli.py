"""`elysium heldout` end to end with tiny random models on a few generated videos, and its one-line errors."""

from __future__ import annotations

import json
import os
import shutil

from PIL import Image

from elysium.cli import main
from elysium.synthetic import synthesize

FAST = ["--max-frames", "6", "--clip-len", "4", "--max-new-tokens", "8", "--quiet"]


def test_two_models_on_a_generated_set_write_report_and_failures(model_dir, tmp_path, capsys, monkeypatch):
    out = tmp_path / "report"
    shutil.copytree(model_dir, model_dir.parent / "frozen-gate")
    argv = ["heldout", "--model", f"learned={model_dir}", "--model", str(model_dir.parent / "frozen-gate")]
    code = main([*argv, "--seed", "4243", "--videos", "3", "--no-captions", "--out", str(out), *FAST])
    printed = capsys.readouterr().out
    assert code == 0

    report = json.loads((out / "report.json").read_text())
    assert list(report["models"]) == ["learned", "frozen-gate"]
    settings = report["settings"]
    assert settings["seed"] == 4243 and settings["train_seed"] == 1 and settings["generated"]
    assert settings["videos"] == 3 and settings["tracks"] >= 3 and settings["max_frames"] == 6
    assert settings["protocol"] == "got10k" and settings["elapsed_s"] >= 0 and not settings["captions"]
    assert set(report["baselines"]) == {"sot_first_box", "rsot_central_box", "sot_by_condition_first_box"}
    learned = report["models"]["learned"]
    assert 0 <= learned["sot"]["success_auc"] <= 1 and "video_reg" not in learned
    assert len(learned["per_track"]) == settings["tracks"]
    # the same weights under two names score the same
    assert learned["sot"] == report["models"]["frozen-gate"]["sot"]

    assert learned["failures"], "a generated set has tracks with distractors or small objects"
    for case in learned["failures"]:
        path = out / case["path"]
        assert path.parent == out / "failures" / "learned" and path.suffix == ".png"
        assert Image.open(path).width > 2 * 160
    markdown = (out / "report.md").read_text()
    assert "| SOT AUC |" in markdown and "| Video-REG CIDEr |" in markdown and "frozen-gate" in markdown
    assert f"]({learned['failures'][0]['path']})" in markdown
    assert "| SOT AUC |" in printed and "| occluded |" in printed and str(out / "report.json") in printed
    assert (out / "data" / "annotations.jsonl").is_file()

    # A re-run reuses each finished model's result (nothing is tracked again) and writes the same report; other
    # settings, or a model's weights saved anew, are tracked again.
    from elysium.inference import heldout_cli

    evaluate = heldout_cli.evaluate_model
    calls: list[str] = []
    monkeypatch.setattr(heldout_cli, "evaluate_model", lambda name, *a: calls.append(name) or evaluate(name, *a))
    assert main([*argv, "--data", str(out / "data"), "--no-captions", "--out", str(out), *FAST]) == 0
    again = json.loads((out / "report.json").read_text())
    assert calls == [] and again["models"] == report["models"]
    assert "learned: reusing its finished result" in capsys.readouterr().err
    weights = model_dir.parent / "frozen-gate" / "model.safetensors"
    os.utime(weights, ns=(weights.stat().st_atime_ns, weights.stat().st_mtime_ns + 10**9))
    assert main([*argv, "--data", str(out / "data"), "--no-captions", "--out", str(out), *FAST]) == 0
    assert calls == ["frozen-gate"]
    assert main([*argv, "--data", str(out / "data"), "--no-captions", "--out", str(out), *FAST, "--views", "2"]) == 0
    assert calls == ["frozen-gate", "learned", "frozen-gate"]
    # the tracker's defaults live in config.json: a model given other ones (here its search square) is tracked again
    config_path = model_dir.parent / "frozen-gate" / "config.json"
    config_path.write_text(json.dumps({**json.loads(config_path.read_text()), "track_search_context": 2.0}))
    assert main([*argv, "--data", str(out / "data"), "--no-captions", "--out", str(out), *FAST, "--views", "2"]) == 0
    assert calls == ["frozen-gate", "learned", "frozen-gate", "frozen-gate"]
    from elysium.evaluation import heldout

    monkeypatch.setattr(heldout, "SCORING", heldout.SCORING + 1)  # scored another way: nothing saved is reused
    assert main([*argv, "--data", str(out / "data"), "--no-captions", "--out", str(out), *FAST, "--views", "2"]) == 0
    assert calls == ["frozen-gate", "learned", "frozen-gate", "frozen-gate", "learned", "frozen-gate"]


def test_captions_are_scored_beside_the_most_common_description(model_dir, tmp_path, capsys, monkeypatch):
    """Video-REG wiring; METEOR's Java run (~20 s to start) is stood in for: tests/test_caption_metrics.py runs it."""
    from elysium.evaluation import captions

    monkeypatch.setattr(captions, "require_java", lambda: "java")
    monkeypatch.setattr(captions, "_meteor", lambda gts, res: (0.25, [0.25] * len(gts)))
    data = tmp_path / "data"
    synthesize(data, videos=1, seed=4244, frames_per_video=(8, 10), size=(64, 48), progress=False)
    out = tmp_path / "report"
    code = main(["heldout", "--model", str(model_dir), "--data", str(data), "--tracks", "2", "--out", str(out), *FAST])
    assert code == 0, capsys.readouterr().err
    report = json.loads((out / "report.json").read_text())
    assert report["settings"]["seed"] == 4244 and not report["settings"]["generated"]
    assert report["models"][model_dir.name]["video_reg"]["count"] == 2
    assert report["models"][model_dir.name]["video_reg"]["cider"] is not None
    assert report["baselines"]["video_reg_most_common"]["meteor"] == 0.25
    assert "| Video-REG METEOR | 25.0 | 25.0 |" in capsys.readouterr().out


def test_bad_input_is_one_clear_line(model_dir, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    train = tmp_path / "train"
    synthesize(train, videos=1, seed=1, frames_per_video=(8, 8), size=(64, 48), progress=False)
    model = ["--model", str(model_dir), "--out", str(tmp_path / "o")]
    cases = {
        "training seed": (["--seed", "1", *model], "--seed 1 is the training seed"),
        "other training seed": (["--seed", "7", "--train-seed", "7", *model], "--seed 7 is the training seed"),
        "missing data": (["--data", str(tmp_path / "nope"), *model], "folder not found"),
        "no annotations": (["--data", str(tmp_path / "empty"), *model], "no annotations.jsonl"),
        "data of the training seed": (["--data", str(train), *model], "the training seed"),
        "empty name": (["--model", f"={model_dir}"], "NAME=PATH"),
        "bad name": (["--model", f"a/b={model_dir}"], "NAME=PATH"),
        "no path": (["--model", "learned="], "NAME=PATH"),
        "missing model": (["--model", f"x={tmp_path / 'none'}"], "does not exist"),
        "same name twice": (["--model", f"a={model_dir}", "--model", f"a={model_dir}"], "two models are named"),
        "too few frames": (["--max-frames", "1", *model], "--max-frames must be >= 2"),
    }
    for name, (argv, needle) in cases.items():
        code = main(["heldout", "--no-captions", "--quiet", *argv])
        err = capsys.readouterr().err
        lines = [line for line in err.splitlines() if line.strip()]
        assert code == 2, name
        assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], (name, err)
    assert not (tmp_path / "o").exists()  # every error came before any work
