"""The released Elysium-7B's prompt text and token ids, for a converted released checkpoint.

Restated from the released code (Hon-Wong/Elysium; DESIGN.md "Prompt and box format"):

- text (data/processors/online_vqa_processor.py, vqa_processor.py): `SYSTEM + "USER: " + frames + question +
  "ASSISTANT:"`; SYSTEM ends with a space and there is no space before `ASSISTANT:`;
- ids (data/video_llm_data.py, `tokenizer_vision_placeholder`): the prompt is split at each `<image>` and every piece
  is encoded on its own with `tokenizer.encode(piece)` (default special tokens, so each piece starts with `<s>` and a
  fresh word start); the pieces are joined by the image placeholder. The answer is encoded alone with
  `add_special_tokens=False`, then `</s>`; a multi-turn conversation repeats prompt + answer + `</s>`.

A conversation is written here as one string, `prompt + answer + "</s>"` per turn, the answer directly after
`ASSISTANT:` (no space: the answer is encoded alone, so the Llama tokenizer gives it its own word start). The ids
cannot come from tokenizing that string in one go (`<s>` before every piece, word starts at every boundary), so
`encode_released` splits it back into the released pieces. Hand-written because no library encodes piecewise.
"""

from __future__ import annotations

import re
from typing import Any

from .plain_text import PLAIN_RE, encode_marked

RELEASED = "released"
ELYSIUM = "elysium"
PROMPT_FORMATS = (ELYSIUM, RELEASED)

RELEASED_SYSTEM = (
    "A chat between a curious user and an artificial intelligence assistant. "
    "The assistant gives helpful, detailed, and polite answers to the user's questions. "
)
USER = "USER: "
ASSISTANT = "ASSISTANT:"
END = "</s>"

# The Jinja pieces both chat templates share (this module's and processing_elysium's): a message's items, and a
# user turn's frames ("Frame i: <image>, ...\n"; one image: "<image>\n") followed by its text.
MESSAGE_ITEMS = (
    "{%- if message['content'] is string -%}{%- set items = [{'type': 'text', 'text': message['content']}] -%}"
    "{%- else -%}{%- set items = message['content'] -%}{%- endif -%}"
)
FRAMES_THEN_TEXT = (
    "{%- set frames = items | selectattr('type', 'equalto', 'image') | list -%}"
    "{%- if frames | length == 1 -%}{{- '<image>\n' -}}"
    "{%- elif frames | length > 1 -%}"
    "{%- for frame in frames -%}{{- 'Frame ' ~ loop.index ~ ': <image>' -}}{{- ', ' if not loop.last -}}"
    "{%- endfor -%}"
    "{{- '\n' -}}{%- endif -%}"
    "{%- for item in items if item['type'] == 'text' -%}{{- item['text'] -}}{%- endfor -%}"
)
ANSWER_TEXT = "{%- for item in items if item['type'] == 'text' -%}{{- item['text'] -}}{%- endfor -%}"

# The chat template writing the released text: the frames, the question, "ASSISTANT:", and an answer directly
# after it, closed by "</s>".
RELEASED_CHAT_TEMPLATE = (
    "{%- for message in messages -%}" + MESSAGE_ITEMS + "{%- if message['role'] == 'user' -%}"
    "{{- '"
    + RELEASED_SYSTEM.replace("'", "\\'")
    + "' if loop.first -}}{{- 'USER: ' -}}"
    + FRAMES_THEN_TEXT
    + "{{- 'ASSISTANT:' -}}"
    "{%- elif message['role'] == 'assistant' -%}" + ANSWER_TEXT + "{{- '</s>' -}}"
    "{%- endif -%}"
    "{%- endfor -%}"
)

# Noncharacters (never in real text) around a stashed user-text span's number.
_STASH = ("\ufdd2", "\ufdd3")
_STASHED = re.compile(f"{_STASH[0]}(\\d+){_STASH[1]}")
_TURN = re.compile(r"(.*?" + re.escape(ASSISTANT) + r")(?:(.*?)" + re.escape(END) + r")?", re.DOTALL)


def check_prompt_format(prompt_format: str) -> str:
    if prompt_format not in PROMPT_FORMATS:
        raise ValueError(
            f"prompt_format={prompt_format!r}: choose {ELYSIUM!r} (this package's models) or {RELEASED!r} (a "
            "converted released Elysium-7B, asked with exactly the released token ids)."
        )
    return prompt_format


def split_turns(text: str) -> list[tuple[str, str | None]]:
    """`[(prompt, answer or None), ...]` of a released-format conversation; only the last turn may lack an answer."""
    turns: list[tuple[str, str | None]] = []
    cursor = 0
    while cursor < len(text):
        match = _TURN.match(text, cursor)
        if match is None or match.end() == cursor:
            break
        turns.append((match.group(1), match.group(2)))
        cursor = match.end()
        if match.group(2) is None:
            break
    if cursor != len(text) or not turns or any(answer is None for _, answer in turns[:-1]):
        raise ValueError(
            f"Not a released-format prompt: {text[:120]!r}... Write SYSTEM + 'USER: ' + frames + question + "
            "'ASSISTANT:' (answers directly after it, each closed by '</s>'); processor.build_prompt does."
        )
    return turns


def encode_released(
    tokenizer: Any,
    text: str,
    image_token: str,
    image_token_id: int,
    num_image_tokens: int,
) -> tuple[list[int], list[bool]]:
    """Token ids of a released-format conversation and, per id, whether it belongs to an answer (its `</s>` too).

    Each `<image>` becomes `num_image_tokens` copies of `image_token_id` (the released placeholder, expanded).
    User text marked by the processor (`plain_text.py`) is encoded as plain text: a `<image>` or `</s>` typed by a
    user is never read as a special token.
    """
    ids: list[int] = []
    is_answer: list[bool] = []
    image = [image_token_id] * num_image_tokens
    # User text is set aside while the conversation is cut at its own `<image>`, `ASSISTANT:` and `</s>`, then put back.
    spans: list[str] = []
    text = PLAIN_RE.sub(lambda m: spans.append(m.group(0)) or f"{_STASH[0]}{len(spans) - 1}{_STASH[1]}", text)

    def restore(piece: str) -> str:
        return _STASHED.sub(lambda m: spans[int(m.group(1))], piece) if spans else piece

    for prompt, answer in split_turns(text):
        for index, piece in enumerate(restore(p) for p in prompt.split(image_token)):
            if index:
                ids += image
                is_answer += [False] * num_image_tokens
            piece_ids = encode_marked(tokenizer, piece, add_special_tokens=True)
            ids += piece_ids
            is_answer += [False] * len(piece_ids)
        if answer is not None:
            if image_token in answer:
                raise ValueError(f"An answer holds {image_token}: {answer[:80]!r}; images go in the question.")
            answer_ids = encode_marked(tokenizer, restore(answer), add_special_tokens=False) + [tokenizer.eos_token_id]
            ids += answer_ids
            is_answer += [True] * len(answer_ids)
    return ids, is_answer


__all__ = [
    "ASSISTANT",
    "ELYSIUM",
    "PROMPT_FORMATS",
    "RELEASED",
    "RELEASED_CHAT_TEMPLATE",
    "RELEASED_SYSTEM",
    "check_prompt_format",
    "encode_released",
    "split_turns",
]
