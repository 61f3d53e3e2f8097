"""Load a saved Elysium (model + processor) for inference, with errors a user can act on."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from elysium.inference import default_model
from elysium.inference.cli import UserError


def resolve_device(device: str | None) -> torch.device:
    """`None`/"auto" picks CUDA when present, else the CPU; anything else must name a torch device."""
    if device in (None, "", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError as error:
        raise UserError(f"--device {device!r} is not a torch device ({error}); use cpu, cuda or cuda:N.") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"--device {device} was asked for but this machine has no CUDA GPU; use --device cpu.")
    return resolved


def load_model_and_processor(model_path: str | Path | None, device: str | None = None) -> tuple[Any, Any]:
    """A local folder (None: the packaged `elysium-tiny`) -> `(ElysiumForConditionalGeneration in eval mode,
    ElysiumProcessor)`."""
    import elysium.modeling_elysium  # noqa: F401  (registers the Auto classes)
    import elysium.processing  # noqa: F401
    from transformers import AutoModelForImageTextToText, AutoProcessor
    from transformers.utils import logging as hf_logging

    if model_path is None:
        try:
            model_path = default_model.default_model_path()
        except FileNotFoundError as error:
            raise UserError(str(error)) from None
    folder = Path(model_path)
    if not folder.is_dir():
        raise UserError(f"model folder {folder} does not exist; pass --model a folder saved with save_pretrained.")
    if not (folder / "config.json").is_file():
        raise UserError(
            f"{folder} has no config.json, so it is not a saved model; pass the folder save_pretrained wrote."
        )
    target = resolve_device(device)
    hf_logging.disable_progress_bar()  # one-line CLI output: no "Loading weights" bar
    try:
        processor = AutoProcessor.from_pretrained(folder)
        dtype = torch.float32 if target.type == "cpu" else "auto"
        model = AutoModelForImageTextToText.from_pretrained(folder, dtype=dtype)
    except (OSError, ValueError, KeyError) as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise UserError(f"cannot load the model in {folder}: {first_line}") from None
    return model.to(target).eval(), processor
