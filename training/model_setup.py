"""Model and processor for a training config, and what each stage trains.

Stage 1 trains only the T-Selector and the projector (vision tower and LLM frozen), stage 2 everything, and
`lora` puts LoRA adapters on the LLM's attention projections while the T-Selector and projector train fully.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn
from transformers.models.clip.modeling_clip import CLIPVisionEmbeddings

from elysium.modeling_elysium import ElysiumConfig, ElysiumForConditionalGeneration, ElysiumTSelector
from elysium.processing import ElysiumImageProcessor, ElysiumProcessor, chat_template

from .config import ModelArgs

STAGES = ("stage1", "stage2", "lora")
CONNECTOR_MODULES = ("t_selector", "multi_modal_projector")
# Only the LLM's attention: CLIP's attention also has q_proj/k_proj/v_proj, which must stay frozen.
LORA_TARGETS = r".*language_model.*\.(q_proj|k_proj|v_proj|o_proj)"


def tiny_model_config(
    vocab_size: int,
    image_token_id: int,
    image_size: int = 28,
    t_selector_tokens: int = 2,
    max_position_embeddings: int = 4096,
    vision: dict[str, Any] | None = None,
    text: dict[str, Any] | None = None,
) -> ElysiumConfig:
    """A random Elysium small enough to train on CPU in seconds (2-layer CLIP and Llama, width 32 by default;
    `vision` / `text` override the CLIP / Llama config fields, e.g. `{"hidden_size": 128, "patch_size": 8}`)."""
    vision_fields = dict(
        model_type="clip_vision_model",
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        image_size=image_size,
        patch_size=14,
    ) | dict(vision or {})
    text_fields = dict(
        model_type="llama",
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        vocab_size=vocab_size,
        max_position_embeddings=max_position_embeddings,
    ) | dict(text or {})
    return ElysiumConfig(
        vision_config=vision_fields,
        text_config=text_fields,
        image_token_id=image_token_id,
        t_selector_tokens=t_selector_tokens,
    )


def sincos_2d(grid: int, dim: int) -> torch.Tensor:
    """MAE's fixed 2-D sine-cosine position table, `(grid * grid, dim)`: half the channels encode the row, half
    the column, each as sines and cosines of geometrically spaced frequencies."""
    if dim % 4:
        raise ValueError(f"a 2-D sine-cosine table needs a width divisible by 4, got {dim}")
    omega = 1.0 / 10000 ** (torch.arange(dim // 4, dtype=torch.float64) / (dim // 4))
    rows, cols = torch.meshgrid(torch.arange(grid), torch.arange(grid), indexing="ij")
    parts = []
    for axis in (rows, cols):
        angles = axis.reshape(-1, 1).double() * omega
        parts += [angles.sin(), angles.cos()]
    return torch.cat(parts, dim=1).float()


def init_sincos_positions(model: ElysiumForConditionalGeneration) -> None:
    """Start a from-scratch CLIP's learned position embeddings at a 2-D sine-cosine table (CLS row zero), so
    every patch says where it is from step one: at the default init (std 0.02) position is a whisper under the
    content and boxes stay at the mean box for thousands of steps. They are still trained."""
    embeddings = model.model.vision_tower.embeddings
    table = embeddings.position_embedding.weight
    grid = int(round((table.shape[0] - 1) ** 0.5))
    with torch.no_grad():
        table[0].zero_()
        table[1:] = sincos_2d(grid, table.shape[1]).to(table.dtype)


def resize_frames(model: ElysiumForConditionalGeneration, processor: ElysiumProcessor, size: int) -> None:
    """Take a trained model to `size`-px frames (a finer grid of the same patches), in place. The vision embeddings
    are rebuilt at the new size with the position table CLIP's own `interpolate_pos_encoding` gives, made
    permanent so the T-Selector and the processor see a fixed patch count; the T-Selector, whose patch-by-patch
    weights have no counterpart at the new count, is rebuilt at its initial pattern (a selector that kept every
    patch keeps every patch of the new grid). Later stages load the new size from the folder."""
    vision = model.config.vision_config
    if size <= 0 or size % vision.patch_size:
        raise ValueError(f"model.image_size {size}: give a positive multiple of the patch size ({vision.patch_size})")
    grid_old, grid = vision.image_size // vision.patch_size, size // vision.patch_size
    kept_all = model.config.t_selector_tokens == grid_old * grid_old
    if not kept_all and model.config.t_selector_tokens > grid * grid:
        raise ValueError(
            f"model.image_size {size}: {grid * grid} patches a frame, fewer than the {model.config.t_selector_tokens} "
            "the T-Selector keeps; give a larger size or a smaller model.t_selector_tokens"
        )
    tower = model.model.vision_tower
    weight = tower.embeddings.position_embedding.weight
    with torch.no_grad():  # interpolate_pos_encoding reads only the shape of its first argument
        shape = (1, grid * grid + 1, weight.shape[1])
        table = tower.embeddings.interpolate_pos_encoding(weight.new_empty(shape), size, size)[0]
    vision.image_size = size
    if kept_all:
        model.config.t_selector_tokens = grid * grid
    embeddings = CLIPVisionEmbeddings(vision).to(weight.device, weight.dtype)
    embeddings.load_state_dict({**tower.embeddings.state_dict(), "position_embedding.weight": table})
    tower.embeddings = embeddings
    selector = ElysiumTSelector(model.config).to(weight.device, weight.dtype)
    model._init_weights(selector)
    selector.pre_proj.load_state_dict(model.model.t_selector.pre_proj.state_dict())
    model.model.t_selector = selector
    processor.image_processor.size = {"height": size, "width": size}
    processor.num_image_tokens = model.config.t_selector_tokens


def build_model_and_processor(model_args: ModelArgs) -> tuple[ElysiumForConditionalGeneration, ElysiumProcessor]:
    """From `model_name_or_path` (an Elysium folder), `vision_model` + `text_model` (the paper's start), or
    `tiny: true` (random, with the tokenizer of the synthetic data, `synth.synth_tokenizer`)."""
    attn = model_args.attn_implementation
    dtype = getattr(torch, model_args.dtype)
    count = model_args.t_selector_tokens
    if model_args.model_name_or_path:
        path = model_args.model_name_or_path
        if not Path(path).is_dir() and (path.startswith((".", "/", "~")) or path.count("/") != 1):
            raise FileNotFoundError(
                f"model.model_name_or_path {path!r}: no such folder (nor a Hub id, which is 'owner/name'); give a "
                "saved Elysium folder, e.g. an earlier run's final/"
            )
        # The T-Selector's weights score every patch, whatever it keeps: a stage may keep more or fewer tokens, and
        # may hold its gate (no straight-through gradient, as the released model) where an earlier stage trained it.
        kept = {} if count is None else {"t_selector_tokens": count}
        if model_args.t_selector_straight_through is not None:
            kept["t_selector_straight_through"] = model_args.t_selector_straight_through
        model = ElysiumForConditionalGeneration.from_pretrained(path, attn_implementation=attn, dtype=dtype, **kept)
        processor = ElysiumProcessor.from_pretrained(path)
        if count is not None:
            processor.num_image_tokens = count
        size = model_args.image_size
        if size is not None and size != model.config.vision_config.image_size:
            resize_frames(model, processor, size)
    elif model_args.vision_model and model_args.text_model:
        tokens = 108 if count is None else count
        model = ElysiumForConditionalGeneration.from_vision_text_pretrained(
            model_args.vision_model, model_args.text_model, t_selector_tokens=tokens
        )
        model.set_attn_implementation(attn)
        processor = ElysiumProcessor.from_vision_text_pretrained(
            model_args.vision_model, model_args.text_model, t_selector_tokens=tokens
        )
    elif model_args.tiny:
        from elysium.synthetic import synth_tokenizer

        tokenizer = synth_tokenizer()
        size = 28 if model_args.image_size is None else model_args.image_size
        tokens = 2 if count is None else count
        config = tiny_model_config(
            len(tokenizer),
            tokenizer.convert_tokens_to_ids("<image>"),
            size,
            tokens,
            vision=model_args.vision,
            text=model_args.text,
        )
        config.t_selector_straight_through = model_args.t_selector_straight_through is not False
        if model_args.vision_feature_layer is not None:
            config.vision_feature_layer = model_args.vision_feature_layer
        torch.manual_seed(model_args.init_seed)
        model = ElysiumForConditionalGeneration(config)
        if model_args.position_init not in (None, "sincos"):
            raise ValueError(
                f"model.position_init {model_args.position_init!r}: use sincos, or leave it out for CLIP's default"
            )
        if model_args.position_init == "sincos":
            init_sincos_positions(model)
        model.set_attn_implementation(attn)
        processor = ElysiumProcessor(
            ElysiumImageProcessor(size={"height": size, "width": size}), tokenizer, num_image_tokens=tokens
        )
    else:
        raise ValueError("model: give model_name_or_path, vision_model + text_model, or tiny: true")
    if model_args.system_prompt is not None:  # saved with the processor, so inference asks what training asked
        processor.chat_template = chat_template(model_args.system_prompt)
    return model, processor


def set_trainable(model: ElysiumForConditionalGeneration, stage: str, lora: dict[str, Any] | None = None) -> nn.Module:
    """Freeze per stage; for `lora`, returns the PEFT-wrapped model. Reports nothing: see `count_parameters`."""
    if stage not in STAGES:
        raise ValueError(f"stage {stage!r}: choose one of {', '.join(STAGES)}")
    if stage == "stage2":
        model.requires_grad_(True)
        return model
    model.requires_grad_(False)
    if stage == "stage1":
        for name in CONNECTOR_MODULES:
            getattr(model.model, name).requires_grad_(True)
        return model
    from peft import LoraConfig, get_peft_model

    lora = lora or {}
    peft_config = LoraConfig(
        r=int(lora.get("r", 16)),
        lora_alpha=int(lora.get("alpha", 32)),
        lora_dropout=float(lora.get("dropout", 0.05)),
        target_modules=LORA_TARGETS,
        modules_to_save=list(CONNECTOR_MODULES),  # trained in full and saved with the adapter
        task_type="CAUSAL_LM",
    )
    return get_peft_model(model, peft_config)


def count_parameters(model: nn.Module) -> tuple[int, int]:
    """(trainable, total) parameter counts."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return trainable, sum(p.numel() for p in model.parameters())
