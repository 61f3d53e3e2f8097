"""Training configs parse once into typed sections; an unknown or ill-typed key is one line naming file, section and
key; `elysium train` is a front to training/sft.py."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest
from trl import SFTConfig

from elysium.cli import main as elysium_main
from elysium.training.config import ConfigError, DataArgs, ModelArgs, TrainConfig, load_config, stage_configs
from elysium.training.sft import main as sft_main
from elysium.training.sft import prepare_synthetic
from elysium.utils.errors import UserError

REPO = Path(__file__).resolve().parents[1]
SHIPPED = sorted((REPO / "training" / "configs").glob("*.yaml")) + sorted(
    (REPO / "experiments" / "configs").glob("*.yaml")
)


@pytest.mark.parametrize("path", SHIPPED, ids=[p.name for p in SHIPPED])
def test_every_shipped_config_parses(path):
    config = load_config(path)
    assert isinstance(config, TrainConfig) and isinstance(config.model, ModelArgs) and isinstance(config.data, DataArgs)
    for name, stage in stage_configs(config):
        assert name and isinstance(stage.data, DataArgs) and isinstance(stage.model, ModelArgs)
        SFTConfig(**{**stage.training, "bf16": False, "use_cpu": True})  # every key a real SFTConfig argument


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "x.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    "text, message",
    [
        ("data: {frames_rot: f}", "data.frames_rot is not a data setting (did you mean frames_root?)"),
        (
            "model: {t_selector_tokns: 3}",
            "model.t_selector_tokns is not a model setting (did you mean t_selector_tokens?)",
        ),
        (
            "training: {learning_rat: 0.1}",
            "training.learning_rat is not a training setting (did you mean learning_rate?)",
        ),
        ("data: {zzz: 1}", "data.zzz is not a data setting"),
        ("data: {max_frames: many}", "data.max_frames is 'many'; give an integer"),
        ("data: {streaming: 'yes please'}", "data.streaming is 'yes please'; give a true/false"),
        ("data: {track_context: [2, x]}", "data.track_context is [2, 'x']; give a list of numbers"),
        ("model: {lr_scale: 0.5}", "model.lr_scale is 0.5; give a mapping"),
        ("training: {max_steps: ten}", "training.max_steps is 'ten'; give an integer"),
        ("data: [1, 2]", "`data` must be a mapping of settings"),
        ("stage: stage3", "stage 'stage3' is not a stage; choose one of stage1, stage2, lora"),
        ("data: {track_context: [0.5, 2.0]}", "data.track_context [0.5, 2.0]: need 1 <= LO <= HI"),
        ("modle: {tiny: true}", "unknown sections ['modle']"),
    ],
)
def test_unknown_or_ill_typed_keys_name_the_file_section_and_key(tmp_path, text, message):
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as error:
        load_config(path)
    assert str(error.value) == f"{path}: {message}" or str(error.value).startswith(f"{path}: {message}")
    assert isinstance(error.value, UserError) and isinstance(error.value, ValueError)


def test_overrides_are_checked_and_typed_like_the_file(tmp_path):
    path = _write(tmp_path, "model: {tiny: true}\ntraining: {output_dir: runs/x}\n")
    config = load_config(path, ["--training.learning_rate", "2e-5", "--data.track_context", "[2, 3]"])
    # YAML 1.1 reads 2e-5 as a string: the typed parse makes it the float SFTConfig needs
    assert config.training["learning_rate"] == 2e-5 and isinstance(config.training["learning_rate"], float)
    assert config.data.track_context == [2.0, 3.0] and config.name == "x"
    with pytest.raises(ConfigError, match=r"x\.yaml: data\.track_contxt is not a data setting"):
        load_config(path, ["--data.track_contxt", "[2, 3]"])


def test_a_stage_is_named_in_its_errors_and_its_own_model_keys_apply(tmp_path):
    base = "model: {tiny: true, lr_scale: {vision_tower: 0.5}}\ntraining: {output_dir: runs/r}\n"
    path = _write(tmp_path, base + "stages:\n  - {name: a}\n  - {name: b, model: {t_selector_tokns: 3}}\n")
    with pytest.raises(ConfigError) as error:
        load_config(path)
    assert str(error.value) == (
        f"{path}: stage 'b': model.t_selector_tokns is not a model setting (did you mean t_selector_tokens?)"
    )
    path = _write(tmp_path, base + "stages:\n  - {name: a}\n  - {name: b, model: {t_selector_tokens: 3}}\n")
    (_, a), (_, b) = stage_configs(load_config(path))
    assert a.model == ModelArgs(tiny=True, lr_scale={"vision_tower": 0.5})
    assert b.model == ModelArgs(
        model_name_or_path="runs/r/a/final", lr_scale={"vision_tower": 0.5}, t_selector_tokens=3
    )


def test_sections_are_frozen_and_preparing_data_returns_new_settings(tmp_path):
    config = load_config(REPO / "training" / "configs" / "tiny-smoke.yaml")
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.data.max_frames = 3
    data = DataArgs(squares={"out_dir": str(tmp_path / "sq"), "images": 2})
    prepared = prepare_synthetic(data)
    assert data.grounding is None  # not changed in place
    assert prepared.grounding == [
        {"file": str(tmp_path / "sq" / "grounding.jsonl"), "image_root": str(tmp_path / "sq"), "name": "squares"}
    ]


def _error_lines(capsys) -> list[str]:
    err = capsys.readouterr().err.strip().splitlines()
    return [line for line in err if "Warning" not in line and "warn(" not in line]


@pytest.mark.parametrize("entry", ["elysium train", "training/sft.py"])
def test_a_bad_key_is_one_line_and_exit_code_2(tmp_path, capsys, entry):
    config = REPO / "training" / "configs" / "tiny-smoke.yaml"
    argv = ["--config", str(config), "--data.frames_rot", str(tmp_path)]
    code = elysium_main(["train", *argv]) if entry == "elysium train" else sft_main(argv)
    assert code == 2
    assert _error_lines(capsys) == [
        f"error: {config}: data.frames_rot is not a data setting (did you mean frames_root?)"
    ]


def test_elysium_train_help_and_its_launcher(monkeypatch, capsys):
    with pytest.raises(SystemExit) as done:
        elysium_main(["train", "--help"])
    assert done.value.code == 0 and "--config" in capsys.readouterr().out
    calls = []
    monkeypatch.setattr(subprocess, "call", lambda command: calls.append(command) or 0)
    argv = ["train", "--config", "c.yaml", "--num-processes", "2", "--training.max_steps", "3"]
    assert elysium_main([*argv, "--accelerate-config", "z.yaml"]) == 0
    assert calls == [
        [sys.executable, "-m", "accelerate.commands.launch", "--config_file", "z.yaml", "--num_processes", "2"]
        + ["-m", "elysium.training.sft", "--config", "c.yaml", "--training.max_steps", "3"]
    ]
    assert elysium_main(["train", "--config", "c.yaml", "--num-processes", "0"]) == 2
    assert "--num-processes must be >= 1" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # overrides only where a command takes them
        elysium_main(["curves", "r", "--out", "o", "--training.max_steps", "3"])


def test_every_subcommand_registers_the_same_way():
    """Each command module has `add_parser(subparsers)`, and every subcommand it adds sets `run`."""
    import argparse
    import importlib

    from elysium.cli import COMMAND_MODULES, build_parser

    for name in COMMAND_MODULES:
        assert callable(importlib.import_module(name).add_parser), name
    parser = build_parser()

    def leaves(p: argparse.ArgumentParser, path: tuple[str, ...] = ()):
        subs = [a for a in p._actions if isinstance(a, argparse._SubParsersAction)]
        if not subs:
            yield path, p
        for action in subs:
            for command, child in action.choices.items():
                yield from leaves(child, (*path, command))

    found = dict(leaves(parser))
    assert {("train",), ("curves",), ("data", "replay-captions"), ("track",), ("score",)} <= set(found)
    assert all(callable(p.get_default("run")) for p in found.values()), [
        k for k, p in found.items() if not p.get_default("run")
    ]
