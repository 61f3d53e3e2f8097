"""A small BPE tokenizer for tiny models trained on the generated scenes."""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING

from .scenes import COLORS, SHAPES, SIZES, TEXTURES
from .wording import _DIRECTIONS, _PHRASES, _article

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerFast

__all__ = ["synth_tokenizer"]


def synth_tokenizer() -> PreTrainedTokenizerFast:
    """A small BPE tokenizer for tiny models trained on this data, with `<image>` added.

    Trained on the task prompts, box answers and the words of the expressions and descriptions (colors,
    shapes, sizes, textures, motion), so every word of a synthetic text is one or two tokens.
    """
    from elysium.processing.prompts import PARAPHRASES
    from elysium.processing.tokenizer_training import train_tokenizer

    texts = [p for options in PARAPHRASES.values() for p in options]
    texts += [f"Frame {i}: [{i},{2 * i},{3 * i},{4 * i}]." for i in range(1, 40)]
    for size, color, texture, shape in itertools.product(SIZES, COLORS, TEXTURES, SHAPES):
        looks = f"{size} {color} {texture} {shape}"
        texts.append(f"{_article(looks)} {looks}, the {color} {shape}")
    texts += [f"moving {speed} {direction}" for speed in ("slowly", "quickly") for direction in _DIRECTIONS]
    texts += [*_PHRASES, "USER: ASSISTANT: </s>"]
    tokenizer = train_tokenizer(texts * 3, vocab_size=512)
    tokenizer.add_tokens(["<image>"], special_tokens=True)
    return tokenizer
