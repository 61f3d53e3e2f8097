"""The package's layout: dependencies go one way, the metrics and readers load no model, experiments stay out.

modeling_elysium <- processing <- synthetic / evaluation (metrics, readers) <- inference (the tracker, and the one
module where a model meets a benchmark: `inference/benchmark_runner.py`) / training <- the `elysium` command.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# What each installed folder may import of the others (`elysium.<folder>`, at module level or inside a function).
ALLOWED = {
    "modeling_elysium": set(),
    "processing": {"modeling_elysium"},
    "utils": set(),
    "assets": set(),
    "models": set(),
    "synthetic": {"processing", "utils", "assets"},
    "evaluation": {"processing", "utils"},
    "data_engine": {"processing", "utils"},
    # hub publishes what inference runs: an export ships the tracking pipeline and checks weights as loading does
    "hub": {"modeling_elysium", "processing", "utils", "inference"},
    "inference": {"modeling_elysium", "processing", "utils", "evaluation", "synthetic", "assets"},
    "training": {"modeling_elysium", "processing", "utils", "evaluation", "synthetic", "hub", "data_engine"},
    # the `elysium` command, the top layer: it may import every folder, and no folder imports it
    "cli": {"modeling_elysium", "processing", "utils", "assets", "models", "synthetic", "evaluation", "data_engine"}
    | {"hub", "inference", "training"},
}

# The metrics and benchmark readers (and the scoring built on them): any tracker's results can be scored with them.
MODEL_FREE = [
    "elysium.evaluation.ope",
    "elysium.evaluation.benchmarks",
    "elysium.evaluation.captions",
    "elysium.evaluation.plots",
    "elysium.evaluation.report",
    "elysium.evaluation.heldout",
    "elysium.evaluation.heldout_report",
    "elysium.evaluation.cli",
]
MODEL_MODULES = (
    "elysium.modeling_elysium",
    "elysium.processing",
    "elysium.inference",
    "elysium.training",
    "transformers.models",
    "transformers.modeling_utils",
    "torch",
)


def _installed_folders() -> list[str]:
    """setup.py's FOLDERS: the folders installed under `elysium.`."""
    tree = ast.parse((ROOT / "setup.py").read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "FOLDERS" for t in node.targets):
            return ast.literal_eval(node.value)
    raise AssertionError("setup.py has no FOLDERS list")


def _imports(path: Path) -> list[str]:
    """Absolute module names a file imports, anywhere in it."""
    names = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.append(node.module)
    return names


def _loaded_after_import(modules: list[str]) -> list[str]:
    """The modules a fresh interpreter holds after importing `modules`."""
    code = (
        f"import importlib, json, sys\nfor m in {modules!r}: importlib.import_module(m)\n"
        "print(json.dumps(sorted(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT / "tests")
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_every_installed_folder_is_checked():
    assert set(_installed_folders()) == set(ALLOWED)
    assert "experiments" not in _installed_folders()


def test_dependencies_go_one_way():
    wrong = []
    for folder, allowed in ALLOWED.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            for name in _imports(path):
                parts = name.split(".")
                if parts[0] == "experiments":
                    wrong.append(f"{path.relative_to(ROOT)} imports {name}: experiments are not installed")
                elif parts[0] == "elysium" and len(parts) > 1 and parts[1] in ALLOWED:
                    if parts[1] != folder and parts[1] not in allowed:
                        wrong.append(f"{path.relative_to(ROOT)} imports {name}")
    assert not wrong, "\n".join(wrong)


def test_metrics_and_readers_load_no_model():
    loaded = _loaded_after_import(MODEL_FREE)
    assert set(MODEL_FREE) <= set(loaded)  # the check sees what it imported
    assert [m for m in loaded if m.startswith(MODEL_MODULES)] == []


def test_the_generated_world_loads_no_model():
    loaded = _loaded_after_import(["elysium.synthetic"])
    assert "elysium.synthetic.scenes" in loaded
    assert [m for m in loaded if m.startswith(MODEL_MODULES)] == []


def test_a_model_module_is_seen():
    """The check can fail: the tracker's module loads the model and transformers' model code."""
    loaded = _loaded_after_import(["elysium.inference.benchmark_runner"])
    assert "elysium.modeling_elysium" in loaded and any(m.startswith("transformers.models") for m in loaded)
