"""The held-out report as markdown: every model beside the baselines, SOT by condition, and the failure images.

Why a table per question: the README quotes these tables as they are, so a reader sees each score next to what a
trivial tracker gets on the same tracks, and the trainings being compared side by side.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# (row label, task key in a model's report, metric key, baseline key): tracking metrics are 0..1, shown x100.
TRACKING_ROWS = (
    ("SOT AUC", "sot", "success_auc", "sot_first_box"),
    ("SOT precision (20 px)", "sot", "precision_20px", "sot_first_box"),
    ("RSOT AUC", "rsot", "success_auc", "rsot_central_box"),
    ("RSOT precision (20 px)", "rsot", "precision_20px", "rsot_central_box"),
)
CAPTION_ROWS = (("Video-REG METEOR", "meteor"), ("Video-REG CIDEr", "cider"))
BASELINES = {
    "sot_first_box": "SOT: the first-frame box in every frame",
    "rsot_central_box": "RSOT: one centred box of the set's median size",
    "video_reg_most_common": "Video-REG: for each track, the most common description of the other tracks",
}


def _cell(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}"


def _caption(scores: Mapping[str, Any] | None, metric: str) -> float | None:
    return None if scores is None else scores.get(metric)


def _table(header: list[str], rows: list[list[str]], align_first_left: bool = True) -> str:
    rule = [":--" if align_first_left and i == 0 else "--:" for i in range(len(header))]
    lines = [header, rule, *rows]
    return "\n".join("| " + " | ".join(line) + " |" for line in lines)


def scores_table(report: Mapping[str, Any]) -> str:
    """Rows SOT/RSOT AUC and precision, Video-REG METEOR/CIDEr (x100); a column per model, then the baseline."""
    models, baselines = report["models"], report["baselines"]
    rows = []
    for label, task, metric, baseline in TRACKING_ROWS:
        cells = [_cell(m[task][metric]) for m in models.values()]
        rows.append([label, *cells, _cell(baselines[baseline][metric])])
    for label, metric in CAPTION_ROWS:
        cells = [_cell(_caption(m.get("video_reg"), metric)) for m in models.values()]
        rows.append([label, *cells, _cell(_caption(baselines.get("video_reg_most_common"), metric))])
    return _table(["metric (x100)", *models, "baseline"], rows)


def conditions_table(report: Mapping[str, Any]) -> str:
    """SOT AUC (x100) with and without each condition: a pair of columns per model, then the first-box baseline."""
    models, baseline = report["models"], report["baselines"]["sot_by_condition_first_box"]
    header = ["condition", "tracks with"]
    for name in [*models, "baseline"]:
        header += [f"{name} with", f"{name} without"]
    rows = []
    for condition, counts in baseline.items():
        row = [condition, str(counts["tracks_with"])]
        for scores in [m["by_condition"] for m in models.values()] + [baseline]:
            row += [_cell(scores[condition]["auc_with"]), _cell(scores[condition]["auc_without"])]
        rows.append(row)
    return _table(header, rows)


def _setting_line(settings: Mapping[str, Any]) -> str:
    if settings.get("generated"):
        source = f"generated videos, seed {settings['seed']} (training used seed {settings['train_seed']})"
    else:
        seed = f", seed {settings['seed']}" if settings.get("seed") is not None else ""
        source = f"`{settings['data']}`{seed}"
    captions = "" if settings["captions"] else " Video-REG was not run (`--no-captions`)."
    clips = f"{settings['clip_len']} frames" if settings.get("clip_len") else "the length each model was trained on"
    return (
        f"Held-out data: {source}; {settings['videos']} videos, {settings['tracks']} tracks, up to the first "
        f"{settings['max_frames']} frames of each ({settings['frames']} frames in all). Tracked in clips of "
        f"{clips}, scored by the {settings['protocol']} protocol; scores x100. Each baseline is "
        f"computed in the same run on the same tracks.{captions}"
    )


def failures_section(report: Mapping[str, Any]) -> str:
    """Markdown image links to each model's failure strips; a track worst for several conditions is shown once."""
    lines = [
        "## Failure cases",
        "",
        "For each condition, the tracks each model tracked worst (lowest mean IoU over the frames) among those with "
        "the condition; green: ground truth, red: prediction, frame number and IoU under each frame.",
    ]
    for name, model in report["models"].items():
        images: dict[str, list[Mapping[str, Any]]] = {}
        for case in model.get("failures", []):
            images.setdefault(case["path"], []).append(case)
        lines += ["", f"### {name}", ""]
        if not images:
            lines.append("No failure images (no track has any of the conditions, or `--failures 0`).")
        for path, cases in images.items():
            case = cases[0]
            conditions = ", ".join(c["condition"] for c in cases)
            lines += [
                f"- {case['task'].upper()}, worst with {conditions}: track `{case['track_id']}` "
                f'("{case["expression"]}"), mean IoU {case["mean_iou"]:.2f}',
                "",
                f"  ![{case['task'].upper()} {case['track_id']}]({path})",
                "",
            ]
    return "\n".join(lines).rstrip() + "\n"


def markdown_report(report: Mapping[str, Any]) -> str:
    """The whole report.md: settings, the scores table, baselines, SOT by condition, failure cases."""
    baselines = [f"- {text}" for key, text in BASELINES.items() if key in report["baselines"]]
    parts = [
        "# Held-out evaluation",
        _setting_line(report["settings"]),
        scores_table(report),
        "Baselines:\n" + "\n".join(baselines),
        "## SOT success AUC by condition",
        "On the tracks with each condition and on those without (a condition can also change which tracks are "
        "easy for the baseline).",
        conditions_table(report),
        failures_section(report),
    ]
    return "\n\n".join(part.rstrip() for part in parts) + "\n"
