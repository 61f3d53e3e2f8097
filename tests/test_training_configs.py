"""Shipped configs parse, overrides apply, and each stage trains exactly the parameters it should."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from accelerate.commands.config.config_args import load_config_from_file
from elysium.training.config import apply_overrides, load_config
from elysium.training.model_setup import build_model_and_processor, set_trainable
from elysium.training.sft import train
from safetensors.torch import load_file
from trl import SFTConfig

CONFIGS = Path(__file__).resolve().parents[1] / "training" / "configs"


@pytest.mark.parametrize("name", ["stage1", "stage2", "stage2_32frames", "stage2_streaming", "lora", "tiny-smoke"])
def test_shipped_training_configs_are_valid(name):
    config = load_config(CONFIGS / f"{name}.yaml")
    args = SFTConfig(**{**config["training"], "bf16": False})  # bf16 needs a GPU to validate
    assert args.lr_scheduler_type.value == "cosine" and args.warmup_steps > 0
    assert config["stage"] in ("stage1", "stage2", "lora")
    if name != "tiny-smoke":
        assert config["training"]["bf16"] and args.gradient_checkpointing
    assert config["data"]["max_frames"] == (32 if name == "stage2_32frames" else 8)


@pytest.mark.parametrize("name", ["deepspeed_zero2", "deepspeed_zero3", "fsdp"])
def test_shipped_accelerate_configs_load(name):
    config = load_config_from_file(str(CONFIGS / "accelerate" / f"{name}.yaml"))
    assert config.mixed_precision == "bf16" and config.num_processes == 8


def test_overrides():
    config = {"training": {"max_steps": 5, "output_dir": "a"}, "data": {"max_frames": 8}, "stage": "stage1"}
    out = apply_overrides(
        config, ["--training.max_steps", "7", "--max_frames", "4", "--stage", "lora", "--data.task_weights", "{sot: 2}"]
    )
    assert out["training"]["max_steps"] == 7 and out["data"] == {"max_frames": 4, "task_weights": {"sot": 2}}
    assert out["stage"] == "lora" and config["training"]["max_steps"] == 5  # the input is not modified
    with pytest.raises(ValueError, match="ambiguous or unknown"):
        apply_overrides(config, ["--nope", "1"])


def _trainable(model) -> set[str]:
    return {
        name.split(".")[1] if name.startswith("model.") else name.split(".")[0]
        for name, p in model.named_parameters()
        if p.requires_grad
    }


def test_stage_freezing():
    model, _ = build_model_and_processor({"tiny": True})
    set_trainable(model, "stage1")
    assert _trainable(model) == {"t_selector", "multi_modal_projector"}
    set_trainable(model, "stage2")
    assert all(p.requires_grad for p in model.parameters())

    model, _ = build_model_and_processor({"tiny": True})
    peft_model = set_trainable(model, "lora", {"r": 4, "alpha": 8})
    names = [n for n, p in peft_model.named_parameters() if p.requires_grad]
    assert any("language_model" in n and "q_proj.lora_A" in n for n in names)
    assert any("o_proj.lora_B" in n for n in names)
    assert not any("vision_tower" in n for n in names)  # CLIP's q/k/v_proj are not adapted
    assert any("t_selector" in n for n in names) and any("multi_modal_projector" in n for n in names)
    assert all("lora_" in n or "t_selector" in n or "multi_modal_projector" in n for n in names)


@pytest.mark.parametrize("stage", ["stage1", "lora"])
def test_stage_training_changes_only_its_parameters_and_saves_a_loadable_model(tmp_path, stage):
    config = load_config(
        CONFIGS / "tiny-smoke.yaml",
        [
            "--data.synthetic.out_dir",
            str(tmp_path / "data"),
            "--data.synthetic.videos",
            "4",
            "--data.synthetic.frames_per_video",
            "[8, 8]",
            "--training.output_dir",
            str(tmp_path / "run"),
            "--training.max_steps",
            "3",
            "--training.save_steps",
            "3",
            "--training.per_device_train_batch_size",
            "2",
            "--stage",
            stage,
            "--lora",
            "{r: 4, alpha: 8}",
        ],
    )
    initial, _ = build_model_and_processor(config["model"])
    initial = initial.state_dict()
    train(config)
    final = load_file(tmp_path / "run" / "final" / "model.safetensors")
    assert final.keys() == initial.keys()  # LoRA merged away: a plain Elysium folder
    changed = {k for k in final if not torch.equal(final[k], initial[k])}
    assert any("t_selector" in k for k in changed) and any("multi_modal_projector" in k for k in changed)
    assert not any("vision_tower" in k for k in changed)
    llm_changed = {k for k in changed if "language_model" in k or k.startswith("lm_head")}
    if stage == "stage1":
        assert not llm_changed
    else:  # merged LoRA deltas land on the attention projections only
        assert llm_changed and all(k.split(".")[-2] in ("q_proj", "k_proj", "v_proj", "o_proj") for k in llm_changed)

    import elysium.modeling_elysium  # noqa: F401
    from transformers import AutoModel

    assert type(AutoModel.from_pretrained(tmp_path / "run" / "final")).__name__ == "ElysiumForConditionalGeneration"
