"""Convert the released `sty-yyj/elysium_7b` checkpoint to `ElysiumForConditionalGeneration`'s layout.

Released key                         -> ours
`visual_encoder.vision_model.*`      -> `model.vision_tower.*` (CLIPVisionModel; transformers 5 dropped the
                                        `vision_model.` level, so it is kept only if our tower still has it)
`adapter.{pre_proj,trans_weight,trans_bias}` -> `model.t_selector.*`
`adapter.score_proj.*`               -> dropped: the released forward never calls it
`llm_proj.0.*` / `llm_proj.2.*`      -> `model.multi_modal_projector.linear_1.*` / `linear_2.*`
`llm.model.*`                        -> `model.language_model.*`;  `llm.lm_head.*` -> `lm_head.*`

Derived buffers that older transformers saved (`position_ids`, `rotary_emb.inv_freq`) are dropped too; any other
unknown key, and any weight the model needs that the source lacks, fails the conversion by name. The weights are
read and written one shard at a time, so memory holds one source shard, not the 7B model.

The released config.json also says `model_type: "elysium"` but is not ours: it names the LLM and CLIP the released
code loads (`llm_config` / `visual_config.pretrained_model_name_or_path`) and the tokens kept
(`adapter_config.out_token_num`). Those configs are read from local folders or the local Hub cache (never downloaded);
where one is not there, the Elysium-7B parts (Vicuna-7B v1.5, CLIP-ViT-L/14-336) are assumed with a warning that
names the assumed fields. Shapes always come from the weights.

The output is the Hub-ready folder `elysium export` writes (code, `auto_map`, processor, card), with the processor's
`prompt_format="released"` so it asks with exactly the released token ids.

`t_selector_straight_through` stays True: the forward value is identical either way (`s / s.detach()` is 1), and
True lets the gate learn when the converted model is fine-tuned (the released argsort gave it no gradient).
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from .export import atomic_folder, make_hub_ready

logger = logging.getLogger(__name__)

IMAGE_TOKEN = "<image>"
DROPPED_PREFIXES = ("adapter.score_proj.",)  # unused by the released forward
DERIVED_BUFFER_RE = re.compile(r"(^|\.)(position_ids|rotary_emb\.inv_freq)$")
PREFIX_MAP = (
    ("adapter.", "model.t_selector."),
    ("llm_proj.0.", "model.multi_modal_projector.linear_1."),
    ("llm_proj.2.", "model.multi_modal_projector.linear_2."),
    ("llm.model.", "model.language_model."),
    ("llm.lm_head.", "lm_head."),
)
EMBED_KEY = "model.language_model.embed_tokens.weight"
LM_HEAD_KEY = "lm_head.weight"
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "tokenizer_config.json", "special_tokens_map.json")
DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


class ConversionError(ValueError):
    """The source is not a released Elysium checkpoint this converter can map completely."""


# ----------------------------------------------------------------------------------------------- reading the source


def source_shards(src: Path) -> list[Path]:
    """The checkpoint files of `src`: one file, the shards an index json names, or the folder's single checkpoint."""
    if src.is_file():
        return [src]
    if not src.is_dir():
        raise ConversionError(f"{src} does not exist; give the released checkpoint folder or file.")
    indexes = sorted(src.glob("*.index.json"))
    if len(indexes) > 1:
        raise ConversionError(f"{src} holds several index files ({', '.join(p.name for p in indexes)}); give one file.")
    if indexes:
        weight_map = json.loads(indexes[0].read_text())["weight_map"]
        shards = [src / name for name in sorted(set(weight_map.values()))]
        missing = [p.name for p in shards if not p.is_file()]
        if missing:
            raise ConversionError(f"{indexes[0].name} names shards that are not in {src}: {', '.join(missing)}.")
        return shards
    files = [p for ext in ("*.safetensors", "*.bin", "*.pt", "*.pth") for p in sorted(src.glob(ext))]
    if len(files) != 1:
        found = ", ".join(p.name for p in files) or "none"
        raise ConversionError(f"{src} has no index json and {len(files)} checkpoint files ({found}); expected one.")
    return files


def read_shard(path: Path) -> Iterator[tuple[str, torch.Tensor]]:
    """Yield `(name, tensor)` of one checkpoint file, safetensors lazily, pickles memory-mapped where possible."""
    if path.suffix == ".safetensors":
        with safe_open(path, framework="pt") as handle:
            for key in handle.keys():
                yield key, handle.get_tensor(key)
        return
    try:
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except RuntimeError:  # legacy (non-zip) pickles cannot be memory-mapped
        state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ConversionError(f"{path} holds a {type(state).__name__}, not a state dict.")
    for key, value in state.items():
        if not isinstance(value, torch.Tensor):
            raise ConversionError(f"{path}: entry {key!r} is a {type(value).__name__}, not a tensor.")
        yield key, value
    del state


def source_shapes(shards: list[Path]) -> dict[str, tuple[int, ...]]:
    """Every source key's shape, read from safetensors headers without loading tensors where possible."""
    shapes: dict[str, tuple[int, ...]] = {}
    for path in shards:
        if path.suffix == ".safetensors":
            with safe_open(path, framework="pt") as handle:
                for key in handle.keys():
                    shapes[key] = tuple(handle.get_slice(key).get_shape())
        else:
            for key, tensor in read_shard(path):
                shapes[key] = tuple(tensor.shape)
    return shapes


# ------------------------------------------------------------------------------------------------------- key mapping


def map_key(key: str, vision_keys: set[str]) -> str | None:
    """Our name for a released key; `None` for keys dropped on purpose; raises `KeyError` for unknown ones."""
    if key.startswith(DROPPED_PREFIXES) or DERIVED_BUFFER_RE.search(key):
        return None
    if key.startswith("visual_encoder."):
        rest = key[len("visual_encoder.") :]
        for candidate in (rest, rest.removeprefix("vision_model.")):
            if candidate in vision_keys:
                return "model.vision_tower." + candidate
        raise KeyError(key)
    for old, new in PREFIX_MAP:
        if key.startswith(old):
            return new + key[len(old) :]
    raise KeyError(key)


def plan_mapping(source_keys: list[str], target_keys: set[str]) -> dict[str, str]:
    """Source -> target names covering every target weight exactly once, or a `ConversionError` naming the gaps."""
    vision_keys = {k[len("model.vision_tower.") :] for k in target_keys if k.startswith("model.vision_tower.")}
    mapping: dict[str, str] = {}
    unknown, dropped = [], []
    for key in source_keys:
        try:
            new = map_key(key, vision_keys)
        except KeyError:
            unknown.append(key)
            continue
        if new is None:
            dropped.append(key)
        elif new not in target_keys:
            unknown.append(key)
        else:
            mapping[key] = new
    seen: dict[str, str] = {}
    duplicates = []
    for old, new in mapping.items():
        if new in seen:
            duplicates.append(f"{seen[new]} and {old} -> {new}")
        seen[new] = old
    missing = sorted(target_keys - set(mapping.values()))
    problems = []
    if unknown:
        problems.append(f"unknown keys (no place in ElysiumForConditionalGeneration): {', '.join(sorted(unknown))}")
    if missing:
        problems.append(f"missing keys (the source lacks them): {', '.join(missing)}")
    if duplicates:
        problems.append(f"keys mapped twice: {'; '.join(duplicates)}")
    if problems:
        raise ConversionError("Cannot convert the released checkpoint: " + " | ".join(problems))
    if dropped:
        logger.info("Dropped %d keys unused by the released forward or derived: %s", len(dropped), dropped)
    return mapping


# ------------------------------------------------------------------------------------------------------------ config


def _count_layers(shapes: dict[str, tuple[int, ...]], prefix: str) -> int:
    pattern = re.compile(re.escape(prefix) + r"(\d+)\.")
    found = {int(m.group(1)) for key in shapes if (m := pattern.match(key))}
    if not found:
        raise ConversionError(f"No layers under {prefix}* in the source; is this the released Elysium checkpoint?")
    return max(found) + 1


def _shape(shapes: dict[str, tuple[int, ...]], key: str) -> tuple[int, ...]:
    if key not in shapes:
        raise ConversionError(f"missing keys (the source lacks them): {key}")
    return shapes[key]


def infer_config_kwargs(shapes: dict[str, tuple[int, ...]]) -> dict[str, Any]:
    """Vision and text config fields the weights determine (CLIP head dim 64, Llama head dim 128 as Elysium-7B)."""
    vision_prefix = "visual_encoder.vision_model."
    if not any(k.startswith(vision_prefix) for k in shapes):
        vision_prefix = "visual_encoder."
    patch = _shape(shapes, vision_prefix + "embeddings.patch_embedding.weight")
    positions = _shape(shapes, vision_prefix + "embeddings.position_embedding.weight")[0]
    grid = math.isqrt(positions - 1)
    if grid * grid != positions - 1:
        raise ConversionError(f"The vision tower has {positions} positions, not a square grid plus CLS.")
    vision_hidden = patch[0]
    vision = {
        "hidden_size": vision_hidden,
        "patch_size": patch[2],
        "image_size": grid * patch[2],
        "num_channels": patch[1],
        "intermediate_size": _shape(shapes, vision_prefix + "encoder.layers.0.mlp.fc1.weight")[0],
        "num_hidden_layers": _count_layers(shapes, vision_prefix + "encoder.layers."),
        "num_attention_heads": max(1, vision_hidden // 64),
    }
    vocab, hidden = _shape(shapes, "llm.model.embed_tokens.weight")
    heads = max(1, hidden // 128)
    head_dim = hidden // heads
    text = {
        "vocab_size": vocab,
        "hidden_size": hidden,
        "intermediate_size": _shape(shapes, "llm.model.layers.0.mlp.gate_proj.weight")[0],
        "num_hidden_layers": _count_layers(shapes, "llm.model.layers."),
        "num_attention_heads": heads,
        "num_key_value_heads": _shape(shapes, "llm.model.layers.0.self_attn.k_proj.weight")[0] // head_dim,
    }
    return {"vision_config": vision, "text_config": text}


RELEASED_KEYS = ("adapter_config", "llm_config", "visual_config")
# Fields no weight shape fixes, which a missing LLM / CLIP config leaves to the Elysium-7B parts.
ASSUMED_TEXT_FIELDS = (
    "rms_norm_eps", "max_position_embeddings", "rope_parameters", "hidden_act", "head_dim (128)", "bos_token_id",
    "eos_token_id", "pad_token_id",
)  # fmt: skip
ASSUMED_VISION_FIELDS = ("layer_norm_eps", "hidden_act", "head_dim (64)", "projection_dim")


def is_released_config(data: dict[str, Any]) -> bool:
    """The released code's config.json (also `model_type: "elysium"`), told from ours by its own sub-configs."""
    return any(key in data for key in RELEASED_KEYS) and not {"text_config", "vision_config"} & set(data)


def _named_path(section: Any) -> str | None:
    if isinstance(section, dict):
        name = section.get("pretrained_model_name_or_path")
        return str(name) if name else None
    return None


def local_pretrained_config(name: str | None, sub: str | None = None) -> Any:
    """The config `name` points at, from a local folder or the local Hub cache only (no download); None if absent.

    `sub` takes a sub-config (a full CLIPConfig's `vision_config`)."""
    if not name:
        return None
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(name, local_files_only=True)
    except (OSError, ValueError) as error:
        logger.info("No local config for %s: %s", name, str(error).splitlines()[0] if str(error) else error)
        return None
    return getattr(config, sub, config) if sub else config


def _config_fields(config: Any) -> dict[str, Any]:
    data = config.to_dict()
    for key in ("transformers_version", "architectures", "dtype", "torch_dtype", "_name_or_path", "auto_map"):
        data.pop(key, None)
    return data


def released_config_kwargs(data: dict[str, Any], source: Path) -> tuple[dict, dict, int | None]:
    """(vision fields, text fields, tokens kept) of a released config.json, reading the LLM and CLIP it names."""
    llm_name = _named_path(data.get("llm_config"))
    clip_name = _named_path(data.get("visual_config"))
    text = local_pretrained_config(llm_name)
    vision = local_pretrained_config(clip_name, sub="vision_config")
    if vision is not None and getattr(vision, "model_type", None) not in ("clip_vision_model", None):
        raise ConversionError(f"{source}: visual_config names {clip_name}, a {vision.model_type}, not CLIP.")
    if text is not None and hasattr(text, "text_config"):
        text = text.text_config
    for what, name, found, fields in (
        ("llm_config", llm_name, text, ASSUMED_TEXT_FIELDS),
        ("visual_config", clip_name, vision, ASSUMED_VISION_FIELDS),
    ):
        if found is None:
            part = "Vicuna-7B v1.5" if what == "llm_config" else "CLIP-ViT-L/14-336"
            logger.warning(
                "%s: %s names %s, which is neither a local folder nor in the local Hugging Face cache; assuming "
                "%s's %s (shapes come from the weights). Pass a local folder or download its config.json to be exact.",
                source, what, name or "no model", part, ", ".join(fields),
            )  # fmt: skip
    keep = (data.get("adapter_config") or {}).get("out_token_num")
    return (
        _config_fields(vision) if vision is not None else {},
        _config_fields(text) if text is not None else {},
        int(keep) if keep is not None else None,
    )


def build_config(
    src: Path, shapes: dict[str, tuple[int, ...]], config_path: str | os.PathLike | None, t_selector_tokens: int | None
) -> Any:
    """The ElysiumConfig: `--config`, else the source's config.json (ours, or the released one with the configs it
    names), else 7B defaults; the shapes the weights give always win, so a checkpoint of any size loads."""
    from elysium.modeling_elysium import ElysiumConfig

    named_vision: dict[str, Any] = {}
    named_text: dict[str, Any] = {}
    released_keep = None

    candidates = [Path(config_path)] if config_path else ([src / "config.json"] if src.is_dir() else [])
    for path in candidates:
        if not path.is_file():
            if config_path:
                raise ConversionError(f"--config {path} does not exist.")
            continue
        data = json.loads(path.read_text())
        if is_released_config(data):
            logger.info("%s is the released code's config; reading the LLM and CLIP configs it names", path)
            named_vision, named_text, released_keep = released_config_kwargs(data, path)
            break
        if data.get("model_type") == "elysium":
            data.pop("auto_map", None)
            if t_selector_tokens is not None:
                data["t_selector_tokens"] = t_selector_tokens
            logger.info("Using the Elysium config in %s", path)
            return ElysiumConfig.from_dict(data)
        if config_path:
            raise ConversionError(f"--config {path} is not an Elysium config (model_type {data.get('model_type')!r}).")
        logger.warning("%s is not an Elysium config; inferring the shapes from the weights instead.", path)
    kwargs = infer_config_kwargs(shapes)
    defaults = ElysiumConfig()  # Elysium-7B: its vision/text settings fill what the weights and named configs do not
    for part, named, inferred in (("visual_config", named_vision, kwargs["vision_config"]),
                                  ("llm_config", named_text, kwargs["text_config"])):  # fmt: skip
        for key in ("hidden_size", "intermediate_size", "num_hidden_layers", "image_size", "patch_size"):
            if key in named and key in inferred and named[key] != inferred[key]:
                raise ConversionError(
                    f"{src}: the config {part} names has {key}={named[key]} but the weights have {inferred[key]}; "
                    "the named model is not the one these weights were built on (pass --config to override)."
                )
    if named_vision:  # a named config knows its heads; the weights only the widths
        kwargs["vision_config"].pop("num_attention_heads")
    if named_text:
        kwargs["text_config"].pop("num_attention_heads")
        kwargs["text_config"].pop("num_key_value_heads")
        heads = named_text.get("num_attention_heads") or defaults.text_config.num_attention_heads
        head_dim = kwargs["text_config"]["hidden_size"] // heads
        kv = shapes["llm.model.layers.0.self_attn.k_proj.weight"][0] // head_dim
        kwargs["text_config"]["num_key_value_heads"] = kv
    vision = {
        **_config_fields(defaults.vision_config),
        **named_vision,
        **kwargs["vision_config"],
        "model_type": "clip_vision_model",
    }
    text = {**_config_fields(defaults.text_config), **named_text, **kwargs["text_config"], "model_type": "llama"}
    if not named_text or named_text.get("head_dim") in (None, named_text.get("hidden_size", 0) // heads):
        text.pop("head_dim", None)  # derived from hidden_size / heads
    keep = t_selector_tokens if t_selector_tokens is not None else released_keep
    return ElysiumConfig(
        vision_config=vision,
        text_config=text,
        t_selector_tokens=keep if keep is not None else defaults.t_selector_tokens,
        t_selector_straight_through=True,
    )


# --------------------------------------------------------------------------------------------------------- tokenizer


def tokenizer_source(src: Path, tokenizer: str | os.PathLike | None) -> str | None:
    """Where the tokenizer comes from: `--tokenizer`, the source folder, else the LLM the released config names
    (the released code loads Vicuna's tokenizer from there), if that is a local folder or in the Hub cache."""
    if tokenizer:
        return str(tokenizer)
    if src.is_dir() and any((src / name).is_file() for name in TOKENIZER_FILES[:2]):
        return str(src)
    config_file = src / "config.json" if src.is_dir() else None
    if config_file is not None and config_file.is_file():
        data = json.loads(config_file.read_text())
        if is_released_config(data):
            return _named_path(data.get("llm_config"))
    return None


def load_tokenizer(name: str | None) -> Any:
    """The tokenizer (local files only) with `<image>` added (left padding, a pad token), or None if there is none."""
    if name is None:
        return None
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(name, padding_side="left", local_files_only=True)
    except (OSError, ValueError) as error:
        logger.warning("No tokenizer at %s (%s)", name, str(error).splitlines()[0] if str(error) else error)
        return None
    tokenizer.add_tokens([IMAGE_TOKEN], special_tokens=True)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.unk_token or tokenizer.eos_token
    return tokenizer


def _grow_rows(tensor: torch.Tensor, rows: int) -> torch.Tensor:
    """Append rows equal to the mean row (as `resize_token_embeddings(mean_resizing=True)` starts new tokens)."""
    extra = tensor.float().mean(dim=0, keepdim=True).expand(rows - tensor.shape[0], -1).to(tensor.dtype)
    return torch.cat([tensor, extra], dim=0)


# ------------------------------------------------------------------------------------------------------------ driver


def convert_released(
    src: str | os.PathLike,
    out: str | os.PathLike,
    *,
    config: str | os.PathLike | None = None,
    tokenizer: str | os.PathLike | None = None,
    t_selector_tokens: int | None = None,
    dtype: str = "keep",
    overwrite: bool = False,
) -> Path:
    """Convert the released checkpoint at `src` into a folder `ElysiumForConditionalGeneration.from_pretrained` loads.

    The output is sharded like the input (one output shard per source shard, with a transformers index), holds the
    config and, when the source has a tokenizer, the tokenizer with `<image>` and a matching ElysiumProcessor.
    """
    from elysium.modeling_elysium import ElysiumForConditionalGeneration

    src = Path(src)
    if dtype != "keep" and dtype not in DTYPES:
        raise ConversionError(f"dtype {dtype!r} is not one of keep, {', '.join(DTYPES)}.")
    shards = source_shards(src)
    shapes = source_shapes(shards)
    cfg = build_config(src, shapes, config, t_selector_tokens)

    tokenizer_name = tokenizer_source(src, tokenizer)
    tok = load_tokenizer(tokenizer_name)
    if tok is None and tokenizer:
        raise ConversionError(f"--tokenizer {tokenizer} holds no tokenizer (tokenizer.json or tokenizer.model).")
    rows = shapes.get("llm.model.embed_tokens.weight", (cfg.text_config.vocab_size,))[0]
    image_token_id = tok.convert_tokens_to_ids(IMAGE_TOKEN) if tok is not None else cfg.image_token_id
    vocab = max(rows, image_token_id + 1, len(tok) if tok is not None else 0)
    cfg.image_token_id = image_token_id
    cfg.text_config.vocab_size = vocab
    if vocab > rows:
        logger.info("Adding %d embedding/lm_head rows (mean-initialized) for %s", vocab - rows, IMAGE_TOKEN)

    with torch.device("meta"):
        target = ElysiumForConditionalGeneration(cfg)
    target_shapes = {k: tuple(v.shape) for k, v in target.state_dict().items()}
    del target
    mapping = plan_mapping(list(shapes), set(target_shapes))
    for old, new in mapping.items():
        expected = target_shapes[new]
        got = shapes[old]
        if new in (EMBED_KEY, LM_HEAD_KEY):
            got = (vocab, *got[1:])
        if got != expected:
            raise ConversionError(f"{old} has shape {shapes[old]} but {new} needs {expected}; check the config.")

    with atomic_folder(Path(out), overwrite=overwrite) as tmp:
        weight_map: dict[str, str] = {}
        total = 0
        first_dtype = None
        for index, path in enumerate(shards, start=1):
            name = f"model-{index:05d}-of-{len(shards):05d}.safetensors" if len(shards) > 1 else "model.safetensors"
            converted: dict[str, torch.Tensor] = {}
            for key, tensor in read_shard(path):
                new = mapping.get(key)
                if new is None:
                    continue
                if new in (EMBED_KEY, LM_HEAD_KEY) and tensor.shape[0] < vocab:
                    tensor = _grow_rows(tensor, vocab)
                if dtype != "keep" and tensor.is_floating_point():
                    tensor = tensor.to(DTYPES[dtype])
                if first_dtype is None and tensor.is_floating_point():
                    first_dtype = tensor.dtype
                converted[new] = tensor.contiguous()
                weight_map[new] = name
                total += tensor.numel() * tensor.element_size()
            if converted:
                save_file(converted, tmp / name, metadata={"format": "pt"})
            del converted
        if len(shards) > 1:
            index_data = {"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))}
            (tmp / "model.safetensors.index.json").write_text(json.dumps(index_data, indent=2) + "\n")
        cfg.architectures = ["ElysiumForConditionalGeneration"]
        if first_dtype is not None:
            cfg.dtype = first_dtype
        cfg.save_pretrained(tmp)
        processor = None
        if tok is not None:
            from elysium.processing import ElysiumImageProcessor, ElysiumProcessor

            size = {"height": cfg.vision_config.image_size, "width": cfg.vision_config.image_size}
            processor = ElysiumProcessor(
                ElysiumImageProcessor(size=size), tok, num_image_tokens=cfg.t_selector_tokens, prompt_format="released"
            )
            processor.save_pretrained(tmp)
        else:
            logger.warning(
                "No tokenizer for %s (none in the folder, no local one for the LLM its config names); the folder "
                "has no processor. Pass --tokenizer with Vicuna-7B v1.5's tokenizer folder.",
                src,
            )
        make_hub_ready(tmp, cfg, processor)
        notes = tmp / "CONVERSION.md"
        notes.write_text(
            f"Converted from the released Elysium checkpoint ({src.name}) by `elysium convert-released`.\n\n"
            "- `adapter.score_proj.*` dropped: the released forward never uses it.\n"
            "- `t_selector_straight_through: true`: same forward value as the released argsort selection, but the\n"
            "  gate gets a gradient if this model is fine-tuned.\n"
            f"- `<image>` is token {image_token_id}; vocabulary {rows} -> {vocab} rows.\n"
            "- the processor's `prompt_format` is `released`: the released prompt text, template wording and\n"
            "  piecewise token ids (each piece between `<image>`s encoded with `<s>`; answers alone, then `</s>`).\n"
        )
    logger.info("Converted %s -> %s (%d tensors)", src, out, len(weight_map))
    return Path(out).absolute()


__all__ = ["ConversionError", "convert_released", "infer_config_kwargs", "map_key", "plan_mapping", "source_shards"]
