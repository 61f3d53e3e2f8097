"""The accelerate DeepSpeed configs: they parse into DeepSpeed's ZeRO stages and, with the `deepspeed` extra, ZeRO-3
trains the smoke run on 2 CPU ranks (DeepSpeed's CPU accelerator, gloo) and saves a whole model in final/."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
from accelerate.commands.config.config_args import load_config_from_file
from accelerate.utils import DistributedType
from conftest import SUBPROCESS_ENV, smoke_overrides

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "training" / "configs" / "accelerate"
NEEDS_DEEPSPEED = pytest.mark.skipif(
    importlib.util.find_spec("deepspeed") is None,
    reason="DeepSpeed is the `deepspeed` extra (pip install -e '.[deepspeed]'); the test extra does not install it",
)


@pytest.mark.parametrize(("name", "stage"), [("deepspeed_zero2.yaml", 2), ("deepspeed_zero3.yaml", 3)])
def test_deepspeed_configs_parse(name, stage):
    config = load_config_from_file(str(CONFIGS / name))
    assert config.distributed_type == DistributedType.DEEPSPEED
    assert config.deepspeed_config["zero_stage"] == stage
    if stage == 3:  # final/ must be one loadable folder: ZeRO-3 gathers the shards when it saves
        assert config.deepspeed_config["zero3_save_16bit_model"] is True


@NEEDS_DEEPSPEED
@pytest.mark.parametrize(("name", "stage"), [("deepspeed_zero2.yaml", 2), ("deepspeed_zero3.yaml", 3)])
def test_deepspeed_plugin_builds_from_the_configs(name, stage):
    from accelerate.utils import DeepSpeedPlugin

    plugin = DeepSpeedPlugin(**load_config_from_file(str(CONFIGS / name)).deepspeed_config)
    assert plugin.deepspeed_config["zero_optimization"]["stage"] == stage
    assert plugin.zero3_init_flag == (stage == 3)


@NEEDS_DEEPSPEED
def test_zero3_trains_on_two_cpu_ranks(tmp_path):
    from safetensors.torch import load_file
    from transformers import AutoConfig, AutoModel

    import elysium.modeling_elysium  # noqa: F401
    from elysium.training.checkpoints import checkpoint_problem

    command = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--config_file",
        str(CONFIGS / "deepspeed_zero3.yaml"),
        "--num_processes",
        "2",
        "--mixed_precision",
        "no",  # the config's bf16 is for GPUs; tiny-smoke.yaml trains in fp32
        "--main_process_port",
        "0",
        str(REPO / "training" / "sft.py"),
        "--config",
        str(REPO / "training" / "configs" / "tiny-smoke.yaml"),
        *smoke_overrides(tmp_path, 8, 4),
    ]
    result = subprocess.run(command, cwd=tmp_path, env=SUBPROCESS_ENV, capture_output=True, text=True, timeout=400)
    assert result.returncode == 0, result.stderr[-4000:]
    checkpoint = tmp_path / "run" / "checkpoint-4"
    states = sorted(p.name for p in (checkpoint / "global_step4").iterdir())
    assert states == [f"zero_pp_rank_{r}_mp_rank_00_{kind}_states.pt" for r in (0, 1) for kind in ("model", "optim")]
    assert checkpoint_problem(checkpoint) is None  # a DeepSpeed checkpoint is whole to the resume check
    assert json.loads((checkpoint / "trainer_state.json").read_text())["global_step"] == 4
    final = load_file(tmp_path / "run" / "final" / "model.safetensors")  # gathered, not ZeRO-3's empty shards
    model = AutoModel.from_config(AutoConfig.from_pretrained(tmp_path / "run" / "final"))
    assert sum(t.numel() for t in final.values()) == sum(p.numel() for p in model.parameters())
