"""Training configs: a YAML file with `model`, `stage`, `lora`, `data` and `training` (SFTConfig) sections, plus
`--section.key value` overrides from the command line (values parsed as YAML, so `--training.max_steps 10`).

A recipe of several stages (the paper's image pretraining, then video finetuning) adds `stages`: a list of
`{name, <section overrides>}` run in order, each from the previous stage's `final/` (see `stage_configs`).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

SECTIONS = ("model", "stage", "lora", "data", "training", "decay_on_loss", "stages")
STAGE_SECTIONS = ("stage", "lora", "data", "training", "decay_on_loss")


def apply_overrides(config: dict[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """`["--training.max_steps", "10", "--stage", "stage2"]` applied onto a copy of `config`.

    A bare key (`--max_steps 10`) goes to the one section that already holds it.
    """
    config = copy.deepcopy(config)
    items = list(overrides)
    if len(items) % 2:
        raise ValueError(f"overrides come in `--key value` pairs; got {items}")
    for flag, raw in zip(items[::2], items[1::2]):
        if not flag.startswith("--"):
            raise ValueError(f"override {flag!r} must start with --")
        path = flag[2:].replace("-", "_").split(".")
        if len(path) == 1 and path[0] not in SECTIONS:
            owners = [s for s in SECTIONS if isinstance(config.get(s), dict) and path[0] in config[s]]
            if len(owners) != 1:
                raise ValueError(f"--{path[0]} is ambiguous or unknown; write it as --section.{path[0]}")
            path = [owners[0], path[0]]
        node = config
        for key in path[:-1]:
            node = node.setdefault(key, {})
        node[path[-1]] = yaml.safe_load(raw)
    return config


def load_config(path: str | Path, overrides: Sequence[str] = ()) -> dict[str, Any]:
    """The YAML at `path` with `overrides`; unknown top-level sections are an error (typos fail early)."""
    config = yaml.safe_load(Path(path).read_text()) or {}
    unknown = set(config) - set(SECTIONS)
    if unknown:
        raise ValueError(f"{path}: unknown sections {sorted(unknown)}; use {', '.join(SECTIONS)}")
    config = apply_overrides(config, overrides)
    config.setdefault("stage", "stage2")
    for section in ("model", "lora", "data", "training"):
        config.setdefault(section, {})
    if "stages" in config:
        check_stages(config["stages"], path)
        # The command line wins in every stage too (`--training.max_steps 10` shortens each one).
        items = list(overrides)
        staged = [
            item
            for flag, raw in zip(items[::2], items[1::2])
            if flag[2:].replace("-", "_").split(".")[0] in STAGE_SECTIONS
            for item in (flag, raw)
        ]
        config["stages"] = [apply_overrides(entry, staged) for entry in config["stages"]]
    return config


def check_stages(stages: Any, path: str | Path) -> None:
    """`stages` must be a non-empty list of `{name, ...}` with unique folder-safe names and known sections."""
    if not isinstance(stages, list) or not stages:
        raise ValueError(f"{path}: `stages` must be a non-empty list of {{name: ..., <section>: ...}}")
    names = []
    for number, entry in enumerate(stages, 1):
        name = entry.get("name") if isinstance(entry, dict) else None
        if not isinstance(name, str) or not name or "/" in name or name.startswith("."):
            raise ValueError(f"{path}: stage {number} needs a `name` usable as a folder name (got {name!r})")
        unknown = set(entry) - {"name", "model", *STAGE_SECTIONS}
        if unknown:
            raise ValueError(
                f"{path}: stage {name!r} has unknown keys {sorted(unknown)}; use {('model', *STAGE_SECTIONS)}"
            )
        names.append(name)
    if len(set(names)) != len(names):
        raise ValueError(f"{path}: stage names must be unique, got {names}")


def merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """`update` onto a copy of `base`: dicts merge key by key, anything else is replaced."""
    out = copy.deepcopy(base)
    for key, value in update.items():
        out[key] = merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def stage_configs(config: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """The single-stage configs of a `stages` recipe, in order: each entry merged onto the base config, writing
    to `<training.output_dir>/<name>`; every stage after the first starts from the previous stage's `final/`
    (the base `model` builds only the first). A config without `stages` is one stage named after its folder."""
    base = {k: v for k, v in config.items() if k != "stages"}
    if not config.get("stages"):
        return [(Path(base["training"].get("output_dir", "runs")).name, base)]
    root = Path(base["training"].get("output_dir", "runs/elysium"))
    out, previous = [], None
    for entry in config["stages"]:
        stage = merge(base, {k: v for k, v in entry.items() if k != "name"})
        stage["training"]["output_dir"] = str(root / entry["name"])
        if previous is not None:
            kept = {k: base["model"][k] for k in ("attn_implementation", "dtype", "lr_scale") if k in base["model"]}
            own = entry.get("model") or {}  # a stage's own model keys (e.g. t_selector_tokens) still apply
            stage["model"] = {"model_name_or_path": str(previous / "final"), **kept, **own}
        previous = root / entry["name"]
        out.append((entry["name"], stage))
    return out
