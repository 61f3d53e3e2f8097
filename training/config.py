"""Training configs: a YAML file with `model`, `stage`, `lora`, `data` and `training` (SFTConfig) sections, plus
`--section.key value` overrides from the command line (values parsed as YAML, so `--training.max_steps 10`)."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

SECTIONS = ("model", "stage", "lora", "data", "training")


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
    return config
