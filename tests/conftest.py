"""Shared fixtures: a tiny random Elysium, a real (small, trained here) tokenizer and the matching processor.

Nothing downloads: the tokenizer is trained with `tokenizers` on the prompt paraphrases in well under a second.
"""

from __future__ import annotations

import os

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from elysium.modeling_elysium import ElysiumConfig, ElysiumForConditionalGeneration  # noqa: E402
from elysium.processing import ElysiumImageProcessor, ElysiumProcessor  # noqa: E402
from elysium.processing.prompts import PARAPHRASES  # noqa: E402
from elysium.processing.tokenizer_training import train_tokenizer  # noqa: E402

IMAGE_SIZE = 28  # 2x2 patches of 14 px: 4 patches a frame
T_SELECTOR_TOKENS = 2


def tiny_tokenizer():
    texts = [p for options in PARAPHRASES.values() for p in options]
    texts += [f"Frame {i}: [{i},{2 * i},{3 * i},{4 * i}]." for i in range(1, 40)]
    texts += ["a small red circle moving left", "the blue square at the top", "USER: ASSISTANT: </s>"]
    tokenizer = train_tokenizer(texts * 3, vocab_size=300)
    tokenizer.add_tokens(["<image>"], special_tokens=True)
    return tokenizer


def tiny_config(vocab_size: int, image_token_id: int, t_selector_tokens: int = T_SELECTOR_TOKENS, **kwargs):
    vision = dict(
        model_type="clip_vision_model",
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        image_size=IMAGE_SIZE,
        patch_size=14,
    )
    text = dict(
        model_type="llama",
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        vocab_size=vocab_size,
        max_position_embeddings=1024,
    )
    return ElysiumConfig(
        vision_config=vision,
        text_config=text,
        image_token_id=image_token_id,
        t_selector_tokens=t_selector_tokens,
        **kwargs,
    )


@pytest.fixture(scope="session")
def tokenizer():
    return tiny_tokenizer()


@pytest.fixture()
def processor(tokenizer):
    return ElysiumProcessor(
        ElysiumImageProcessor(size={"height": IMAGE_SIZE, "width": IMAGE_SIZE}),
        tokenizer,
        num_image_tokens=T_SELECTOR_TOKENS,
    )


@pytest.fixture()
def config(tokenizer):
    return tiny_config(len(tokenizer), tokenizer.convert_tokens_to_ids("<image>"))


@pytest.fixture()
def model(config):
    torch.manual_seed(0)
    return ElysiumForConditionalGeneration(config).eval()
