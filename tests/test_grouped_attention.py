"""inference/attention.py: SDPA with grouped key/value heads handed over as they are, for masked passes on the CPU.

The reference is transformers' own SDPA attention (which copies the heads, `repeat_kv`): the logits of a left-padded,
masked multi-token pass over a cache, and the box decoder's answers, must be the same under both.
"""

from __future__ import annotations

import torch
from conftest import tiny_config
from test_box_decoder import batch, per_digit_tokenizer, tiny_setup
from transformers import DynamicCache

from elysium.inference.attention import GROUPED_SDPA, grouped_sdpa_attention, use_grouped_sdpa
from elysium.inference.box_decoder import ConstrainedBoxDecoder
from elysium.modeling_elysium import ElysiumForConditionalGeneration


def masked_pass(model, processor, prompts, features) -> torch.Tensor:
    """A padded prefill, then 5 tokens a row at once over its cache, with a 2D padding mask: the masked
    multi-token pass where transformers' SDPA copies grouped heads."""
    encoding = processor.tokenize(prompts, return_tensors="pt", padding=True, padding_side="left")
    cache = DynamicCache(config=model.config)
    with torch.inference_mode():
        model(**encoding, mm_encoder_outputs={"image": _pooled(features)}, cache=cache, use_cache=True)
        high = model.config.image_token_id  # plain text tokens only
        block = torch.randint(3, high, (len(prompts), 5), generator=torch.Generator().manual_seed(0))
        mask = torch.cat([encoding["attention_mask"], torch.ones_like(block)], 1)
        positions = encoding["attention_mask"].sum(1, keepdim=True) + torch.arange(5)[None]
        return model(input_ids=block, attention_mask=mask, position_ids=positions, cache=cache, use_cache=True).logits


def _pooled(features):
    from transformers.modeling_outputs import BaseModelOutputWithPooling

    return BaseModelOutputWithPooling(pooler_output=features)


def test_grouped_heads_keep_the_logits_and_the_answers():
    model, processor = tiny_setup(per_digit_tokenizer(), seed=7)
    assert model.config.text_config.num_key_value_heads < model.config.text_config.num_attention_heads
    prompts, features, counts = batch(processor, model, seed=8)
    reference = masked_pass(model, processor, prompts, features)
    _, expected = ConstrainedBoxDecoder(model, processor, strict=True).decode(prompts, features, counts)

    assert use_grouped_sdpa(model)
    assert model.config.text_config._attn_implementation == GROUPED_SDPA
    assert model.config.vision_config._attn_implementation == "sdpa"  # only the language model's attention
    calls = []
    attention = model.model.language_model.layers[0].self_attn
    original = attention.forward

    def counted(*args, **kwargs):
        calls.append(kwargs.get("attention_mask") is not None)
        return original(*args, **kwargs)

    attention.forward = counted
    torch.testing.assert_close(masked_pass(model, processor, prompts, features), reference, atol=1e-5, rtol=0)
    assert any(calls)  # the masked pass did go through the switched attention
    _, ids = ConstrainedBoxDecoder(model, processor, strict=True).decode(prompts, features, counts)
    assert ids == expected


def test_grouped_attention_is_sdpa_where_nothing_is_grouped_or_masked():
    model, _ = tiny_setup(per_digit_tokenizer(), seed=9)
    attention = model.model.language_model.layers[0].self_attn
    query, key = torch.randn(2, 4, 6, 8), torch.randn(2, 2, 6, 8)
    # No mask (a causal prefill): transformers' path, which hands grouped heads to SDPA itself.
    out, _ = grouped_sdpa_attention(attention, query, key, key, None, scaling=0.35)
    expected = torch.nn.functional.scaled_dot_product_attention(
        query, key, key, is_causal=True, scale=0.35, enable_gqa=True
    )
    torch.testing.assert_close(out, expected.transpose(1, 2), atol=1e-6, rtol=0)
    # A masked pass: the same numbers as the copied heads give.
    mask = torch.rand(2, 1, 6, 6) > 0.3
    mask[..., 0] = True
    out, _ = grouped_sdpa_attention(attention, query, key, key, mask, scaling=0.35)
    copied = key.repeat_interleave(2, dim=1)
    expected = torch.nn.functional.scaled_dot_product_attention(query, copied, copied, attn_mask=mask, scale=0.35)
    torch.testing.assert_close(out, expected.transpose(1, 2), atol=1e-6, rtol=0)


def test_a_model_without_grouped_heads_is_left_as_it_is():
    tokenizer = per_digit_tokenizer()
    tokenizer.add_tokens(["<image>"], special_tokens=True)
    config = tiny_config(len(tokenizer), tokenizer.convert_tokens_to_ids("<image>"))
    config.text_config.num_key_value_heads = config.text_config.num_attention_heads
    model = ElysiumForConditionalGeneration(config).eval()
    assert not use_grouped_sdpa(model)
    assert model.config.text_config._attn_implementation == "sdpa"
