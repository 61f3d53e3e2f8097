"""`elysium convert-released`: a checkpoint in the released layout converts and reproduces the released forward.

The reference forward below is restated from the released code with plain torch ops on the *source* tensors
(only the CLIP tower and the Llama decoder are transformers modules, loaded with the released weights), so a wrong
rename, a transposed T-Selector matrix or a swapped projector layer shows up as a mismatch.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from elysium.hub.convert_released import ConversionError, convert_released
from elysium.inference.cli import main as cli_main
from elysium.modeling_elysium import ElysiumForConditionalGeneration
from elysium.processing.prompts import PARAPHRASES
from elysium.processing.tokenizer_training import train_tokenizer
from safetensors.torch import save_file
from transformers import CLIPVisionConfig, CLIPVisionModel, LlamaConfig, LlamaForCausalLM

# Shapes chosen so the converter's inference (CLIP head dim 64, Llama head dim 128) fits: 2 and 2 heads. These
# sources have no config.json, so the converter assumes the Elysium-7B parts' other fields: Vicuna's rms_norm_eps.
VISION = dict(hidden_size=128, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, image_size=42,
              patch_size=14)  # fmt: skip
TEXT = dict(hidden_size=256, intermediate_size=96, num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=2,
            vocab_size=300, rms_norm_eps=1e-5)  # fmt: skip
PATCHES = (VISION["image_size"] // VISION["patch_size"]) ** 2  # 9
KEEP = 4
FRAMES = 2


def released_state_dict() -> dict[str, torch.Tensor]:
    """Random weights under the released names (a transformers-4.x CLIPVisionModel keeps `vision_model.`)."""
    torch.manual_seed(0)
    vision = CLIPVisionModel(CLIPVisionConfig(**VISION))
    llm = LlamaForCausalLM(LlamaConfig(**TEXT))
    state: dict[str, torch.Tensor] = {}
    for key, value in vision.state_dict().items():
        key = key if key.startswith("vision_model.") else "vision_model." + key
        state["visual_encoder." + key] = value.clone()
    state["visual_encoder.vision_model.embeddings.position_ids"] = torch.arange(PATCHES + 1)[None]  # old buffer
    vh, th = VISION["hidden_size"], TEXT["hidden_size"]
    state["adapter.pre_proj.weight"] = torch.randn(1, vh) * 0.1
    state["adapter.pre_proj.bias"] = torch.randn(1) * 0.1
    state["adapter.trans_weight"] = torch.randn(PATCHES, PATCHES)  # non-zero: the selection depends on content
    state["adapter.trans_bias"] = torch.randn(PATCHES)
    state["adapter.score_proj.weight"] = torch.randn(1, vh)
    state["adapter.score_proj.bias"] = torch.randn(1)
    state["llm_proj.0.weight"] = torch.randn(th, vh) * 0.05
    state["llm_proj.0.bias"] = torch.randn(th) * 0.05
    state["llm_proj.2.weight"] = torch.randn(th, th) * 0.05
    state["llm_proj.2.bias"] = torch.randn(th) * 0.05
    for key, value in llm.state_dict().items():
        state["llm." + key] = value.clone()
    return state


def write_sharded(folder: Path, state: dict[str, torch.Tensor], shards: int = 3) -> None:
    """Released-style sharded safetensors with an index json."""
    folder.mkdir(parents=True, exist_ok=True)
    keys = sorted(state)
    weight_map = {}
    for i in range(shards):
        name = f"pytorch_model-{i + 1:05d}-of-{shards:05d}.safetensors"
        part = {k: state[k].contiguous() for k in keys[i::shards]}
        save_file(part, folder / name, metadata={"format": "pt"})
        weight_map.update(dict.fromkeys(part, name))
    (folder / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))


def released_forward(state: dict[str, torch.Tensor], pixel_values: torch.Tensor, input_ids: torch.Tensor, image_id):
    """The released model's math on its own tensors: CLIP layer -2 without CLS, gate, W, softmax, top-k in patch
    order, gather, llm_proj 0 -> GELU -> 2, scattered into the Llama embeddings at the image tokens."""
    vision = CLIPVisionModel(CLIPVisionConfig(**VISION)).eval()
    own = vision.state_dict()
    vision_state = {}
    for key, value in state.items():
        if key.startswith("visual_encoder.") and not key.endswith("position_ids"):
            name = key.removeprefix("visual_encoder.")
            vision_state[name if name in own else name.removeprefix("vision_model.")] = value
    vision.load_state_dict(vision_state, strict=True)
    llm = LlamaForCausalLM(LlamaConfig(**TEXT)).eval()
    llm.load_state_dict({k.removeprefix("llm."): v for k, v in state.items() if k.startswith("llm.")}, strict=True)

    with torch.no_grad():
        x = vision(pixel_values, output_hidden_states=True).hidden_states[-2][:, 1:]  # (frames, patches, dim)
        g = x @ state["adapter.pre_proj.weight"].T + state["adapter.pre_proj.bias"]  # (frames, patches, 1)
        logits = g.squeeze(-1) @ state["adapter.trans_weight"] + state["adapter.trans_bias"]
        scores = torch.softmax(logits, dim=-1)
        index = torch.sort(torch.topk(scores, KEEP, dim=-1).indices, dim=-1).values
        kept = torch.stack([x[f, index[f]] for f in range(x.shape[0])])
        h = torch.nn.functional.gelu(kept @ state["llm_proj.0.weight"].T + state["llm_proj.0.bias"])
        tokens = h @ state["llm_proj.2.weight"].T + state["llm_proj.2.bias"]  # (frames, KEEP, text hidden)

        embeds = state["llm.model.embed_tokens.weight"][input_ids.clamp(max=TEXT["vocab_size"] - 1)].clone()
        embeds[input_ids == image_id] = tokens.reshape(-1, tokens.shape[-1])
        out = llm(inputs_embeds=embeds).logits
    return tokens, index, out


@pytest.fixture()
def released(tmp_path: Path) -> tuple[Path, dict[str, torch.Tensor]]:
    state = released_state_dict()
    src = tmp_path / "elysium_7b"
    write_sharded(src, state)
    texts = [p for options in PARAPHRASES.values() for p in options] + ["Frame 1: [1,2,3,4]."]
    tokenizer = train_tokenizer(texts * 3, vocab_size=TEXT["vocab_size"])  # a Llama-style one without `<image>`
    assert len(tokenizer) == TEXT["vocab_size"] and "<image>" not in tokenizer.get_vocab()
    tokenizer.save_pretrained(src)
    return src, state


def test_converted_model_reproduces_the_released_forward(tmp_path: Path, released) -> None:
    src, state = released
    out = convert_released(src, tmp_path / "converted", t_selector_tokens=KEEP)

    index = json.loads((out / "model.safetensors.index.json").read_text())
    assert len(set(index["weight_map"].values())) == 3  # one output shard per source shard
    assert not any("score_proj" in k for k in index["weight_map"])
    model = ElysiumForConditionalGeneration.from_pretrained(out).eval()
    config = model.config
    assert (config.vision_config.hidden_size, config.vision_config.image_size) == (128, 42)
    assert (config.text_config.hidden_size, config.text_config.num_hidden_layers) == (256, 2)
    assert config.t_selector_tokens == KEEP and config.t_selector_straight_through is True
    assert config.image_token_id == 300 and config.text_config.vocab_size == 301  # `<image>` appended

    torch.manual_seed(1)
    pixel_values = torch.randn(FRAMES, 3, 42, 42)
    text = torch.randint(3, 300, (20,))
    input_ids = torch.cat([text[:5], torch.full((FRAMES * KEEP,), 300), text[5:]])[None]
    tokens, kept, ref_logits = released_forward(state, pixel_values, input_ids, image_id=300)
    assert not torch.equal(kept[0], kept[1])  # the selection follows content, so a wrong gate would show

    with torch.no_grad():
        output = model(input_ids=input_ids, pixel_values=pixel_values)
    assert torch.equal(output.selected_patches, kept)
    torch.testing.assert_close(output.image_hidden_states, tokens.reshape(-1, tokens.shape[-1]), rtol=0, atol=1e-5)
    torch.testing.assert_close(output.logits[..., :300], ref_logits, rtol=0, atol=1e-5)

    # The tokenizer came along with `<image>`, inside a processor that expands it to the T-Selector's count.
    from elysium.processing import ElysiumProcessor

    processor = ElysiumProcessor.from_pretrained(out)
    assert processor.image_token_id == 300 and processor.num_image_tokens == KEEP
    assert processor.image_processor.size == {"height": 42, "width": 42}


def test_single_file_source_and_cli(tmp_path: Path, capsys) -> None:
    state = released_state_dict()
    src = tmp_path / "released.pt"
    torch.save(state, src)
    code = cli_main(["convert-released", "--src", str(src), "--out", str(tmp_path / "out"), "--t-selector-tokens", "4"])
    assert code == 0, capsys.readouterr().err
    model = ElysiumForConditionalGeneration.from_pretrained(tmp_path / "out")
    torch.testing.assert_close(model.model.t_selector.trans_weight, state["adapter.trans_weight"])
    torch.testing.assert_close(model.model.multi_modal_projector.linear_2.weight, state["llm_proj.2.weight"])
    torch.testing.assert_close(model.lm_head.weight[:300], state["llm.lm_head.weight"])


@pytest.mark.parametrize("change", ["unknown", "missing"])
def test_unknown_or_missing_key_fails_by_name(tmp_path: Path, change: str, capsys) -> None:
    state = released_state_dict()
    if change == "unknown":
        state["adapter.mystery_gate.weight"] = torch.zeros(3)
        name = "adapter.mystery_gate.weight"
    else:
        del state["llm.model.layers.1.mlp.up_proj.weight"]
        name = "model.language_model.layers.1.mlp.up_proj.weight"
    src = tmp_path / "src"
    write_sharded(src, state, shards=2)
    with pytest.raises(ConversionError, match=change) as error:
        convert_released(src, tmp_path / "out", t_selector_tokens=KEEP)
    assert name in str(error.value)
    assert not (tmp_path / "out").exists()
    assert cli_main(["convert-released", "--src", str(src), "--out", str(tmp_path / "out"), "--t-selector-tokens", "4"])
    assert name in capsys.readouterr().err
