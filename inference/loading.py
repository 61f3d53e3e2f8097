"""Load a saved Elysium (model + processor) for inference, with errors a user can act on."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from elysium.inference import default_model
from elysium.inference.attention import use_grouped_sdpa
from elysium.utils.errors import UserError
from elysium.utils.safetensors_check import safetensors_problem


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


def load_model_and_processor(
    model_path: str | Path | None, device: str | None = None, *, trust_remote_code: bool = False
) -> tuple[Any, Any]:
    """A local folder (None: the packaged `elysium-tiny`) -> `(ElysiumForConditionalGeneration in eval mode,
    ElysiumProcessor)`.

    Code in the folder (a config's `auto_map`) never runs unless `trust_remote_code=True` (`--trust-remote-code`):
    this package's own model type is registered with the Auto classes, so its folders load without it, and a
    folder that needs its own code is refused with one line instead of transformers' interactive prompt.
    """
    from transformers import AutoModelForImageTextToText, AutoProcessor
    from transformers.utils import logging as hf_logging

    import elysium.modeling_elysium  # noqa: F401  (registers the Auto classes)
    import elysium.processing  # noqa: F401

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
    if not trust_remote_code:
        check_no_remote_code(folder)
    check_weights_file(folder)
    hf_logging.disable_progress_bar()  # one-line CLI output: no "Loading weights" bar
    report = _HeldRecords(hf_logging.get_logger("transformers.modeling_utils"))
    try:
        processor = AutoProcessor.from_pretrained(folder, trust_remote_code=trust_remote_code)
        dtype = torch.float32 if target.type == "cpu" else "auto"
        with report:
            model, info = AutoModelForImageTextToText.from_pretrained(
                folder, dtype=dtype, trust_remote_code=trust_remote_code, output_loading_info=True
            )
    except (OSError, ValueError, KeyError, RuntimeError, TypeError, AttributeError) as error:
        raise UserError(load_error_message(folder, error)) from None
    missing, unexpected = sorted(info.get("missing_keys") or []), sorted(info.get("unexpected_keys") or [])
    if missing or unexpected:  # the config builds another model than the weights hold: it would run half random
        names = ", ".join((missing + unexpected)[:3])
        raise UserError(
            f"cannot load the model in {folder}: its config.json does not match its weights ({len(missing)} tensors "
            f"missing from the weights, {len(unexpected)} not in the model, e.g. {names}); use the config.json saved "
            "with these weights (save_pretrained writes both)."
        )
    report.release()
    model = model.to(target).eval()
    use_grouped_sdpa(model)  # masked passes on the CPU without copying grouped key/value heads (inference/attention.py)
    return model, processor


class _HeldRecords:
    """Holds a logger's records while loading: transformers' multi-line load report is shown only if the load
    succeeds (`release`), not before the one-line error that replaces it when the load fails."""

    def __init__(self, logger: Any):
        self.logger, self.records = logger, []

    def filter(self, record: Any) -> bool:
        self.records.append(record)
        return False

    def __enter__(self) -> _HeldRecords:
        self.logger.addFilter(self)
        return self

    def __exit__(self, *exc: Any) -> None:
        self.logger.removeFilter(self)

    def release(self) -> None:
        for record in self.records:
            self.logger.handle(record)
        self.records = []


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def load_error_message(folder: Path, error: BaseException) -> str:
    """One line for a folder transformers could not load: a config that does not match its weights gets the fix."""
    text = str(error)
    if "size mismatch" in text or "ignore_mismatched_sizes" in text:
        detail = next((line.strip() for line in text.splitlines() if "size mismatch" in line), "tensor shapes differ")
        return (
            f"cannot load the model in {folder}: its config.json does not match its weights ({detail}); "
            "use the config.json saved with these weights (save_pretrained writes both)."
        )
    return f"cannot load the model in {folder}: {_first_line(error)}"


def check_no_remote_code(folder: Path) -> None:
    """Refuse a folder whose config needs its own code (an `auto_map` for a model type this install does not know)
    unless the user trusts it; the check reads config.json only, so nothing in the folder runs."""
    import json

    from transformers import CONFIG_MAPPING

    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8-sig"))
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise UserError(
            f"{folder / 'config.json'} is not readable JSON ({_first_line(error)}); save the model again."
        ) from None
    if not isinstance(config, dict):
        raise UserError(f"{folder / 'config.json'} is not a JSON object; save the model again.")
    model_type = config.get("model_type")
    if config.get("auto_map") and model_type not in CONFIG_MAPPING:
        raise UserError(
            f"{folder} needs its own code to load (model_type {model_type!r} with an auto_map) and that code "
            "would run on this machine; pass --trust-remote-code (in Python: trust_remote_code=True) only if you "
            "trust the folder's author."
        )


def check_weights_file(folder: Path) -> None:
    """A `*.safetensors` that is empty or cut short fails with one line naming the file, before loading."""
    for weights in sorted(folder.glob("*.safetensors")):
        problem = safetensors_problem(weights)
        if problem is not None:
            raise UserError(
                f"{weights} is empty, truncated or not a safetensors file ({problem}); copy or download "
                "the weights again, or save the model again with save_pretrained."
            )


def model_fingerprint(path: str | Path) -> dict[str, Any]:
    """What a saved model's results depend on: its folder, its weights (size and mtime of every `*.safetensors`,
    one file or shards, and of `model.safetensors.index.json`) and its config (digest; the tracker's "model"
    settings, track_views, track_search_context, ..., are read from it). `elysium heldout` and `elysium eval` key
    the results they reuse by it."""
    import hashlib

    folder = Path(path)
    config = folder / "config.json"
    files = sorted(folder.glob("*.safetensors")) + [folder / "model.safetensors.index.json"]
    weights = [[f.name, s.st_size, s.st_mtime_ns] for f in files if f.is_file() for s in [f.stat()]]
    return {
        "path": str(folder.resolve()),
        "weights": weights or None,
        "config": hashlib.sha256(config.read_bytes()).hexdigest() if config.is_file() else None,
    }
