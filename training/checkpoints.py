"""Which checkpoint a rerun resumes from: the newest whole one.

A job killed while it saved, or a disk that filled, leaves a last checkpoint with a truncated file, and Trainer
would fail on it deep inside loading (or, for the RNG states, resume differently). The checks are cheap and need
no model: `trainer_state.json` parses, every safetensors file's header covers the file exactly
(`utils.safetensors_check`, the check `elysium` runs before loading a model), and every torch file (`torch.save`'s
zip format: optimizer, scheduler, RNG states, DeepSpeed's `global_step*/` states) has its zip directory, which sits
at the end and so is lost to any truncation.
"""

from __future__ import annotations

import json
import re
import zipfile
from pathlib import Path

from elysium.utils.safetensors_check import safetensors_problem

CHECKPOINT = re.compile(r"checkpoint-(\d+)")  # Trainer's folder names (transformers.trainer_utils)
DAMAGED_PREFIX = "damaged-"  # a rejected checkpoint is renamed so: kept to look at, never resumed or rotated
TORCH_SUFFIXES = (".pt", ".pth", ".bin")


def checkpoint_problem(folder: Path) -> str | None:
    """Why Trainer cannot resume from `folder` (one line naming the file), or None when every file is whole."""
    state = folder / "trainer_state.json"
    try:
        json.loads(state.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return "trainer_state.json is missing"
    except (OSError, ValueError) as error:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        return f"trainer_state.json is unreadable ({type(error).__name__})"
    for path in sorted(folder.rglob("*")):
        if not path.is_file():
            continue
        name = path.relative_to(folder)
        if path.suffix == ".safetensors":
            problem = safetensors_problem(path)
            if problem is not None:
                return f"{name} is damaged ({path.stat().st_size} bytes: {problem})"
        elif path.suffix in TORCH_SUFFIXES:
            try:
                with zipfile.ZipFile(path):
                    pass
            except (zipfile.BadZipFile, OSError):
                return f"{name} is damaged ({path.stat().st_size} bytes, not a whole torch.save file)"
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        try:
            shards = set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values())
        except (OSError, ValueError, KeyError, TypeError):
            return "model.safetensors.index.json is unreadable"
        missing = sorted(shard for shard in shards if not (folder / shard).is_file())
        if missing:
            return f"weight shards listed in model.safetensors.index.json are missing: {', '.join(missing)}"
    return None


def checkpoints_newest_first(output_dir: Path) -> list[Path]:
    """The `checkpoint-N` folders of `output_dir`, highest N first."""
    if not output_dir.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in output_dir.iterdir() if (m := CHECKPOINT.fullmatch(p.name)) and p.is_dir()]
    return [path for _, path in sorted(found, reverse=True)]


def resumable_checkpoint(output_dir: Path) -> tuple[Path | None, list[tuple[Path, str]]]:
    """The newest checkpoint that can be resumed (None when there is none at all) and the newer ones rejected,
    each with why. Every checkpoint damaged is an error: starting over would silently throw the run away."""
    rejected: list[tuple[Path, str]] = []
    for folder in checkpoints_newest_first(output_dir):
        problem = checkpoint_problem(folder)
        if problem is None:
            return folder, rejected
        rejected.append((folder, problem))
    if rejected:
        why = "; ".join(f"{folder.name}: {problem}" for folder, problem in rejected)
        raise ValueError(
            f"no checkpoint in {output_dir} can be resumed ({why}). Move them out of the folder to train from the "
            "start, or point training.output_dir elsewhere"
        )
    return None, rejected


def set_aside(folder: Path) -> Path:
    """Rename a rejected checkpoint to `damaged-checkpoint-N` (a free name), out of Trainer's way."""
    target = folder.with_name(DAMAGED_PREFIX + folder.name)
    number = 1
    while target.exists():
        number += 1
        target = folder.with_name(f"{DAMAGED_PREFIX}{number}-{folder.name}")
    folder.rename(target)
    return target
