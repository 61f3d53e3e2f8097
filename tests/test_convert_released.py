"""`elysium convert-released`: a checkpoint in the released layout converts and reproduces the released forward.

The reference forward below is restated from the released code with plain torch ops on the *source* tensors
(only the CLIP tower and the Llama decoder are transformers modules, loaded with the released weights), so a wrong
rename, a transposed T-Selector matrix or a swapped projector layer shows up as a mismatch.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import huggingface_hub
import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from test_hub_export import BLOCK_ELYSIUM
from transformers import AutoTokenizer, CLIPConfig, CLIPVisionConfig, CLIPVisionModel, LlamaConfig, LlamaForCausalLM

from elysium.cli import main as cli_main
from elysium.hub.convert_released import ConversionError, convert_released
from elysium.modeling_elysium import ElysiumForConditionalGeneration
from elysium.processing.prompts import PARAPHRASES
from elysium.processing.tokenizer_training import train_tokenizer

# Shapes chosen so the converter's inference (CLIP head dim 64, Llama head dim 128) fits: 2 and 2 heads. These
# sources have no config.json, so the converter assumes the Elysium-7B parts' other fields: Vicuna's rms_norm_eps.
VISION = dict(hidden_size=128, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, image_size=42,
              patch_size=14)  # fmt: skip
TEXT = dict(hidden_size=256, intermediate_size=96, num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=2,
            vocab_size=300, rms_norm_eps=1e-5)  # fmt: skip
KEEP = 4
FRAMES = 2


def released_state_dict(vision_fields=VISION, text_fields=TEXT) -> dict[str, torch.Tensor]:
    """Random weights under the released names (a transformers-4.x CLIPVisionModel keeps `vision_model.`)."""
    torch.manual_seed(0)
    vision = CLIPVisionModel(CLIPVisionConfig(**vision_fields))
    llm = LlamaForCausalLM(LlamaConfig(**text_fields))
    patches = (vision_fields["image_size"] // vision_fields["patch_size"]) ** 2
    state: dict[str, torch.Tensor] = {}
    for key, value in vision.state_dict().items():
        key = key if key.startswith("vision_model.") else "vision_model." + key
        state["visual_encoder." + key] = value.clone()
    state["visual_encoder.vision_model.embeddings.position_ids"] = torch.arange(patches + 1)[None]  # old buffer
    vh, th = vision_fields["hidden_size"], text_fields["hidden_size"]
    state["adapter.pre_proj.weight"] = torch.randn(1, vh) * 0.1
    state["adapter.pre_proj.bias"] = torch.randn(1) * 0.1
    state["adapter.trans_weight"] = torch.randn(patches, patches)  # non-zero: the selection depends on content
    state["adapter.trans_bias"] = torch.randn(patches)
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


def released_forward(
    state: dict[str, torch.Tensor],
    pixel_values: torch.Tensor,
    input_ids: torch.Tensor,
    image_id,
    vision_fields=VISION,
    text_fields=TEXT,
    keep=KEEP,
):
    """The released model's math on its own tensors: CLIP layer -2 without CLS, gate, W, softmax, top-k in patch
    order, gather, llm_proj 0 -> GELU -> 2, scattered into the Llama embeddings at the image tokens."""
    vision = CLIPVisionModel(CLIPVisionConfig(**vision_fields)).eval()
    own = vision.state_dict()
    vision_state = {}
    for key, value in state.items():
        if key.startswith("visual_encoder.") and not key.endswith("position_ids"):
            name = key.removeprefix("visual_encoder.")
            vision_state[name if name in own else name.removeprefix("vision_model.")] = value
    vision.load_state_dict(vision_state, strict=True)
    llm = LlamaForCausalLM(LlamaConfig(**text_fields)).eval()
    llm.load_state_dict({k.removeprefix("llm."): v for k, v in state.items() if k.startswith("llm.")}, strict=True)

    with torch.no_grad():
        x = vision(pixel_values, output_hidden_states=True).hidden_states[-2][:, 1:]  # (frames, patches, dim)
        g = x @ state["adapter.pre_proj.weight"].T + state["adapter.pre_proj.bias"]  # (frames, patches, 1)
        logits = g.squeeze(-1) @ state["adapter.trans_weight"] + state["adapter.trans_bias"]
        scores = torch.softmax(logits, dim=-1)
        index = torch.sort(torch.topk(scores, keep, dim=-1).indices, dim=-1).values
        kept = torch.stack([x[f, index[f]] for f in range(x.shape[0])])
        h = torch.nn.functional.gelu(kept @ state["llm_proj.0.weight"].T + state["llm_proj.0.bias"])
        tokens = h @ state["llm_proj.2.weight"].T + state["llm_proj.2.bias"]  # (frames, KEEP, text hidden)

        embeds = state["llm.model.embed_tokens.weight"][input_ids.clamp(max=text_fields["vocab_size"] - 1)].clone()
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


# ------------------------------------------------------------------------ the released layout: config.json + parts

# A released-layout checkpoint of another size: heads the weight shapes cannot tell (head dims 24 and 32, not 64
# and 128), CLIP layer_norm_eps and Llama rms_norm_eps 1e-6, 5 tokens kept (adapter_config.out_token_num).
VISION_SMALL = dict(hidden_size=96, intermediate_size=80, num_hidden_layers=2, num_attention_heads=4, image_size=56,
                    patch_size=14, layer_norm_eps=1e-6)  # fmt: skip
TEXT_SMALL = dict(hidden_size=128, intermediate_size=160, num_hidden_layers=2, num_attention_heads=4,
                  num_key_value_heads=2, vocab_size=300, rms_norm_eps=1e-6, max_position_embeddings=512)  # fmt: skip
KEEP_SMALL = 5

REMOTE_BODY = textwrap.dedent(
    """
    import numpy as np
    import torch
    from transformers import AutoModel, AutoProcessor, pipeline

    hub_dir, frames_file, out_file = sys.argv[1:4]
    frames = list(np.load(frames_file))
    model = AutoModel.from_pretrained(hub_dir, trust_remote_code=True).eval()
    processor = AutoProcessor.from_pretrained(hub_dir, trust_remote_code=True)
    prompt = processor.build_prompt("sot", num_frames=len(frames), box=[0.1, 0.2, 0.5, 0.6])
    inputs = processor(text=prompt, images=frames)
    with torch.no_grad():
        logits = model(**inputs).logits
    tracker = pipeline("video-object-tracking", model=hub_dir, trust_remote_code=True, device="cpu")
    tracker.tracker.max_new_tokens = 16
    track = tracker(frames, box=[2, 3, 20, 25])
    assert not any(m.startswith("elysium") for m in sys.modules), [m for m in sys.modules if m.startswith("elysium")]
    torch.save(
        {
            "model_module": type(model).__module__,
            "pipeline_module": type(tracker).__module__,
            "prompt_format": processor.prompt_format,
            "prompt": prompt,
            "input_ids": inputs["input_ids"],
            "pixel_values": inputs["pixel_values"],
            "logits": logits,
            "track": track,
        },
        out_file,
    )
    """
)


def write_released_layout(root: Path) -> tuple[Path, dict[str, torch.Tensor], Path]:
    """`root/elysium_7b` as released: weights and a config.json naming a local LLM folder (with its tokenizer, as
    the released code loads Vicuna's) and a local CLIP folder (a full CLIPConfig, as openai's)."""
    llm_dir, clip_dir, src = root / "vicuna-small", root / "clip-small", root / "elysium_small"
    LlamaConfig(**TEXT_SMALL).save_pretrained(llm_dir)
    texts = [p for options in PARAPHRASES.values() for p in options] + ["Frame 1: [1,2,3,4]."]
    train_tokenizer(texts * 3, vocab_size=TEXT_SMALL["vocab_size"]).save_pretrained(llm_dir)
    CLIPConfig(vision_config=VISION_SMALL, text_config={"hidden_size": 32, "num_hidden_layers": 1}).save_pretrained(
        clip_dir
    )
    state = released_state_dict(VISION_SMALL, TEXT_SMALL)
    write_sharded(src, state, shards=2)
    released_config = {
        "model_type": "elysium",
        "adapter_config": {"out_token_num": KEEP_SMALL, "adapter_type": "t_selector"},
        "llm_config": {"pretrained_model_name_or_path": str(llm_dir)},
        "visual_config": {"pretrained_model_name_or_path": str(clip_dir)},
    }
    (src / "config.json").write_text(json.dumps(released_config))
    return src, state, llm_dir


def test_released_layout_converts_to_a_folder_that_runs_without_the_package(tmp_path: Path, capsys) -> None:
    src, state, llm_dir = write_released_layout(tmp_path)
    out = tmp_path / "elysium-small"
    assert cli_main(["convert-released", "--src", str(src), "--out", str(out)]) == 0, capsys.readouterr().err

    config = json.loads((out / "config.json").read_text())
    text, vision = config["text_config"], config["vision_config"]
    assert (text["num_attention_heads"], text["num_key_value_heads"], text["rms_norm_eps"]) == (4, 2, 1e-6)
    assert text["max_position_embeddings"] == 512
    assert (vision["num_attention_heads"], vision["layer_norm_eps"], vision["image_size"]) == (4, 1e-6, 56)
    assert config["t_selector_tokens"] == KEEP_SMALL
    assert config["auto_map"]["AutoModel"] == "modeling_elysium.ElysiumForConditionalGeneration"
    assert config["custom_pipelines"]["video-object-tracking"]["impl"] == "video_tracking.VideoObjectTrackingPipeline"
    assert json.loads((out / "processor_config.json").read_text())["prompt_format"] == "released"
    assert {"modeling_elysium.py", "processing_elysium.py", "video_tracking.py", "README.md"} <= {
        p.name for p in out.iterdir()
    }
    assert "<question>ASSISTANT:" in (out / "README.md").read_text()

    rng = np.random.default_rng(0)
    frames = np.stack([rng.integers(0, 256, size=(40, 52, 3), dtype=np.uint8) for _ in range(3)])
    np.save(tmp_path / "frames.npy", frames)
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "PYTHONHOME"}}
    env.update(HF_HUB_OFFLINE="1", HF_MODULES_CACHE=str(tmp_path / "modules"), HF_HOME=str(tmp_path / "hf_home"))
    (tmp_path / "cwd").mkdir()
    run = subprocess.run(
        [
            sys.executable,
            "-c",
            BLOCK_ELYSIUM + REMOTE_BODY,
            str(out),
            str(tmp_path / "frames.npy"),
            str(tmp_path / "r"),
        ],
        cwd=tmp_path / "cwd",
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    remote = torch.load(tmp_path / "r", weights_only=False)
    assert remote["model_module"].startswith("transformers_modules.")
    assert remote["pipeline_module"].startswith("transformers_modules.")
    assert remote["prompt_format"] == "released"

    # The prompt ids are the released pipeline's: each piece between <image>s encoded alone (with <s>).
    tokenizer = AutoTokenizer.from_pretrained(llm_dir)
    image_id = TEXT_SMALL["vocab_size"]  # `<image>` appended to the 300-token vocabulary
    pieces = remote["prompt"].split("<image>")
    expected = []
    for index, piece in enumerate(pieces):
        expected += ([image_id] * KEEP_SMALL if index else []) + tokenizer.encode(piece)
    assert remote["input_ids"][0].tolist() == expected
    assert remote["prompt"].endswith("in each frame.ASSISTANT:") and "questions. USER: Frame 1: " in remote["prompt"]

    _, _, reference = released_forward(
        state, remote["pixel_values"], remote["input_ids"], image_id, VISION_SMALL, TEXT_SMALL, KEEP_SMALL
    )
    torch.testing.assert_close(remote["logits"][..., :image_id], reference, rtol=0, atol=1e-5)

    track = remote["track"]
    assert track["num_frames"] == 3 and len(track["boxes"]) == 3
    assert all(len(box) == 4 for box in track["boxes"] if box is not None)


def test_released_config_without_local_parts_assumes_the_7b_fields(tmp_path: Path, caplog, monkeypatch) -> None:
    """Parts that are neither local folders nor cached: the 7B's fields are assumed, and the warning names them.
    A part in the local Hub cache is read from there (here CLIP's, with a non-default layer_norm_eps)."""
    cache = tmp_path / "hf_home" / "hub"
    snapshot = cache / "models--openai--clip-vit-large-patch14-336" / "snapshots" / "abc123"
    CLIPConfig(vision_config={**VISION, "layer_norm_eps": 1e-6}).save_pretrained(snapshot)
    (snapshot.parent.parent / "refs").mkdir()
    (snapshot.parent.parent / "refs" / "main").write_text("abc123")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))  # read at call time
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)

    state = released_state_dict()
    src = tmp_path / "src"
    write_sharded(src, state, shards=1)
    (src / "config.json").write_text(
        json.dumps(
            {
                "model_type": "elysium",
                "adapter_config": {"out_token_num": KEEP},
                "llm_config": {"pretrained_model_name_or_path": "lmsys/vicuna-7b-v1.5"},
                "visual_config": {"pretrained_model_name_or_path": "openai/clip-vit-large-patch14-336"},
            }
        )
    )
    with caplog.at_level(logging.WARNING):
        out = convert_released(src, tmp_path / "out")
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assumed = [w for w in warnings if "assuming" in w]
    assert len(assumed) == 1 and "Vicuna-7B v1.5" in assumed[0] and "rms_norm_eps" in assumed[0]
    assert "lmsys/vicuna-7b-v1.5" in assumed[0]  # CLIP was found in the cache
    config = json.loads((out / "config.json").read_text())
    assert config["t_selector_tokens"] == KEEP
    assert config["text_config"]["rms_norm_eps"] == 1e-5 and config["text_config"]["max_position_embeddings"] == 4096
    assert config["vision_config"]["layer_norm_eps"] == 1e-6  # read from the cached CLIP config
    assert config["vision_config"]["num_attention_heads"] == VISION["num_attention_heads"]


def test_named_part_that_does_not_fit_the_weights_fails_by_name(tmp_path: Path) -> None:
    src, _, llm_dir = write_released_layout(tmp_path)
    LlamaConfig(**{**TEXT_SMALL, "hidden_size": 256}).save_pretrained(llm_dir)  # another LLM than the weights'
    with pytest.raises(ConversionError, match="hidden_size=256 but the weights have 128"):
        convert_released(src, tmp_path / "out")
    assert not (tmp_path / "out").exists()
