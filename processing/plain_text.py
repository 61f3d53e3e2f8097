"""User text inside a prompt (an expression, a question) is marked, so it is encoded as plain text and never read
as special tokens: a user who types `<image>` or `</s>` gets those characters, not an image slot or an end.

The marks are two Unicode noncharacters, which no real text holds. Hand-written because tokenizers recognize
special tokens in the whole string or nowhere (`split_special_tokens`), not in parts of it.
"""

from __future__ import annotations

import re
from typing import Any

PLAIN_START, PLAIN_END = "\ufdd0", "\ufdd1"
PLAIN_RE = re.compile(f"{PLAIN_START}(.*?){PLAIN_END}", re.DOTALL)


def outside_marks(text: str, change: Any) -> str:
    """`text` with `change(piece)` applied to each piece outside the marked spans (the marked ones kept as they are)."""
    pieces = re.split(f"({PLAIN_START}.*?{PLAIN_END})", text, flags=re.DOTALL)
    return "".join(piece if piece.startswith(PLAIN_START) else change(piece) for piece in pieces)


def encode_marked(
    tokenizer: Any, text: str, add_special_tokens: bool = True, offsets: bool = False
) -> list[int] | tuple[list[int], list[tuple[int, int]]]:
    """The ids of `text` (and, with `offsets`, each id's character span in `text`), its marked spans encoded as
    plain text. The pieces outside them are encoded as the tokenizer encodes text (special tokens recognized), the
    first with the tokenizer's leading special tokens when `add_special_tokens`; a text without marks is one piece,
    so its ids are exactly `tokenizer(text)`'s."""
    pieces: list[tuple[int, int, bool]] = []
    position = 0
    for match in PLAIN_RE.finditer(text):
        pieces += [(position, match.start(), False), (match.start(1), match.end(1), True)]
        position = match.end()
    pieces.append((position, len(text), False))
    ids: list[int] = []
    spans: list[tuple[int, int]] = []
    for number, (start, end, plain) in enumerate(pieces):
        if start == end and number:
            continue
        encoded = tokenizer(
            text[start:end],
            add_special_tokens=add_special_tokens and number == 0,
            split_special_tokens=plain,
            return_offsets_mapping=offsets,
        )
        ids += encoded["input_ids"]
        if offsets:
            spans += [(s + start, e + start) for s, e in encoded["offset_mapping"]]
    return (ids, spans) if offsets else ids
