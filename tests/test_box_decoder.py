"""The constrained box decoder (inference/box_decoder.py) against transformers' `generate`.

- On the shipped model, it gives `generate`'s tokens exactly, clip by clip and view by view, by box and by words.
- On random tiny models with a per-digit (Llama-like) and a merged-digit (byte-level BPE) tokenizer, it gives the
  tokens of `generate` constrained token by token to the same grammar (`prefix_allowed_tokens_fn`): the chunked
  forced runs, verified guesses, unpadded prefill and prefix reuse change nothing.
- A model that wants to leave the format still answers boxes that parse; prefix reuse keeps the logits (1e-5).
"""

from __future__ import annotations

import string

import numpy as np
import pytest
import torch
from conftest import IMAGE_SIZE, T_SELECTOR_TOKENS, tiny_config
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerFast

from elysium.inference.box_decoder import BoxGrammar, ConstrainedBoxDecoder, GrammarError, box_grammar_problem
from elysium.inference.threads import default_threads, use_threads
from elysium.inference.tracker import ElysiumTracker, VideoSource
from elysium.modeling_elysium import ElysiumForConditionalGeneration
from elysium.processing import ElysiumImageProcessor, ElysiumProcessor
from elysium.processing.boxes import format_track, parse_track
from elysium.processing.prompts import RSOT, SOT
from elysium.processing.tokenizer_training import train_tokenizer

CORPUS = [
    f"Frame {k}: [{a},{b},{c},{d}], Frame {k + 1}: [{d},{c},{b},{a}]. Please find the {w} in each frame."
    for k, (a, b, c, d, w) in enumerate(
        zip(range(0, 100), range(7, 107), range(31, 131), range(55, 155), ["red car", "dog", "box", "man"] * 25)
    )
]


def merged_bpe_tokenizer() -> PreTrainedTokenizerFast:
    """A byte-level BPE (GPT-2 style) whose merges join digits: many numbers are one token, others two."""
    tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=700,
        special_tokens=["<unk>", "<s>", "</s>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tokenizer.train_from_iterator(CORPUS * 3 + [string.printable], trainer=trainer)
    bos = tokenizer.token_to_id("<s>")
    tokenizer.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", bos)])
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, bos_token="<s>", eos_token="</s>", unk_token="<unk>", pad_token="<unk>"
    )


def per_digit_tokenizer() -> PreTrainedTokenizerFast:
    return train_tokenizer(CORPUS * 3, vocab_size=400)  # Metaspace + one token a digit, as Llama


def tiny_setup(tokenizer: PreTrainedTokenizerFast, seed: int = 0):
    tokenizer.add_tokens(["<image>"], special_tokens=True)
    processor = ElysiumProcessor(
        ElysiumImageProcessor(size={"height": IMAGE_SIZE, "width": IMAGE_SIZE}),
        tokenizer,
        num_image_tokens=T_SELECTOR_TOKENS,
    )
    torch.manual_seed(seed)
    config = tiny_config(len(tokenizer), tokenizer.convert_tokens_to_ids("<image>"))
    return ElysiumForConditionalGeneration(config).eval(), processor


def encode(model, processor, count: int, seed: int) -> list[torch.Tensor]:
    rng = np.random.default_rng(seed)
    frames = [rng.integers(0, 255, (IMAGE_SIZE, IMAGE_SIZE, 3), dtype=np.uint8) for _ in range(count)]
    with torch.inference_mode():
        pixels = processor.image_processor(frames)["pixel_values"]
        return list(model.get_image_features(pixel_values=pixels).pooler_output)


def batch(processor, model, seed: int = 0):
    """Mixed prompts (SOT boxes of several digit counts, RSOT, 2 and 3 frames): different lengths, left-padded."""
    asks = [
        (SOT, 3, dict(box=[0.05, 0.3, 0.62, 0.9])),
        (SOT, 2, dict(box=[0.4, 0.41, 0.5, 0.52])),
        (RSOT, 3, dict(expression="the red car")),
        (SOT, 3, dict(box=[0.0, 0.0, 0.07, 0.09])),
    ]
    prompts = [processor.build_prompt(task, n, **kw) for task, n, kw in asks]
    counts = [n for _, n, _ in asks]
    return prompts, encode(model, processor, sum(counts), seed), counts


def grammar_generate(model, processor, prompts, features, counts) -> list[list[int]]:
    """The independent reference: `generate`, one token a step, masked to the grammar's allowed tokens."""
    grammars = [BoxGrammar.from_processor(processor, n) for n in counts]
    encoding = processor.tokenize(prompts, return_tensors="pt", padding=True, padding_side="left")
    start = encoding["input_ids"].shape[1]
    pad = processor.tokenizer.pad_token_id

    def allowed(row: int, ids: torch.Tensor) -> list[int]:
        grammar, state = grammars[row], grammars[row].start()
        for token in ids[start:].tolist():
            if state.done:
                return [pad]
            grammar.advance(state, token)
        return grammar.allowed(state) or [pad]

    longest = max(len(g.tokens([0, 0, 99, 99] * n)) for g, n in zip(grammars, counts)) + 8
    with torch.inference_mode():
        output = model.generate(
            **encoding,
            mm_encoder_outputs={"image": _pooled(features)},
            prefix_allowed_tokens_fn=allowed,
            max_new_tokens=longest,
            do_sample=False,
            pad_token_id=pad,
        )
    return [_until_eos(row, processor.tokenizer.eos_token_id) for row in output[:, start:].tolist()]


def _pooled(features):
    from transformers.modeling_outputs import BaseModelOutputWithPooling

    return BaseModelOutputWithPooling(pooler_output=features)


def _until_eos(ids: list[int], eos: int) -> list[int]:
    return ids[: ids.index(eos) + 1] if eos in ids else ids


@pytest.mark.parametrize("style", ["per-digit", "merged"])
def test_grammar_follows_the_tokenizer(style):
    tokenizer = per_digit_tokenizer() if style == "per-digit" else merged_bpe_tokenizer()
    _, processor = tiny_setup(tokenizer)
    grammar = BoxGrammar.from_processor(processor, 2)
    lengths = {len(ids) for ids in grammar.slots[0].tokens.values()}
    if style == "per-digit":
        assert lengths == {1, 2}
        assert all(len(grammar.slots[0].tokens[v]) == len(str(v)) for v in range(100))
    else:  # some two-digit numbers are one token, others two
        assert any(len(grammar.slots[0].tokens[v]) == 1 for v in range(10, 100))
    # The grammar's tokens are the processor's tokens of prompt + answer (re-encoding), for boxes it never probed.
    values = [3, 17, 58, 99, 40, 0, 41, 9]
    boxes = [[v / 100 for v in values[:4]], [v / 100 for v in values[4:]]]
    prompt = processor.build_prompt(SOT, 2, box=[0.1, 0.2, 0.3, 0.4])
    full = processor.build_prompt(SOT, 2, box=[0.1, 0.2, 0.3, 0.4], answer=format_track(boxes))
    prompt_ids = processor.tokenize(prompt, return_tensors=None, padding=False)["input_ids"][0]
    full_ids = processor.tokenize(full, return_tensors=None, padding=False)["input_ids"][0]
    assert full_ids[: len(prompt_ids)] == prompt_ids
    assert full_ids[len(prompt_ids) :] == grammar.tokens(values)


@pytest.mark.parametrize("style", ["per-digit", "merged"])
@pytest.mark.parametrize("reuse_prefix", [True, False])
def test_equals_grammar_constrained_generate_on_random_models(style, reuse_prefix):
    tokenizer = per_digit_tokenizer() if style == "per-digit" else merged_bpe_tokenizer()
    model, processor = tiny_setup(tokenizer, seed=1)
    prompts, features, counts = batch(processor, model, seed=2)
    decoder = ConstrainedBoxDecoder(model, processor, reuse_prefix=reuse_prefix, strict=True)
    texts, ids = decoder.decode(prompts, features, counts)
    assert ids == grammar_generate(model, processor, prompts, features, counts)
    for text, n in zip(texts, counts):  # every answer parses: nothing repaired
        assert parse_track(text, n).num_repaired == 0
    assert decoder.stats["forwards"] < sum(len(i) for i in ids) / len(ids)  # fewer passes than tokens a row


def test_a_model_that_leaves_the_format_still_answers_boxes():
    model, processor = tiny_setup(per_digit_tokenizer(), seed=3)
    word = processor.tokenizer.convert_tokens_to_ids("▁Please")
    head = torch.nn.Linear(model.lm_head.in_features, model.lm_head.out_features, bias=True)
    with torch.no_grad():
        head.weight.copy_(model.lm_head.weight)
        head.bias.zero_()
        head.bias[word] = 50.0  # unconstrained, it says "Please Please ..."
    model.lm_head = head
    prompts, features, counts = batch(processor, model, seed=4)
    decoder = ConstrainedBoxDecoder(model, processor, strict=True)
    texts, _ = decoder.decode(prompts, features, counts)
    for text, n in zip(texts, counts):
        parsed = parse_track(text, n)
        assert parsed.num_repaired == 0 and parsed.extra == 0
        assert all(b[0] < b[2] and b[1] < b[3] for b in parsed.boxes)
    assert decoder.stats["departures"] > 0  # the model's own choice was overruled
    # Not strict, the decoder follows the model where it leaves the format: generate's tokens, to the same budget.
    following = ConstrainedBoxDecoder(model, processor)
    _, ids = following.decode(prompts, features, counts, max_new_tokens=20)
    encoding = processor.tokenize(prompts, return_tensors="pt", padding=True, padding_side="left")
    with torch.inference_mode():
        output = model.generate(
            **encoding,
            mm_encoder_outputs={"image": _pooled(features)},
            max_new_tokens=20,
            do_sample=False,
            pad_token_id=processor.tokenizer.pad_token_id,
        )
    expected = [
        _until_eos(row, processor.tokenizer.eos_token_id)
        for row in output[:, encoding["input_ids"].shape[1] :].tolist()
    ]
    assert ids == expected and all(word in row for row in ids)
    # With no budget given, a row that never says </s> stops at the longest answer's length and a little more.
    _, unbounded = following.decode(prompts, features, counts)
    grammars = [BoxGrammar.from_processor(processor, n) for n in counts]
    assert all(len(row) == grammar.longest() + 4 for row, grammar in zip(unbounded, grammars))


@pytest.mark.parametrize("style", ["per-digit", "merged"])
def test_guesses_from_the_last_answer_change_no_token(style):
    """Rows named by `keys` take their last answer's first box as the guess: kept per key, used on the next call,
    dropped by `forget`; the answers stay those of grammar-constrained `generate`. `</s>` is never fed."""
    tokenizer = per_digit_tokenizer() if style == "per-digit" else merged_bpe_tokenizer()
    model, processor = tiny_setup(tokenizer, seed=10)
    prompts, features, counts = batch(processor, model, seed=11)
    expected = grammar_generate(model, processor, prompts, features, counts)
    decoder = ConstrainedBoxDecoder(model, processor, strict=True)
    fed: list[list[int]] = []
    step = decoder._step
    decoder._step = lambda cache, mask, chunks: fed.extend(chunks) or step(cache, mask, chunks)
    keys = [("video", view) for view in range(len(prompts))]
    _, first = decoder.decode(prompts, features, counts, keys=keys)
    remembered = dict(decoder._first_boxes)
    grammars = [BoxGrammar.from_processor(processor, n) for n in counts]
    for key, ids, grammar in zip(keys, first, grammars):  # the first box of each answer, as values
        state = grammar.start()
        for token in ids:
            if not state.done:
                grammar.advance(state, token)
        assert remembered[key] == state.values[:4]
    hints = []
    guess = BoxGrammar.guess
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(BoxGrammar, "guess", lambda self, state, box: hints.append(box) or guess(self, state, box))
        _, again = decoder.decode(prompts, features, counts, keys=keys)
    assert first == again == expected
    assert any(box in remembered.values() for box in hints)  # the second call guessed from the first's answers
    assert all(processor.tokenizer.eos_token_id not in chunk for chunk in fed)
    decoder.forget()
    assert decoder._first_boxes == {}


def test_prefix_reuse_keeps_the_logits():
    model, processor = tiny_setup(per_digit_tokenizer(), seed=5)
    prompts, features, counts = batch(processor, model, seed=6)
    encoding = processor.tokenize(prompts, return_tensors="pt", padding=True, padding_side="left")
    ids, mask = encoding["input_ids"], encoding["attention_mask"]
    chunks = [BoxGrammar.from_processor(processor, n).literals[0] for n in counts]  # "Frame 1: [" after each
    outputs = {}
    for reuse in (True, False):
        decoder = ConstrainedBoxDecoder(model, processor, reuse_prefix=reuse)
        with torch.inference_mode():
            outputs[reuse] = decoder._prefill(ids, mask, features, chunks)
    shared = ConstrainedBoxDecoder(model, processor).shared_prefix(ids, mask)
    assert len(shared) >= 4  # <s>, the system line, USER:, Frame 1:
    for with_reuse, without in zip(outputs[True][2], outputs[False][2]):
        torch.testing.assert_close(with_reuse, without, atol=1e-5, rtol=0)
    for row_with, row_without in zip(outputs[True][0], outputs[False][0]):  # the cached keys and values too
        for (k1, v1), (k2, v2) in zip(row_with, row_without):
            torch.testing.assert_close(k1, k2, atol=1e-5, rtol=0)
            torch.testing.assert_close(v1, v2, atol=1e-5, rtol=0)


def test_a_tokenizer_that_joins_numbers_and_text_falls_back_to_generate():
    tokenizer = Tokenizer(models.WordLevel({"<unk>": 0, "<s>": 1, "</s>": 2}, unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()  # "[34,40,51,67]," is one word
    wrapped = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, bos_token="<s>", eos_token="</s>", unk_token="<unk>", pad_token="<unk>"
    )
    model, processor = tiny_setup(wrapped)
    assert box_grammar_problem(processor) is not None
    assert ElysiumTracker(model, processor, search_context=None).decoder == "generate"
    with pytest.raises(ValueError, match="decoder='constrained'"):
        ElysiumTracker(model, processor, search_context=None, decoder="constrained")
    with pytest.raises(GrammarError):
        BoxGrammar.from_processor(processor, 2)


@pytest.fixture(scope="module")
def shipped():
    from elysium.inference.demo_cli import load_demo
    from elysium.inference.loading import load_model_and_processor
    from elysium.processing.video import iter_video

    model, processor = load_model_and_processor(None, "cpu")
    demo = load_demo()
    frames = [item.original for item in iter_video(demo["path"], size=(1, 1), keep_original=True)]
    return model, processor, demo, frames


def test_equals_generate_on_the_shipped_model(shipped):
    """Every clip and view of the demo tracked by box and by words: the constrained decoder's tokens are
    `generate`'s, and its tracks are the generate tracker's."""
    model, processor, demo, frames = shipped
    tracker = ElysiumTracker(model, processor, decoder="generate")
    assert ElysiumTracker(model, processor).decoder == "constrained"  # the default for a model in the format
    decoder = ConstrainedBoxDecoder(model, processor, reuse_prefix=True)  # the tracker's default (off) runs below
    eos = processor.tokenizer.eos_token_id
    compared = []
    generate_ids = tracker._generate_ids

    def both(prompts, features, budget):
        expected = [_until_eos(row, eos) for row in generate_ids(prompts, features, budget).tolist()]
        _, ids = decoder.decode(prompts, features, [p.count(processor.image_token) for p in prompts])
        compared.extend(zip(ids, expected))
        return torch.tensor([row + [eos] * (budget - len(row)) for row in expected])

    tracker._generate_ids = both
    by_generate = [
        tracker.track_batch([VideoSource.from_frames(frames[:13])], boxes=[demo["box"]])[0],
        tracker.track_batch([VideoSource.from_frames(frames[:13])], expressions=[demo["expression"]])[0],
    ]
    assert len(compared) >= 30  # clips x views
    assert [got for got, _ in compared] == [want for _, want in compared]
    assert decoder.stats["departures"] == 0
    constrained = ElysiumTracker(model, processor)
    by_constrained = [
        constrained.track_batch([VideoSource.from_frames(frames[:13])], boxes=[demo["box"]])[0],
        constrained.track_batch([VideoSource.from_frames(frames[:13])], expressions=[demo["expression"]])[0],
    ]
    for a, b in zip(by_generate, by_constrained):
        assert a.boxes == b.boxes and b.num_repaired == 0
    assert len(constrained._box_decoder._first_boxes) == constrained.views  # each view's last answer, kept as a guess


def test_thread_policy():
    assert default_threads(cores=2, load=0.0) == 2
    assert default_threads(cores=2, load=1.2) == 1
    assert default_threads(cores=2, load=9.0) == 1
    assert default_threads(cores=16, load=3.0) == 13
    before = torch.get_num_threads()
    try:
        assert use_threads(1) == 1 and torch.get_num_threads() == 1
        with pytest.raises(ValueError):
            use_threads(0)
    finally:
        torch.set_num_threads(before)
