"""A grammar-constrained greedy decoder for tracking answers: only the tokens the model must choose cost a step.

A tracking answer is `format_track(boxes)` (processing/boxes.py) followed by `</s>`: between the numbers everything
is fixed (`Frame k: [`, commas, `]`, `].`, `</s>`), and each number is 0..MAX_BIN. `BoxGrammar` turns that into a
token-level grammar for one tokenizer, derived by tokenizing probe answers in the context of a real prompt (built by
the processor) and checked against the processor's own tokenization, so it holds for digits split one per token (the
tiny model, Llama) and for merged multi-digit tokens (a byte-level BPE) alike; no token id is written here.

`ConstrainedBoxDecoder` decodes a batch greedily with it, a forward pass feeding each row a chunk (up to
`lookahead` tokens): the token chosen last, the forced run after it and guesses past it, verified against the
model's choice position by position and kept up to the first miss (missed tokens stay in the cache, masked out):
- the choice is the model's argmax where the grammar allows it, so it is the token `generate` picks;
  `stats["departures"]` counts positions where the model's argmax was not allowed (it left the format);
- `strict=True` keeps the grammar there too: boxes keep x1 < x2 and y1 < y2 and every answer parses (`parse_track`
  repairs nothing). By default the row follows the model from its departure on, token by token, to `</s>` or the
  budget, so every answer is the one greedy `generate` gives: the shipped model leaves the format on a few held-out
  clips (five numbers in a box, a box ending early, x1 = x2), and forcing the grammar there moved its held-out SOT
  AUC by -0.08 points;
- guesses, best first: the model's own choice at that place of the answer where an earlier pass saw it past a miss
  (as in Jacobi decoding: made after one wrong digit, it is still mostly right); the box before, repeated (frame 1:
  the first box this row's last answer gave, with `keys`, else the prompt's box), or where the number's first token
  already differs, the nearest number that starts so. On the demo video they took the tiny model from 636 passes to
  337 for the same tokens;
- `</s>` is never fed (the logits before it decide), and a chunk that nearly reaches the answer's end runs to it;
- the prefill runs the rows unpadded, their first chunks evened so they are one batch with SDPA's causal kernel;
- the prompt's part before the first frame (system line, `USER: `, `Frame 1: `) is the same for every clip: with
  `reuse_prefix` its KV cache is computed once and copied into each batch. Off by default: the rest of the prompt
  then needs an explicit causal mask (its queries start after the cached keys), which costs SDPA its causal kernel;
  on the CPU a batch-1 prefill of the tiny model's 480-token prompt took 18.0 ms with its 7-token prefix reused
  against 15.9 ms without (min of 25). It pays where the shared part is long against the rest.

transformers' `generate` has no hook for this: a `LogitsProcessor` can mask tokens but cannot feed a forced run as a
chunk, so the loop is written here on the model's forward and a `DynamicCache`, with the attention mask and position
ids `generate` would use (positions count the real tokens of a row, padding and missed guesses are masked), so
greedy choices agree.
"""

from __future__ import annotations

import bisect
import random
import time
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from transformers import DynamicCache
from transformers.modeling_outputs import BaseModelOutputWithPooling

from elysium.processing.boxes import MAX_BIN, parse_box
from elysium.processing.prompts import SOT

__all__ = ["BoxGrammar", "ConstrainedBoxDecoder", "GrammarError", "box_grammar_problem"]

# Per box the codec writes x1, y1, x2, y2 and a usable box has x1 < x2 and y1 < y2 (`boxes._is_usable`): the
# coordinate each one must exceed, by position in the box.
_MUST_EXCEED = {2: 0, 3: 1}


class GrammarError(ValueError):
    """The tokenizer writes box answers in a way this grammar cannot follow token by token."""


@dataclass
class _Node:
    """A node of a number slot's token trie: its children by token, the value it completes (if any) and the values
    reachable below it."""

    children: dict[int, _Node] = field(default_factory=dict)
    value: int | None = None
    reachable: set[int] = field(default_factory=set)
    ordered: list[int] = field(default_factory=list)  # `reachable`, sorted (set once the trie is built)
    allowed: dict[tuple[int, int], list[int]] = field(default_factory=dict)  # `BoxGrammar.allowed` by value range

    def reaches(self, low: int, high: int) -> bool:
        """Whether a value in `[low, high]` lies below this node."""
        index = bisect.bisect_left(self.ordered, low)
        return index < len(self.ordered) and self.ordered[index] <= high

    def nearest(self, value: int, low: int, high: int) -> int | None:
        """The value below this node in `[low, high]` nearest to `value` (the smaller on a tie), or None."""
        inside = self.ordered[bisect.bisect_left(self.ordered, low) : bisect.bisect_right(self.ordered, high)]
        index = bisect.bisect_left(inside, value)
        near = inside[max(0, index - 1) : index + 1]
        return min(near, key=lambda v: (abs(v - value), v)) if near else None


@dataclass
class _Slot:
    """A number of the answer: its coordinate in the box and the trie of each value's tokens in this place."""

    coordinate: int
    root: _Node
    tokens: dict[int, list[int]]


class BoxGrammar:
    """The token-level grammar of a tracking answer for `num_frames` frames: literals (fixed token runs) alternating
    with number slots. Build it with `from_processor`; raises `GrammarError` where the tokenizer does not fit."""

    def __init__(self, literals: list[list[int]], slots: list[_Slot], eos_token_id: int):
        self.literals = literals  # len(slots) + 1 runs; the last one ends with </s>
        self.slots = slots
        self.eos_token_id = eos_token_id

    # -- derivation -------------------------------------------------------------------------------------------

    @classmethod
    def from_processor(cls, processor: Any, num_frames: int, checks: int = 24, seed: int = 0) -> BoxGrammar:
        tokenizer = processor.tokenizer
        eos = tokenizer.eos_token_id
        if eos is None:
            raise GrammarError("the tokenizer has no end-of-sequence token, so an answer has no end")
        context_box = [0.25, 0.25, 0.5, 0.5]
        prompt = processor.build_prompt(SOT, num_frames, box=context_box)

        def answer(values: Sequence[int]) -> str:  # bins through the codec, as the tracker reads them back
            boxes = [[values[4 * f + c] / 100 for c in range(4)] for f in range(num_frames)]
            return processor.format_track_answer(boxes)

        def continuation(values: Sequence[int]) -> tuple[str, str]:
            text = answer(values)
            full = processor.build_prompt(SOT, num_frames, box=context_box, answer=text)
            if not full.startswith(prompt) or text not in full[len(prompt) :]:
                raise GrammarError("the training text of an answer does not continue the prompt")
            return full[len(prompt) :], text

        # Where the numbers are: the characters that differ between an all-0 and an all-1 answer.
        count = 4 * num_frames
        zeros, ones = answer([0] * count), answer([1] * count)
        if len(zeros) != len(ones):
            raise GrammarError("the codec writes 0 and 1 with different widths")
        places = [i for i, (a, b) in enumerate(zip(zeros, ones)) if a != b]
        if len(places) != count:
            raise GrammarError(f"found {len(places)} numbers in an answer of {num_frames} boxes, not {count}")
        cont, text = continuation([0] * count)
        start = cont.index(text)
        cuts = [start + p for p in places]  # one character each in the all-0 continuation
        pieces = [cont[: cuts[0]]] + [cont[a + 1 : b] for a, b in zip(cuts, cuts[1:])] + [cont[cuts[-1] + 1 :]]

        prompt_ids = tokenizer(prompt)["input_ids"]
        literals: list[list[int]] | None = None
        tables: list[dict[int, list[int]]] = [{} for _ in range(count)]
        for value in range(MAX_BIN + 1):
            cont, _ = continuation([value] * count)
            encoded = tokenizer(prompt + cont, return_offsets_mapping=True)
            ids, offsets = encoded["input_ids"], encoded["offset_mapping"]
            if ids[: len(prompt_ids)] != prompt_ids:
                raise GrammarError("the prompt's tokens change when the answer follows it")
            # Character spans of the numbers in this continuation, then each token assigned to a literal or a number.
            spans, position = [], 0
            for piece in pieces[:-1]:
                position += len(piece)
                spans.append((position, position + len(str(value))))
                position += len(str(value))
            base = len(prompt)
            runs: list[list[int]] = [[] for _ in range(2 * count + 1)]  # literal, number, literal, ..., literal
            for token, (a, b) in zip(ids[len(prompt_ids) :], offsets[len(prompt_ids) :]):
                a, b = a - base, b - base
                part = 2 * sum(1 for s, _ in spans if a >= s)  # literals before and numbers started before
                inside = part > 0 and spans[part // 2 - 1][0] <= a and b <= spans[part // 2 - 1][1] and b > a
                straddles = any(s < b and a < e and not (s <= a and b <= e) for s, e in spans)
                if straddles:
                    raise GrammarError(f"a token joins a number with the text beside it (value {value})")
                runs[part - 1 if inside else part].append(token)
            if literals is None:
                literals = runs[0::2]
            elif runs[0::2] != literals:
                raise GrammarError("the fixed text between numbers tokenizes differently for different numbers")
            for slot in range(count):
                if not runs[2 * slot + 1]:
                    raise GrammarError(f"the number {value} has no tokens of its own")
                tables[slot][value] = runs[2 * slot + 1]
        assert literals is not None
        if not literals[-1] or literals[-1][-1] != eos:
            raise GrammarError("the answer's tokens do not end with the end-of-sequence token")
        if any(not run for run in literals[1:-1]):
            raise GrammarError("two numbers follow each other with no fixed text between them")
        slots = [_Slot(slot % 4, _trie(tables[slot]), tables[slot]) for slot in range(count)]
        for slot, follow in zip(slots, literals[1:]):
            if _trie_tokens(slot.root) & {follow[0]}:
                raise GrammarError("a token both continues a number and ends it")
        grammar = cls(literals, slots, eos)
        grammar._check(processor, prompt, answer, random.Random(seed), checks)
        return grammar

    def _check(self, processor: Any, prompt: str, answer: Any, rng: random.Random, checks: int) -> None:
        """Random valid answers: the grammar's tokens must be the processor's tokens of prompt + answer."""
        prompt_ids = processor.tokenize(prompt, return_tensors=None, padding=False)["input_ids"][0]
        context_box = [0.25, 0.25, 0.5, 0.5]
        for _ in range(checks):
            values = []
            for _ in range(len(self.slots) // 4):
                x1, y1 = rng.randint(0, MAX_BIN - 1), rng.randint(0, MAX_BIN - 1)
                values += [x1, y1, rng.randint(x1 + 1, MAX_BIN), rng.randint(y1 + 1, MAX_BIN)]
            full = processor.build_prompt(SOT, len(self.slots) // 4, box=context_box, answer=answer(values))
            ids = processor.tokenize(full, return_tensors=None, padding=False)["input_ids"][0]
            if ids[: len(prompt_ids)] != prompt_ids or ids[len(prompt_ids) :] != self.tokens(values):
                raise GrammarError(f"the grammar's tokens for {values} differ from the tokenizer's")

    def longest(self) -> int:
        """Tokens in the longest answer."""
        numbers = sum(max(len(ids) for ids in slot.tokens.values()) for slot in self.slots)
        return numbers + sum(len(literal) for literal in self.literals)

    def tokens(self, values: Sequence[int]) -> list[int]:
        """The answer's token ids for the numbers `values` (4 a frame)."""
        ids = list(self.literals[0])
        for slot, value, literal in zip(self.slots, values, self.literals[1:]):
            ids += slot.tokens[value] + literal
        return ids

    # -- decoding ---------------------------------------------------------------------------------------------

    def start(self) -> _State:
        return _State()

    def allowed(self, state: _State) -> list[int]:
        """The tokens that may come next in `state` ([] once the answer ended)."""
        if state.done:
            return []
        if state.node is None:  # inside a literal
            return [self.literals[state.item][state.offset]]
        node = state.node
        low, high = self._range(self.slots[state.item], state.values)
        tokens = node.allowed.get((low, high))
        if tokens is None:  # a node belongs to one slot, so its allowed tokens hang on the range alone
            tokens = [t for t, child in node.children.items() if child.reaches(low, high)]
            if node.value is not None and low <= node.value <= high:
                tokens.append(self.literals[state.item + 1][0])
            node.allowed[(low, high)] = tokens
        return tokens

    def advance(self, state: _State, token: int) -> None:
        """`state` after `token` (one of `allowed(state)`)."""
        if state.node is None:
            state.offset += 1
            if state.offset == len(self.literals[state.item]):
                if state.item == len(self.slots):
                    state.done = True
                else:
                    state.node, state.offset = self.slots[state.item].root, 0
            return
        child = state.node.children.get(token)
        if child is not None:
            state.node = child
            state.spelled.append(token)
            return
        state.values.append(state.node.value)  # the number ended: its literal's first token
        state.spelled = []
        state.item += 1
        state.node, state.offset = None, 1
        if state.offset == len(self.literals[state.item]):
            state.node, state.offset = self.slots[state.item].root, 0

    def key(self, state: _State) -> tuple[int, tuple[int, ...]] | None:
        """Where `state` is a choice of the model: its number slot and the tokens of that number so far (None in a
        literal, where nothing is chosen)."""
        if state.node is None or state.done or state.free:
            return None
        return state.item, tuple(state.spelled)

    def guess(self, state: _State, first_box: Sequence[int] | None) -> int | None:
        """A guess at the next token where the model has a choice: towards the number the box before gave in this
        place (for frame 1, `first_box`: the box the prompt gives), or None where there is no guess. Where the
        number's tokens so far already differ from that number's, the guess is the nearest number that starts so
        (the box before was 19 and the model wrote "2": 20), as boxes move a little from frame to frame."""
        if state.node is None or state.done:
            return None
        slot_index = state.item
        if slot_index >= 4:
            value = state.values[slot_index - 4]
        elif first_box is not None:
            value = first_box[slot_index]
        else:
            return None
        slot = self.slots[slot_index]
        value = state.node.nearest(value, *self._range(slot, state.values))
        if value is None:
            return None
        spelling = slot.tokens[value]
        return spelling[len(state.spelled)] if len(spelling) > len(state.spelled) else self.literals[slot_index + 1][0]

    def _range(self, slot: _Slot, values: list[int]) -> tuple[int, int]:
        if slot.coordinate in _MUST_EXCEED:
            box_start = len(values) - slot.coordinate
            return values[box_start + _MUST_EXCEED[slot.coordinate]] + 1, MAX_BIN
        return 0, MAX_BIN - 1


@dataclass
class _State:
    item: int = 0  # literal index (node None) or slot index (node set)
    offset: int = 0
    node: _Node | None = None
    values: list[int] = field(default_factory=list)
    done: bool = False
    spelled: list[int] = field(default_factory=list)  # the current number's tokens so far
    free: bool = False  # the model left the grammar and is followed token by token (not `strict`)

    def copy(self) -> _State:
        return _State(self.item, self.offset, self.node, list(self.values), self.done, list(self.spelled), self.free)


def _trie(table: dict[int, list[int]]) -> _Node:
    root = _Node()
    for value, ids in table.items():
        node = root
        node.reachable.add(value)
        for token in ids:
            node = node.children.setdefault(token, _Node())
            node.reachable.add(value)
        if node.value is not None:
            raise GrammarError(f"the numbers {node.value} and {value} have the same tokens")
        node.value = value
    _order(root)
    return root


def _order(node: _Node) -> None:
    node.ordered = sorted(node.reachable)
    for child in node.children.values():
        _order(child)


def _trie_tokens(node: _Node) -> set[int]:
    found = set(node.children)
    for child in node.children.values():
        found |= _trie_tokens(child)
    return found


def box_grammar_problem(processor: Any, num_frames: int = 2) -> str | None:
    """Why tracking answers cannot be decoded with `BoxGrammar` for this processor, or None where they can."""
    try:
        BoxGrammar.from_processor(processor, num_frames, checks=4)
    except GrammarError as error:
        return str(error)
    return None


class ConstrainedBoxDecoder:
    """Greedy tracking answers under `BoxGrammar`, batched, on the model's forward with a `DynamicCache`.

    `decode(prompts, features, num_frames)` takes what the tracker gives `generate` (prompts with one `<image>` a
    frame, the frames' encoded features in prompt order) and the number of boxes each answer holds.
    """

    def __init__(
        self, model: Any, processor: Any, reuse_prefix: bool = False, lookahead: int = 16, strict: bool = False
    ):
        self.model = model
        self.processor = processor
        self.tokenizer = processor.tokenizer
        self.reuse_prefix = reuse_prefix
        self.strict = strict
        # Tokens fed a pass at most (the chosen one, forced ones, guesses). On the CPU a longer chunk costs more
        # (attention over more queries) and wastes more past a miss: on the demo 16 (337 passes) was a little
        # faster than 20 (320 passes); 8, 12 and 24 were slower.
        self.lookahead = max(1, int(lookahead))
        self.image_token_id = processor.image_token_id
        self.pad_token_id = (
            self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.tokenizer.eos_token_id
        )
        self._grammars: dict[int, BoxGrammar] = {}
        self._prefix: tuple[tuple[int, ...], list[tuple[torch.Tensor, torch.Tensor]]] | None = None
        self._first_boxes: dict[Hashable, list[int]] = {}  # by row key: the first box of the row's last answer
        self.stats: dict[str, float] = {}
        self.reset_stats()

    def forget(self) -> None:
        """Drop the answers kept for guessing (`decode`'s `keys`): the next call starts afresh (a new video)."""
        self._first_boxes.clear()

    def reset_stats(self) -> None:
        """Counts since the last reset: forward passes, tokens the model chose among several, tokens emitted,
        departures (emitted tokens that were not the model's unconstrained argmax) and seconds of prefill/decoding."""
        self.stats = {"forwards": 0, "free_tokens": 0, "tokens": 0, "departures": 0, "prefill_s": 0.0, "decode_s": 0.0}

    def grammar(self, num_frames: int) -> BoxGrammar:
        if num_frames not in self._grammars:
            self._grammars[num_frames] = BoxGrammar.from_processor(self.processor, num_frames)
        return self._grammars[num_frames]

    @property
    def device(self) -> torch.device:
        return self.model.device

    @torch.inference_mode()
    def decode(
        self,
        prompts: list[str],
        features: list[torch.Tensor],
        num_frames: Sequence[int],
        max_new_tokens: int | None = None,
        keys: Sequence[Hashable] | None = None,
    ) -> tuple[list[str], list[list[int]]]:
        """Greedy answers (texts decoded as the tracker decodes `generate`'s, and token ids) for tracking prompts.

        `keys` name the rows across calls (the tracker's: video and view). A row's first box is then guessed to be
        the first box its key's last answer gave, else the box its prompt gives: each clip's square is cut around
        the target as the last one was, so in the square's coordinates the answer moves little from clip to clip,
        while the prompt's box is only where the last clip ended (on the demo video this guess took the tiny model
        from 379 forward passes to 338, the same answers). How the passes go: the module's docstring.
        """
        grammars = [self.grammar(int(n)) for n in num_frames]
        # A row that left the grammar runs to `</s>` or this many tokens; by default the widest answer and a little
        # more (as the tracker's budget), so a model that never says `</s>` cannot keep the loop going.
        budgets = [max_new_tokens if max_new_tokens is not None else g.longest() + 4 for g in grammars]
        states = [g.start() for g in grammars]
        keys = list(keys) if keys is not None else [None] * len(prompts)
        hints = [self._first_boxes.get(key) or _prompt_box(prompt) for key, prompt in zip(keys, prompts)]
        start = time.perf_counter()
        encoding = self.processor.tokenize(prompts, return_tensors="pt", padding=True, padding_side="left")
        ids, mask = encoding["input_ids"].to(self.device), encoding["attention_mask"].to(self.device)
        seen: list[dict[tuple[int, tuple[int, ...]], int]] = [{} for _ in prompts]  # the model's choices beyond a miss
        # The first chunks ride on the prefill; a shorter prompt takes a longer chunk, so that rows end even and run
        # as one unpadded batch (`_prefill` runs rows of one length together).
        lengths = mask.sum(1).tolist()
        chunks = [
            self._lookahead(g, s.copy(), [], h, m, self.lookahead + max(lengths) - n)
            for g, s, h, m, n in zip(grammars, states, hints, seen, lengths)
        ]
        cache, mask, chunk_logits = self._prefill(ids, mask, features, chunks)
        emitted: list[list[int]] = [[] for _ in prompts]
        following: list[int | None] = []
        kept: list[int] = []
        for row, (grammar, state) in enumerate(zip(grammars, states)):
            accepted, token = self._verify(grammar, state, chunks[row], chunk_logits[row], seen[row])
            emitted[row] += chunks[row][:accepted]
            following.append(token)
            kept.append(accepted)
        cache, mask = self._merge(cache, mask, kept, chunks)
        self.stats["prefill_s"] += time.perf_counter() - start
        start = time.perf_counter()
        while True:
            chunks = []
            for row, (grammar, state, hint, token) in enumerate(zip(grammars, states, hints, following)):
                if token is None:
                    chunks.append([])
                    continue
                self._advance(grammar, state, token)  # chosen from the model's logits: kept
                if token == grammar.eos_token_id:  # the answer ends: `generate` stops here, nothing more to feed
                    emitted[row].append(token)
                    chunks.append([])
                    continue
                chunks.append(self._lookahead(grammar, state.copy(), [token], hint, seen[row]))
            if not any(chunks):
                break
            logits, mask = self._step(cache, mask, chunks)
            following = []
            for row, (grammar, state, chunk) in enumerate(zip(grammars, states, chunks)):
                if not chunk:
                    following.append(None)
                    continue
                accepted, token = self._verify(grammar, state, chunk[1:], logits[row, : len(chunk)], seen[row])
                emitted[row] += chunk[: 1 + accepted]
                mask[row, mask.shape[1] - logits.shape[1] + 1 + accepted :] = 0  # missed guesses
                if len(emitted[row]) >= budgets[row]:
                    token = None  # generate's budget (only a row that left the grammar runs that long)
                following.append(token)
        self.stats["decode_s"] += time.perf_counter() - start
        self.stats["tokens"] += sum(len(e) for e in emitted)
        for key, state in zip(keys, states):
            if key is not None and not state.free and len(state.values) >= 4:
                self._first_boxes[key] = state.values[:4]
        return self.tokenizer.batch_decode(emitted, skip_special_tokens=True), emitted

    def _lookahead(
        self,
        grammar: BoxGrammar,
        state: _State,
        chunk: list[int],
        hint: list[int] | None,
        seen: dict[tuple[int, tuple[int, ...]], int],
        limit: int | None = None,
    ) -> list[int]:
        """`chunk` extended by the forced run from `state` and then by guessed tokens, up to `lookahead` tokens, or
        up to half as many more where that reaches the answer's end (which would otherwise cost a pass of its own).

        A guess is the model's own choice where an earlier pass saw it (`seen`, filled by `_verify` past a miss),
        else the box before repeated (`BoxGrammar.guess`). The closing `</s>` is never fed: the logits before it
        tell whether the model ends there, and nothing after it is asked."""
        limit = limit or self.lookahead
        ended = False
        while len(chunk) < limit + limit // 2 and not state.free:
            allowed = grammar.allowed(state)
            ended = allowed == [grammar.eos_token_id]
            if not allowed or ended:
                break
            if len(allowed) == 1:
                token = allowed[0]
            else:
                token = seen.get(grammar.key(state))
                if token is None or token not in allowed:
                    token = grammar.guess(state, hint)
            if token is None or token not in allowed:
                break
            chunk.append(token)
            grammar.advance(state, token)
        return chunk if ended else chunk[:limit]

    def _verify(
        self,
        grammar: BoxGrammar,
        state: _State,
        tokens: list[int],
        logits: torch.Tensor,
        seen: dict[tuple[int, tuple[int, ...]], int],
    ) -> tuple[int, int | None]:
        """Keep `tokens` while each is the greedy choice (`logits[i]` predicts `tokens[i]`), advancing `state`;
        returns how many were kept and the choice after them (None once the answer ended).

        The choice is the model's argmax where the grammar allows it (there the argmax over the allowed tokens is
        the same token). Where it does not (the model leaves the format), `strict` takes the argmax over the allowed
        tokens; otherwise the row follows the model from there on, as `generate` would, to `</s>` or the token budget
        (and the tracker repairs what it cannot read)."""
        greedy = logits.argmax(-1).tolist()
        for position in range(len(tokens) + 1):
            choice: int | None = greedy[position]
            if state.free:
                choice = None if state.done else choice
            else:
                allowed = grammar.allowed(state)
                if not allowed:
                    return position, None
                if len(allowed) > 1:
                    self.stats["free_tokens"] += 1
                if choice not in allowed:
                    self.stats["departures"] += 1
                    if not self.strict:
                        state.free = True
                    elif len(allowed) == 1:
                        choice = allowed[0]
                    else:
                        choice = allowed[int(torch.argmax(logits[position, allowed]))]
            if choice is None or position == len(tokens) or tokens[position] != choice:
                if choice is not None and position < len(tokens):  # a miss: what the model chose past it
                    self._remember(grammar, state.copy(), tokens[position:], greedy[position + 1 :], seen)
                return position, choice
            self._advance(grammar, state, choice)
        raise AssertionError("unreachable")

    def _remember(
        self,
        grammar: BoxGrammar,
        state: _State,
        missed: list[int],
        greedy: list[int],
        seen: dict[tuple[int, tuple[int, ...]], int],
    ) -> None:
        """The model's choices along the missed guesses (`greedy[i]` follows `missed[: i + 1]`), kept by grammar
        position as guesses for the next pass.

        They were made after a wrong token, but a box's numbers hang on the frames more than on the digit before, so
        they are mostly the choices the model makes on the right path too (as in Jacobi decoding); a wrong one
        costs nothing but the pass it would have cost anyway, as every guess is verified."""
        for token, choice in zip(missed, greedy):
            if state.free or token not in grammar.allowed(state):
                return
            grammar.advance(state, token)
            key = grammar.key(state)
            if key is not None and choice in grammar.allowed(state):
                seen[key] = choice

    def _advance(self, grammar: BoxGrammar, state: _State, token: int) -> None:
        if state.free:
            state.done = state.done or token == grammar.eos_token_id
        else:
            grammar.advance(state, token)

    def _forward(self, **kwargs: Any) -> torch.Tensor:
        self.stats["forwards"] += 1
        return self.model(use_cache=True, return_dict=True, **kwargs).logits

    def prefix_states(self, prefix: tuple[int, ...]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Key and value states of each layer for a prompt prefix (batch 1), computed once and kept."""
        if self._prefix is None or self._prefix[0] != prefix:
            cache = DynamicCache(config=self.model.config)
            ids = torch.tensor([prefix], dtype=torch.long, device=self.device)
            self._forward(input_ids=ids, cache=cache, logits_to_keep=1)
            self._prefix = (prefix, [(layer.keys, layer.values) for layer in cache.layers])
        return self._prefix[1]

    def shared_prefix(self, ids: torch.Tensor, mask: torch.Tensor) -> list[int]:
        """The tokens before the first frame that every (left-padded) row starts with."""
        rows = [row[m.bool()].tolist() for row, m in zip(ids, mask)]
        prefix = rows[0][: rows[0].index(self.image_token_id)] if self.image_token_id in rows[0] else []
        for row in rows[1:]:
            same = 0
            while same < len(prefix) and same < len(row) and row[same] == prefix[same]:
                same += 1
            prefix = prefix[:same]
        return prefix

    def _prefill(
        self, ids: torch.Tensor, mask: torch.Tensor, features: list[torch.Tensor], chunks: list[list[int]]
    ) -> tuple[list[list[tuple[torch.Tensor, torch.Tensor]]], list[int], list[torch.Tensor]]:
        """Run the prompts, each followed by its chunk; returns each row's key/value states per layer, its prompt
        length and the logits at its prompt's last token and its chunk's tokens (`[i]` predicts `chunk[i]`).

        Rows of one length run together unpadded: with no padding mask SDPA takes its causal kernel, which on the
        CPU costs about half the masked one, and no mask is built (a padded batch-3 prefill of the tiny model took
        1.5x the unpadded one). `_merge` then left-pads the rows' states into one cache, as `generate` holds it.
        """
        prompts = [row[m.bool()] for row, m in zip(ids, mask)]
        rows = [torch.cat([row, row.new_tensor(chunk, dtype=torch.long)]) for row, chunk in zip(prompts, chunks)]
        prefix = self.shared_prefix(ids, mask) if self.reuse_prefix else []
        prefix_states = self.prefix_states(tuple(prefix)) if prefix else None
        # The frames' features are in prompt order: each group takes its own rows'.
        per_frame = self.processor.num_image_tokens
        counts = [int((row == self.image_token_id).sum()) // per_frame for row in prompts]
        firsts = [sum(counts[:r]) for r in range(len(rows))]
        groups: dict[int, list[int]] = {}
        for r, row in enumerate(rows):
            groups.setdefault(len(row), []).append(r)
        states: list[list[tuple[torch.Tensor, torch.Tensor]]] = [[] for _ in rows]
        outputs: list[torch.Tensor] = [torch.empty(0)] * len(rows)
        for length, members in groups.items():
            cache = DynamicCache(config=self.model.config)
            if prefix_states is not None:
                for layer, (keys, values) in enumerate(prefix_states):
                    cache.update(keys.expand(len(members), -1, -1, -1), values.expand(len(members), -1, -1, -1), layer)
            kwargs: dict[str, Any] = {}
            if features:
                own = [features[firsts[r] + f] for r in members for f in range(counts[r])]
                kwargs["mm_encoder_outputs"] = {"image": BaseModelOutputWithPooling(pooler_output=own)}
            keep = max(len(chunks[r]) for r in members) + 1
            logits = self._forward(
                input_ids=torch.stack([rows[r][len(prefix) :] for r in members]),
                position_ids=torch.arange(len(prefix), length, device=self.device)[None, :],
                cache=cache,
                logits_to_keep=keep,
                **kwargs,
            )
            for g, r in enumerate(members):
                states[r] = [(layer.keys[g], layer.values[g]) for layer in cache.layers]
                outputs[r] = logits[g, keep - 1 - len(chunks[r]) :]
        if len(groups) == 1:  # one length (the usual case, as `decode` evens the rows): the group's cache as it is
            return cache, [len(p) for p in prompts], outputs
        return states, [len(p) for p in prompts], outputs

    def _merge(
        self,
        states: DynamicCache | list[list[tuple[torch.Tensor, torch.Tensor]]],
        lengths: list[int],
        kept: list[int],
        chunks: list[list[int]],
    ) -> tuple[DynamicCache, torch.Tensor]:
        """The rows' states up to their prompt and kept tokens, left-padded into one cache, and its attention mask.

        Rows that ran as one batch (`states` is their cache) stay where they are: their missed guesses are masked."""
        if isinstance(states, DynamicCache):
            mask = torch.ones((len(lengths), lengths[0] + len(chunks[0])), dtype=torch.long, device=self.device)
            for r, (n, k) in enumerate(zip(lengths, kept)):
                mask[r, n + k :] = 0
            return states, mask
        lengths = [n + k for n, k in zip(lengths, kept)]
        width = max(lengths)
        cache = DynamicCache(config=self.model.config)
        for layer in range(len(states[0])):
            heads, _, dim = states[0][layer][0].shape
            keys = states[0][layer][0].new_zeros((len(states), heads, width, dim))
            values = torch.zeros_like(keys)
            for r, (row, n) in enumerate(zip(states, lengths)):
                keys[r, :, width - n :] = row[layer][0][:, :n]
                values[r, :, width - n :] = row[layer][1][:, :n]
            cache.update(keys, values, layer)
        mask = torch.zeros((len(states), width), dtype=torch.long, device=self.device)
        for r, n in enumerate(lengths):
            mask[r, width - n :] = 1
        return cache, mask

    def _step(
        self, cache: DynamicCache, mask: torch.Tensor, chunks: list[list[int]]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Feed one chunk a row (right-padded, masked); returns the logits at the block's positions and the mask.

        The attention mask goes in 4D, as transformers would build it from the 2D one (a key is seen where the row
        holds it and, in the block, from the positions before): built here in two lines, it spares the pass the
        general mask builder (`create_causal_mask`), a tenth of a pass's cost for the tiny model."""
        block, block_mask = self._block(chunks)
        width = block.shape[1]
        positions = mask.sum(1, keepdim=True) + torch.arange(width, device=self.device)[None, :]
        mask = torch.cat([mask, block_mask], 1)
        visible = mask.bool()[:, None, None, :].repeat(1, 1, width, 1)
        visible[..., -width:] &= torch.ones(width, width, dtype=torch.bool, device=self.device).tril()
        logits = self._forward(
            input_ids=block, attention_mask=visible, position_ids=positions, cache=cache, logits_to_keep=width
        )
        return logits, mask

    def _block(self, chunks: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        longest = max(len(c) for c in chunks)
        block = torch.full((len(chunks), longest), self.pad_token_id, dtype=torch.long, device=self.device)
        block_mask = torch.zeros((len(chunks), longest), dtype=torch.long, device=self.device)
        for row, chunk in enumerate(chunks):
            if chunk:
                block[row, : len(chunk)] = torch.tensor(chunk, dtype=torch.long)
                block_mask[row, : len(chunk)] = 1
        return block, block_mask


def _prompt_box(prompt: str) -> list[int] | None:
    """The bins of the box a prompt gives (SOT: frame 1's), the first guess at the answer's first box."""
    box = parse_box(prompt)
    return None if box is None else [round(100 * v) for v in box]
