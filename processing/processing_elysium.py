"""ElysiumProcessor: frames and text in the released model's prompt format, and generated text back to boxes.

Prompt (Vicuna v1.1): the system line, `USER: `, then the frames as
`Frame 1: <image>, Frame 2: <image>, ..., Frame n: <image>\n` (a single image is `<image>\n`, no timestamp), the
question, and `ASSISTANT:`; an answer ends with `</s>`. Each `<image>` is expanded to `num_image_tokens` tokens,
the T-Selector's count, which the model checks before it scatters the frame features in.

`prompt_format` (saved in processor_config.json) chooses how: `"elysium"` (default; the models this package trains)
writes ` ASSISTANT: ` and tokenizes the text once; `"released"` (set by `elysium convert-released`) gives exactly the
released Elysium-7B's ids: its text, its template wording and its piecewise encoding (released_format.py).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from transformers import AutoConfig, AutoTokenizer
from transformers.feature_extraction_utils import BatchFeature
from transformers.processing_utils import ProcessorMixin

from .boxes import ParsedTrack, denormalize_box, format_track, normalize_box, parse_box, parse_track
from .image_processing_elysium import ElysiumImageProcessor
from .plain_text import PLAIN_END, PLAIN_RE, PLAIN_START, encode_marked, outside_marks
from .prompts import task_prompt
from .released_format import (
    ANSWER_TEXT,
    ASSISTANT,
    ELYSIUM,
    FRAMES_THEN_TEXT,
    MESSAGE_ITEMS,
    RELEASED,
    RELEASED_CHAT_TEMPLATE,
    check_prompt_format,
    encode_released,
)

IMAGE_TOKEN = "<image>"
SYSTEM_PROMPT = (
    "A chat between a curious user and an artificial intelligence assistant. "
    "The assistant gives helpful, detailed, and polite answers to the user's questions."
)


# Vicuna v1.1 as FastChat writes it: "{system} USER: {q} ASSISTANT: {a}</s>USER: {q} ASSISTANT:".
# Several images in one message are frames of a video and get "Frame i:" timestamps.
def chat_template(system_prompt: str = SYSTEM_PROMPT) -> str:
    """The Jinja chat template with `system_prompt` as its first line; `""` drops the line (the conversation starts
    at `USER: `). Models trained from scratch use a short or empty one: the released 29-word line is ~85 tokens of
    each sample under a small tokenizer, and those tokens teach nothing (training/configs/tiny.yaml)."""
    system = system_prompt.replace("\\", "\\\\").replace("'", "\\'")
    first_user = " USER: " if system_prompt else "USER: "
    return (
        "{{- '" + system + "' -}}"
        "{%- for message in messages -%}" + MESSAGE_ITEMS + "{%- if message['role'] == 'user' -%}"
        "{{- '"
        + first_user
        + "' if loop.first else 'USER: ' -}}"
        + FRAMES_THEN_TEXT
        + "{%- elif message['role'] == 'assistant' -%}"
        "{{- ' ASSISTANT: ' -}}" + ANSWER_TEXT + "{{- '</s>' -}}"
        "{%- endif -%}"
        "{%- endfor -%}"
        "{%- if add_generation_prompt -%}{{- ' ASSISTANT:' -}}{%- endif -%}"
    )


CHAT_TEMPLATE = chat_template()

# User text (expressions, questions, answers) is never parsed for special tokens: `build_prompt` wraps each
# special-token string in it ("<image>", "</s>", ...) between these two Unicode noncharacters (reserved for a
# program's internal use, so no real text holds them), and `tokenize` encodes what lies between them as plain
# text. Prompts without user special-token strings hold no marks and are tokenized exactly as before.


class ElysiumProcessor(ProcessorMixin):
    """Wraps an [`ElysiumImageProcessor`] and a Llama tokenizer into one processor for Elysium."""

    def __init__(
        self,
        image_processor=None,
        tokenizer=None,
        chat_template: str | None = None,
        num_image_tokens: int = 108,
        image_token: str = IMAGE_TOKEN,
        prompt_format: str = ELYSIUM,
        **kwargs: Any,
    ):
        self.num_image_tokens = num_image_tokens
        self.image_token = image_token
        self.prompt_format = check_prompt_format(prompt_format)
        default_template = RELEASED_CHAT_TEMPLATE if prompt_format == RELEASED else CHAT_TEMPLATE
        super().__init__(image_processor, tokenizer, chat_template=chat_template or default_template)
        self.image_token_id = self.tokenizer.convert_tokens_to_ids(image_token)
        if self.image_token_id is None or self.image_token_id == self.tokenizer.unk_token_id:
            raise ValueError(
                f"The tokenizer has no {image_token!r} token; add it with "
                f"`tokenizer.add_tokens([{image_token!r}], special_tokens=True)` and resize the model's embeddings."
            )

    @classmethod
    def from_vision_text_pretrained(
        cls,
        vision_model_name_or_path: str,
        text_model_name_or_path: str,
        t_selector_tokens: int = 108,
        trust_remote_code: bool = False,
    ) -> ElysiumProcessor:
        """The processor matching `ElysiumForConditionalGeneration.from_vision_text_pretrained` on the same paths."""
        vision_config = AutoConfig.from_pretrained(vision_model_name_or_path, trust_remote_code=trust_remote_code)
        vision_config = getattr(vision_config, "vision_config", vision_config)
        size = {"height": vision_config.image_size, "width": vision_config.image_size}
        tokenizer = AutoTokenizer.from_pretrained(
            text_model_name_or_path, padding_side="left", trust_remote_code=trust_remote_code
        )
        tokenizer.add_tokens([IMAGE_TOKEN], special_tokens=True)
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.unk_token or tokenizer.eos_token
        return cls(ElysiumImageProcessor(size=size), tokenizer, num_image_tokens=t_selector_tokens)

    def __call__(
        self,
        text: str | list[str] | None = None,
        images: Any = None,
        return_tensors: str | None = "pt",
        padding: bool | str = True,
        **kwargs: Any,
    ) -> BatchFeature:
        """Tokenize `text` (one `<image>` per frame) and turn `images` into `pixel_values`.

        `images` is a list of frames for one text, or one list of frames per text; frames of all texts are
        batched along the first axis of `pixel_values` in order.
        """
        if text is None:
            raise ValueError("Give the prompt text; build it with `processor.build_prompt(...)` or the chat template.")
        texts = [text] if isinstance(text, str) else list(text)
        frames = self._flatten_frames(images, len(texts))
        placeholders = [PLAIN_RE.sub("", t).count(self.image_token) for t in texts]
        if sum(placeholders) != len(frames):
            raise ValueError(
                f"The text has {sum(placeholders)} {self.image_token} placeholders (per text: {placeholders}) but "
                f"{len(frames)} frames were given; write one {self.image_token} per frame."
            )
        data = dict(self.tokenize(texts, return_tensors=return_tensors, padding=padding, **kwargs))
        if frames:
            data["pixel_values"] = self.image_processor(frames)["pixel_values"]
        return BatchFeature(data=data, tensor_type=return_tensors)

    def tokenize(self, text: str | list[str], return_tensors: str | None = "pt", padding: bool | str = True, **kwargs):
        """Expand each `<image>` to `num_image_tokens` tokens and tokenize, without frames.

        For callers that encode frames themselves (the tracker caches each frame's features across clips).
        """
        texts = [text] if isinstance(text, str) else list(text)
        if self.prompt_format == RELEASED:
            padding_side = kwargs.pop("padding_side", None)
            if kwargs:
                raise ValueError(f"prompt_format='released' encodes piecewise; {sorted(kwargs)} are not supported.")
            rows = [{"input_ids": encode_released(self.tokenizer, t, *self._image_args)[0]} for t in texts]
            encoding = self.tokenizer.pad(
                rows, padding=padding, return_tensors=return_tensors, padding_side=padding_side
            )
        elif any(PLAIN_START in t for t in texts):  # user text: encoded piece by piece (see plain_text.py)
            padding_side = kwargs.pop("padding_side", None)
            rows = [{"input_ids": encode_marked(self.tokenizer, self.expand_image_tokens(t))} for t in texts]
            encoding = self.tokenizer.pad(
                rows, padding=padding, return_tensors=return_tensors, padding_side=padding_side
            )
        else:
            expanded = [self.expand_image_tokens(t) for t in texts]
            encoding = self.tokenizer(expanded, return_tensors=return_tensors, padding=padding, **kwargs)
        limit = self.tokenizer.model_max_length
        longest = max(len(ids) for ids in encoding["input_ids"])
        if limit and limit < 10**8 and longest > limit:
            frames = max(PLAIN_RE.sub("", t).count(self.image_token) for t in texts)
            raise ValueError(
                f"The prompt is {longest} tokens but the model holds {limit}: {frames} frames at "
                f"{self.num_image_tokens} tokens each do not fit. Give fewer frames or track the video in clips."
            )
        return encoding

    def expand_image_tokens(self, text: str) -> str:
        """Each `<image>` of the prompt (not of the user's marked text) as `num_image_tokens` image tokens."""
        return outside_marks(
            text, lambda piece: piece.replace(self.image_token, self.image_token * self.num_image_tokens)
        )

    def plain_text(self, text: str | None) -> str | None:
        """`text` from a user, with each special-token string marked to be encoded as plain text (see PLAIN_START)."""
        if text is None:
            return None
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:  # undecodable bytes reach Python as lone surrogates; no tokenizer encodes them
            raise ValueError(f"{text!r} is not valid UTF-8 text; give the words as UTF-8.") from None
        text = text.replace(PLAIN_START, "").replace(PLAIN_END, "")
        specials = sorted(
            {t for t in [*self.tokenizer.all_special_tokens, self.image_token, *self._added_special_tokens()] if t}
            # the released encoding cuts a conversation at its `ASSISTANT:`s: a user's is text too
            | ({ASSISTANT} if self.prompt_format == RELEASED else set()),
            key=len,
            reverse=True,
        )
        if not any(token in text for token in specials):
            return text
        pattern = "|".join(re.escape(token) for token in specials)
        return re.sub(pattern, lambda m: f"{PLAIN_START}{m.group(0)}{PLAIN_END}", text)

    def _added_special_tokens(self) -> list[str]:
        decoder = getattr(self.tokenizer, "added_tokens_decoder", {}) or {}
        return [str(token) for token in decoder.values() if getattr(token, "special", False)]

    def encode_with_labels(self, text: str) -> tuple[list[int], list[int]]:
        """Released format: `(input_ids, labels)` of one conversation, labels -100 except on the answers and
        their `</s>`, with each `<image>` expanded. The training samples use it for a released-format fine-tune."""
        if self.prompt_format != RELEASED:
            raise ValueError(
                "encode_with_labels is the released format's; this processor uses prompt_format "
                f"{self.prompt_format!r} (its text is tokenized in one go)."
            )
        ids, is_answer = encode_released(self.tokenizer, text, *self._image_args)
        return ids, [token if answer else -100 for token, answer in zip(ids, is_answer)]

    @property
    def _image_args(self) -> tuple[str, int, int]:
        return self.image_token, self.image_token_id, self.num_image_tokens

    def _flatten_frames(self, images: Any, num_texts: int) -> list[Any]:
        if images is None:
            return []
        if not isinstance(images, (list, tuple)):
            images = [images]
        if num_texts > 1 or (images and isinstance(images[0], (list, tuple))):
            nested = [list(sample) if isinstance(sample, (list, tuple)) else [sample] for sample in images]
            return [frame for sample in nested for frame in sample]
        return list(images)

    def build_prompt(
        self,
        task: str,
        num_frames: int,
        *,
        box: Sequence[float] | None = None,
        expression: str | None = None,
        question: str | None = None,
        answer: str | None = None,
        paraphrase: int | None = 0,
        rng: Any = None,
    ) -> str:
        """The prompt for `task` over `num_frames` frames (`box` normalized); with `answer`, a training text."""
        if num_frames < 1:
            raise ValueError("Give at least one frame.")
        question_text = task_prompt(
            task,
            box=box,
            expression=self.plain_text(expression),
            question=self.plain_text(question),
            paraphrase=paraphrase,
            rng=rng,
            released=self.prompt_format == RELEASED,
        )
        content = [{"type": "image"} for _ in range(num_frames)] + [{"type": "text", "text": question_text}]
        messages = [{"role": "user", "content": content}]
        if answer is not None:
            messages.append({"role": "assistant", "content": [{"type": "text", "text": self.plain_text(answer)}]})
        return self.apply_chat_template(messages, tokenize=False, add_generation_prompt=answer is None)

    @staticmethod
    def format_track_answer(boxes: Sequence[Sequence[float]]) -> str:
        """Normalized boxes, one a frame, as the released answer text."""
        return format_track(boxes)

    def post_process_tracking(
        self,
        texts: str | Sequence[str],
        frame_sizes: Sequence[int] | Sequence[Sequence[int]],
        num_frames: int | Sequence[int] | None = None,
        initial_boxes: Sequence[Sequence[float] | None] | None = None,
    ) -> list[dict[str, Any]]:
        """Generated texts -> per-frame pixel boxes `[x1,y1,x2,y2]` with repair counts; never raises on bad text.

        `frame_sizes` is `(w, h)` per text (or one for all); `num_frames` how many boxes each text should hold
        (default: the highest `Frame i` it names); `initial_boxes` (pixels) seed frames missing before any box.
        """
        texts = [texts] if isinstance(texts, str) else list(texts)
        sizes = [frame_sizes] * len(texts) if isinstance(frame_sizes[0], (int, float)) else list(frame_sizes)
        counts = num_frames if isinstance(num_frames, (list, tuple)) else [num_frames] * len(texts)
        seeds = list(initial_boxes) if initial_boxes is not None else [None] * len(texts)
        results = []
        for text, size, count, seed in zip(texts, sizes, counts, seeds):
            size = (int(size[0]), int(size[1]))
            parsed: ParsedTrack = parse_track(text, count, normalize_box(seed, size) if seed is not None else None)
            boxes = [denormalize_box(b, size) if b is not None else None for b in parsed.boxes]
            results.append(
                {
                    "boxes": boxes,
                    "repaired": parsed.repaired,
                    "num_repaired": parsed.num_repaired,
                    "extra": parsed.extra,
                }
            )
        return results

    def post_process_grounding(
        self, texts: str | Sequence[str], image_sizes: Sequence[int] | Sequence[Sequence[int]]
    ) -> list[list[float] | None]:
        """REC answers -> one pixel box per text, `None` where no well-formed box was generated."""
        texts = [texts] if isinstance(texts, str) else list(texts)
        sizes = [image_sizes] * len(texts) if isinstance(image_sizes[0], (int, float)) else list(image_sizes)
        boxes = []
        for text, size in zip(texts, sizes):
            box = parse_box(text)
            boxes.append(denormalize_box(box, (int(size[0]), int(size[1]))) if box is not None else None)
        return boxes

    @property
    def model_input_names(self) -> list[str]:
        return ["input_ids", "attention_mask", "pixel_values"]


__all__ = ["ElysiumProcessor", "CHAT_TEMPLATE", "chat_template", "SYSTEM_PROMPT", "IMAGE_TOKEN"]
