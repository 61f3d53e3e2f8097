"""The model `elysium track`, `describe`, `ground`, `eval`, `demo` and the pipeline use when none is given.

It is `elysium-tiny`, installed with the package as `elysium/models/elysium-tiny` (a save_pretrained folder), so a
fresh install tracks without a download. A checkout without its weights (no `config.json` there) fails with one line
that says so, instead of a loader traceback.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

DEFAULT_MODEL: str = str(files("elysium.models").joinpath("elysium-tiny"))


def missing_default_message(path: str | Path) -> str:
    """The one line shown when the default model's folder holds no saved model."""
    return (
        f"the default model is missing from this install ({path} has no config.json); "
        "pass --model PATH (in Python: model=PATH), a folder saved with save_pretrained"
    )


def default_model_path() -> str:
    """`DEFAULT_MODEL` (read at call time, so tests can point it elsewhere), or FileNotFoundError if it is not there."""
    if not (Path(DEFAULT_MODEL) / "config.json").is_file():
        raise FileNotFoundError(missing_default_message(DEFAULT_MODEL))
    return DEFAULT_MODEL
