"""Training configs: a YAML file with `model`, `stage`, `lora`, `data` and `training` (SFTConfig) sections, plus
`--section.key value` overrides from the command line (values parsed as YAML, so `--training.max_steps 10`).

`load_config` parses the file once, as TRL's `TrlParser` parses `ScriptArguments` / `ModelConfig`: `model` into
`ModelArgs`, `data` into `DataArgs`, and `training` checked against TRL's `SFTConfig` (built, and so validated
whole, when the stage trains: building it sets up accelerate's distributed state). An unknown or ill-typed key is a
one-line `ConfigError` naming the file, the section and the key.

A recipe of several stages (the paper's image pretraining, then video finetuning) adds `stages`: a list of
`{name, <section overrides>}` run in order, each from the previous stage's `final/` (see `stage_configs`).
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import enum
import types
import typing
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

import yaml

from elysium.utils.errors import UserError

# Where a config without `training.output_dir` writes: SFTConfig's own default, so the name, the recipe's stages
# and the trainer agree.
DEFAULT_OUTPUT_DIR = "trainer_output"
SECTIONS = ("model", "stage", "lora", "data", "training", "decay_on_loss", "stages")
STAGE_SECTIONS = ("stage", "lora", "data", "training", "decay_on_loss")


class ConfigError(UserError, ValueError):
    """A training config that cannot be used: printed as one `error: ...` line, exit code 2."""


@dataclass(frozen=True)
class ModelArgs:
    """The `model` section: where the model comes from (`model_name_or_path`, `vision_model` + `text_model`, or
    `tiny: true`) and how it is built (see `model_setup.build_model_and_processor`)."""

    model_name_or_path: str | None = None  # a saved Elysium folder (or a Hub id)
    vision_model: str | None = None  # with text_model: the paper's start, a CLIP and an LLM
    text_model: str | None = None
    tiny: bool = False  # a random tiny model with the synthetic data's tokenizer
    attn_implementation: str = "sdpa"
    dtype: str = "float32"
    t_selector_tokens: int | None = None  # tokens kept a frame (default: the folder's; 108 new; 2 tiny)
    t_selector_straight_through: bool | None = None  # the gate's straight-through gradient (default: the folder's)
    image_size: int | None = None  # frame size (a saved model is resized to it: model_setup.resize_frames)
    vision: dict[str, Any] | None = None  # tiny: CLIP config fields
    text: dict[str, Any] | None = None  # tiny: Llama config fields
    vision_feature_layer: int | None = None  # tiny
    init_seed: int = 0  # tiny
    position_init: str | None = None  # tiny: `sincos`, or CLIP's default
    system_prompt: str | None = None  # saved with the processor (None: the template's own)
    lr_scale: dict[str, float] | None = None  # learning-rate multiples by module name, e.g. {vision_tower: 0.1}


@dataclass(frozen=True)
class DataArgs:
    """The `data` section: the sources (see `dataset_builder.build_train_dataset`) and how samples are cut."""

    track: list[str] = field(default_factory=list)  # ElysiumTrack JSONL files
    frames_root: str | None = None
    grounding: dict[str, Any] | list[dict[str, Any]] | None = None  # {file, image_root, name} or a list of them
    video_qa: dict[str, Any] | None = None  # {file, frames_root}
    synthetic: dict[str, Any] | None = None  # generated videos (sft.prepare_synthetic)
    squares: dict[str, Any] | list[dict[str, Any]] | None = None  # generated squares (synthetic.square_sets)
    weights: dict[str, float] = field(default_factory=dict)  # source name -> weight (default 1)
    task_weights: dict[str, float] = field(default_factory=dict)  # sot / rsot / video_reg (default 1 each)
    min_frames: int = 2
    max_frames: int = 8
    max_stride: int = 60
    max_length: int | None = None
    grounding_context: list[float] | None = None  # [LO, HI] (dataset_builder.context_range)
    track_context: list[float] | None = None
    track_place: list[float] | None = None  # [LO, HI] (dataset_builder.place_range)
    track_box_jitter: float = 0.0
    streaming: bool = False
    shuffle_buffer: int | None = None  # streaming: records in the shuffle buffer (default 1000)
    padding_free: bool = False
    samples_per_epoch: int | None = None


@dataclass(frozen=True)
class TrainConfig:
    """One parsed config: a single stage, or a recipe whose `stages` are each a whole `TrainConfig`."""

    model: ModelArgs
    data: DataArgs
    training: dict[str, Any]  # SFTConfig's arguments, keys and simple types checked
    stage: str = "stage2"  # what trains: model_setup.STAGES
    lora: dict[str, Any] | None = None
    decay_on_loss: dict[str, Any] | None = None
    name: str = ""  # the stage's name (its folder under training.output_dir in a recipe)
    stages: tuple[TrainConfig, ...] = ()


def _describe(hint: Any) -> str:
    """`hint` in words, for error messages."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (Union, types.UnionType):
        return " or ".join(_describe(a) for a in args if a is not type(None))
    if origin is list:
        return f"a list of {_describe(args[0])[2:]}s" if args else "a list"
    if origin is dict or hint is dict:
        return "a mapping"
    names = {bool: "a true/false", int: "an integer", float: "a number", str: "a string"}
    return names.get(hint, getattr(hint, "__name__", str(hint)))


def _coerce(value: Any, hint: Any) -> Any:
    """`value` as type `hint` (an int where a float goes, as it is; a numeric string as a float, since YAML 1.1 reads
    `2e-5` as a string), or TypeError. Only the types configs use are checked; others pass as they are (SFTConfig
    validates its own when built). Written here because HfArgumentParser.parse_dict does not check types."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return value
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for option in (a for a in args if a is not type(None)):
            try:
                return _coerce(value, option)
            except TypeError:
                continue
        raise TypeError
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise TypeError
    if hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise TypeError
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise TypeError
        try:
            return value if isinstance(value, (int, float)) else float(value)
        except ValueError:
            raise TypeError from None
    if hint is str:
        if isinstance(value, str):
            return value
        raise TypeError
    if origin is list or hint is list:
        if not isinstance(value, list):
            raise TypeError
        return [_coerce(v, args[0]) for v in value] if args else value
    if origin is dict or hint is dict:
        if not isinstance(value, dict):
            raise TypeError
        return {k: _coerce(v, args[1]) for k, v in value.items()} if args else value
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        if isinstance(value, (str, hint)):
            return value
        raise TypeError
    return value


def _fields(cls: type) -> dict[str, Any]:
    """A dataclass's field names and resolved types."""
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls) if f.init}


def _check_keys(values: Any, cls: type, section: str, where: str) -> dict[str, Any]:
    """`values` (a YAML mapping) checked against the fields of `cls`: every key known and of its type."""
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise ConfigError(f"{where}: `{section}` must be a mapping of settings, got {values!r}")
    known = _fields(cls)
    out = {}
    for key, value in values.items():
        if key not in known:
            close = difflib.get_close_matches(str(key), known, n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise ConfigError(f"{where}: {section}.{key} is not a {section} setting{hint}")
        try:
            out[key] = _coerce(value, known[key])
        except TypeError:
            raise ConfigError(f"{where}: {section}.{key} is {value!r}; give {_describe(known[key])}") from None
    return out


def parse_config(config: dict[str, Any], where: str, name: str = "") -> TrainConfig:
    """One stage's sections (a YAML mapping after overrides and merging) as a `TrainConfig`; `where` names the file
    (and stage) in errors."""
    from trl import SFTConfig

    from .dataset_builder import check_data
    from .model_setup import STAGES

    stage = config.get("stage", "stage2")
    if stage not in STAGES:
        raise ConfigError(f"{where}: stage {stage!r} is not a stage; choose one of {', '.join(STAGES)}")
    for section in ("lora", "decay_on_loss"):
        if config.get(section) is not None and not isinstance(config[section], dict):
            raise ConfigError(f"{where}: `{section}` must be a mapping of settings, got {config[section]!r}")
    data = DataArgs(**_check_keys(config.get("data"), DataArgs, "data", where))
    try:
        check_data(data)
    except ValueError as error:
        raise ConfigError(f"{where}: {error}") from None
    return TrainConfig(
        model=ModelArgs(**_check_keys(config.get("model"), ModelArgs, "model", where)),
        data=data,
        training=_check_keys(config.get("training"), SFTConfig, "training", where),
        stage=stage,
        lora=config.get("lora"),
        decay_on_loss=config.get("decay_on_loss"),
        name=name,
    )


def apply_overrides(config: dict[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """`["--training.max_steps", "10", "--stage", "stage2"]` applied onto a copy of `config`.

    A bare key (`--max_steps 10`) goes to the one section that already holds it.
    """
    config = copy.deepcopy(config)
    items = list(overrides)
    if len(items) % 2:
        raise ConfigError(f"overrides come in `--key value` pairs; got {items}")
    for flag, raw in zip(items[::2], items[1::2]):
        if not flag.startswith("--"):
            raise ConfigError(f"override {flag!r} must start with --")
        path = flag[2:].replace("-", "_").split(".")
        if len(path) == 1 and path[0] not in SECTIONS:
            owners = [s for s in SECTIONS if isinstance(config.get(s), dict) and path[0] in config[s]]
            if len(owners) != 1:
                raise ConfigError(f"--{path[0]} is ambiguous or unknown; write it as --section.{path[0]}")
            path = [owners[0], path[0]]
        node = config
        for key in path[:-1]:
            node = node.setdefault(key, {})
            if not isinstance(node, dict):
                raise ConfigError(f"{flag}: {key} is not a section of settings")
        node[path[-1]] = yaml.safe_load(raw)
    return config


def load_config(path: str | Path, overrides: Sequence[str] = ()) -> TrainConfig:
    """The YAML at `path` with `overrides`, parsed (every stage of a recipe too): typos fail before anything runs."""
    config = yaml.safe_load(Path(path).read_text()) or {}
    if not isinstance(config, dict):
        raise ConfigError(f"{path}: a training config is a mapping of sections ({', '.join(SECTIONS)})")
    config = apply_overrides(config, overrides)
    unknown = set(config) - set(SECTIONS)
    if unknown:
        raise ConfigError(f"{path}: unknown sections {sorted(unknown)}; use {', '.join(SECTIONS)}")
    config.setdefault("stage", "stage2")
    for section in ("model", "data", "training"):
        if config.get(section) is None:
            config[section] = {}
        elif not isinstance(config[section], dict):
            raise ConfigError(f"{path}: `{section}` must be a mapping of settings, got {config[section]!r}")
    if "stages" not in config:
        return parse_config(config, str(path), Path(config["training"].get("output_dir", DEFAULT_OUTPUT_DIR)).name)
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
    stages = tuple(parse_config(stage, f"{path}: stage {name!r}", name) for name, stage in _stage_sections(config))
    base = {k: v for k, v in config.items() if k != "stages"}
    return dataclasses.replace(parse_config(base, str(path)), stages=stages)


def check_stages(stages: Any, path: str | Path) -> None:
    """`stages` must be a non-empty list of `{name, ...}` with unique folder-safe names and known sections."""
    if not isinstance(stages, list) or not stages:
        raise ConfigError(f"{path}: `stages` must be a non-empty list of {{name: ..., <section>: ...}}")
    names = []
    for number, entry in enumerate(stages, 1):
        name = entry.get("name") if isinstance(entry, dict) else None
        if not isinstance(name, str) or not name or "/" in name or name.startswith("."):
            raise ConfigError(f"{path}: stage {number} needs a `name` usable as a folder name (got {name!r})")
        unknown = set(entry) - {"name", "model", *STAGE_SECTIONS}
        if unknown:
            raise ConfigError(
                f"{path}: stage {name!r} has unknown keys {sorted(unknown)}; use {('model', *STAGE_SECTIONS)}"
            )
        names.append(name)
    if len(set(names)) != len(names):
        raise ConfigError(f"{path}: stage names must be unique, got {names}")


def merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """`update` onto a copy of `base`: dicts merge key by key, anything else is replaced."""
    out = copy.deepcopy(base)
    for key, value in update.items():
        out[key] = merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def _stage_sections(config: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """The sections of each stage of a recipe, in order: each entry merged onto the base config, writing to
    `<training.output_dir>/<name>`; every stage after the first starts from the previous stage's `final/` (the
    base `model` builds only the first)."""
    base = {k: v for k, v in config.items() if k != "stages"}
    root = Path(base["training"].get("output_dir", DEFAULT_OUTPUT_DIR))
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


def stage_configs(config: TrainConfig) -> list[tuple[str, TrainConfig]]:
    """The single-stage configs of `config` by name, in order: a recipe's `stages`, or `config` itself (named after
    its output folder)."""
    return [(stage.name, stage) for stage in config.stages] or [(config.name, config)]
