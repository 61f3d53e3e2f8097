"""Elysium's forward pass against transformers' Llava, the T-Selector against the released math, round trips."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from conftest import IMAGE_SIZE, tiny_config
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForCausalLM,
    AutoModelForImageTextToText,
    LlavaConfig,
    LlavaForConditionalGeneration,
)

from elysium.modeling_elysium import ElysiumConfig, ElysiumForConditionalGeneration, TSelector


def frames(n: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, size=(40, 52, 3), dtype=np.uint8) for _ in range(n)]


def test_matches_llava_when_selector_keeps_every_patch(tokenizer, processor):
    """With k = all patches (kept in patch order), Elysium is LLaVA: same vision layer, CLS drop, projector, merge."""
    config = tiny_config(len(tokenizer), tokenizer.convert_tokens_to_ids("<image>"), t_selector_tokens=4)
    torch.manual_seed(0)
    elysium = ElysiumForConditionalGeneration(config).eval()
    llava_config = LlavaConfig(
        vision_config=config.vision_config.to_dict(),
        text_config=config.text_config.to_dict(),
        image_token_id=config.image_token_id,
        vision_feature_layer=-2,
        vision_feature_select_strategy="default",
    )
    llava = LlavaForConditionalGeneration(llava_config).eval()
    weights = {k: v for k, v in elysium.state_dict().items() if ".t_selector." not in k}
    result = llava.load_state_dict(weights, strict=True)
    assert not result.missing_keys and not result.unexpected_keys

    processor.num_image_tokens = 4
    text = processor.build_prompt("sot", 3, box=[0.1, 0.2, 0.5, 0.6])
    inputs = processor(text=[text, text.replace("object", "thing")], images=[frames(3, 1), frames(3, 2)])
    with torch.no_grad():
        ours = elysium(**inputs).logits
        reference = llava(**inputs).logits
    torch.testing.assert_close(ours, reference, atol=1e-5, rtol=0)


def released_selection(selector: TSelector, features: torch.Tensor) -> torch.Tensor:
    """The released adapter's forward, restated: softmax gate, argsort top-k, indices re-sorted, gather."""
    gate = features @ selector.pre_proj.weight.T + selector.pre_proj.bias
    logits = gate.squeeze(-1) @ selector.trans_weight + selector.trans_bias
    scores = torch.softmax(logits, dim=-1)
    top = torch.argsort(scores, dim=-1, descending=True)[:, : selector.num_tokens]
    top = torch.sort(top, dim=-1).values
    return torch.stack([features[i, top[i]] for i in range(features.shape[0])])


def selector_config(n: int = 16, k: int = 4, d: int = 8, straight_through: bool = True) -> SimpleNamespace:
    return SimpleNamespace(
        num_patches=n,
        t_selector_tokens=k,
        t_selector_straight_through=straight_through,
        vision_config=SimpleNamespace(hidden_size=d),
    )


def test_t_selector_forward_equals_released_selection():
    torch.manual_seed(1)
    selector = TSelector(selector_config())
    torch.nn.init.normal_(selector.trans_weight, std=0.5)
    torch.nn.init.normal_(selector.trans_bias, std=0.5)
    features = torch.randn(5, 16, 8)
    tokens, kept = selector(features)
    assert torch.equal(tokens, released_selection(selector, features))
    assert torch.all(kept[:, 1:] > kept[:, :-1]), "kept patches are in patch order"


def test_t_selector_gradients_reach_every_gate_parameter_unlike_released():
    torch.manual_seed(2)
    for straight_through in (True, False):
        selector = TSelector(selector_config(straight_through=straight_through))
        torch.nn.init.normal_(selector.trans_weight, std=0.5)
        features = torch.randn(3, 16, 8, requires_grad=True)  # as if from a trainable vision tower
        tokens, _ = selector(features)
        (tokens**2).sum().backward()
        grads = {name: p.grad for name, p in selector.named_parameters()}
        if straight_through:
            assert all(g is not None and g.abs().sum() > 0 for g in grads.values()), grads.keys()
        else:  # the released argsort: no gradient path into the gate
            assert all(g is None or g.abs().sum() == 0 for g in grads.values())


def train_selection(straight_through: bool, steps: int = 250) -> float:
    """Fraction of kept patches that are the useful ones after training on a task only they can solve."""
    torch.manual_seed(0)
    n, k, d = 16, 4, 8
    useful = torch.tensor([2, 5, 11, 14])
    selector = TSelector(selector_config(n, k, d, straight_through))
    torch.nn.init.normal_(selector.trans_weight, std=0.02)
    head = torch.nn.Linear(d, 1)
    optimizer = torch.optim.Adam([*selector.parameters(), *head.parameters()], lr=0.05)

    def batch(size: int) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = torch.randn(size, n, d), torch.randn(size)
        x[:, useful, 0] = y[:, None]  # only the useful patches carry the target
        return x, y

    for _ in range(steps):
        x, y = batch(64)
        tokens, _ = selector(x)
        loss = ((head(tokens.mean(1)).squeeze(-1) - y) ** 2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        _, kept = selector(batch(256)[0])
    return torch.isin(kept, useful).float().mean().item()


def test_training_moves_selection_onto_useful_patches():
    learned = train_selection(straight_through=True)
    fixed = train_selection(straight_through=False)
    assert learned >= 0.6, learned
    assert fixed <= 0.4, fixed  # chance is 4/16: the released gate cannot find them


def test_save_load_round_trip_and_auto_classes(tmp_path, model, processor):
    inputs = processor(text=processor.build_prompt("rsot", 2, expression="the red circle"), images=frames(2))
    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    with torch.no_grad():
        expected = model(**inputs).logits
    for auto in (AutoModel, AutoModelForCausalLM, AutoModelForImageTextToText, ElysiumForConditionalGeneration):
        loaded = auto.from_pretrained(tmp_path).eval()
        assert isinstance(loaded, ElysiumForConditionalGeneration)
        with torch.no_grad():
            assert torch.equal(loaded(**inputs).logits, expected)
    assert isinstance(AutoConfig.from_pretrained(tmp_path), ElysiumConfig)


def test_generation_with_and_without_cache_gives_identical_tokens(model, processor):
    prompts = [
        processor.build_prompt("sot", 2, box=[0.1, 0.1, 0.4, 0.5]),
        processor.build_prompt("video_reg", 3, box=[0.2, 0.3, 0.6, 0.9]),
    ]
    inputs = processor(text=prompts, images=[frames(2, 3), frames(3, 4)])
    cached = model.generate(**inputs, max_new_tokens=12, do_sample=False, use_cache=True)
    uncached = model.generate(**inputs, max_new_tokens=12, do_sample=False, use_cache=False)
    assert cached.shape[1] == inputs["input_ids"].shape[1] + 12
    assert torch.equal(cached, uncached)


def test_selected_patches_are_returned(model, processor):
    inputs = processor(text=processor.build_prompt("sot", 2, box=[0.1, 0.1, 0.4, 0.5]), images=frames(2))
    out = model(**inputs)
    assert out.selected_patches.shape == (2, model.config.t_selector_tokens)
    assert out.image_hidden_states.shape == (2 * model.config.t_selector_tokens, model.config.text_config.hidden_size)


def test_mismatched_image_tokens_and_frames_fail_clearly(model, processor):
    inputs = processor(text=processor.build_prompt("sot", 2, box=[0.1, 0.1, 0.4, 0.5]), images=frames(2))
    extra = torch.cat([inputs["pixel_values"], inputs["pixel_values"][:1]])
    with pytest.raises(ValueError, match="image tokens but the frames give"):
        model(input_ids=inputs["input_ids"], pixel_values=extra)


def test_too_many_frames_for_the_context_fail_clearly(tokenizer):
    config = tiny_config(len(tokenizer), tokenizer.convert_tokens_to_ids("<image>"))
    config.text_config.max_position_embeddings = 64
    model = ElysiumForConditionalGeneration(config).eval()
    ids = torch.full((1, 80), 5)
    with pytest.raises(ValueError, match="fewer frames"):
        model(input_ids=ids)


def test_wrong_frame_size_fails_clearly(model):
    pixels = torch.randn(1, 3, IMAGE_SIZE * 2, IMAGE_SIZE * 2)
    with pytest.raises(ValueError, match="image_size"):
        model.model.get_image_features(pixel_values=pixels, interpolate_pos_encoding=True)


def test_config_rejects_more_selected_tokens_than_patches():
    with pytest.raises(ValueError, match="t_selector_tokens=600"):
        ElysiumConfig(t_selector_tokens=600)
