"""Noun chunks of a caption with spaCy, minus the ones the paper drops: abstract ("virtual") words and plurals.

spaCy's English pipelines are not on PyPI, so the model is named by the user (`--spacy-model`) and a missing one
fails with the command that installs it. The filters read only what a tagger/parser/morphologizer sets on the
tokens (`pos_`, `tag_`, `morph`, `lemma_`, `like_num`), so they can be checked on a hand-built `Doc`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

ABSTRACT = "abstract_word"
PLURAL = "plural"
PRONOUN = "pronoun"
CHUNK_REASONS = (ABSTRACT, PLURAL, PRONOUN)

# Words that name no boxable thing (the paper's "virtual words": time, love, wind), plus the camera and scene
# words WebVid captions are full of ("footage of ...", "slow motion", "background"). Lemmas, lower case.
ABSTRACT_WORDS = frozenset(
    """time love wind air life happiness freedom joy fun peace beauty nature concept idea moment day night morning
    evening afternoon weather sunlight light darkness shadow silence motion speed view scene background foreground
    footage video clip shot timelapse time-lapse slow-motion close-up closeup aerial top side front left right
    middle center centre distance way lot kind sort type part end beginning top bottom space copy copyspace
    text word business success health music sound noise rain fog mist smoke snowfall atmosphere sky""".split()
)
# Singular nouns that name a group: the paper drops "family" and "people" as plural.
COLLECTIVE_WORDS = frozenset(
    """family people crowd group couple team herd flock swarm pack school crew band audience class staff army
    fleet pair bunch series set collection""".split()
)
_SINGLE_NUMBERS = frozenset({"one", "1", "a", "an", "single"})


@dataclass(frozen=True)
class Chunk:
    """A noun chunk: its text (the `object_class`), the caption's words for the object (its syntactic subtree:
    the `object_description`), and why it is dropped (None when kept)."""

    text: str
    description: str
    problem: str | None = None


class Chunker(Protocol):
    """Captions -> noun chunks (kept and dropped), batched."""

    def __call__(self, captions: Sequence[str]) -> list[list[Chunk]]: ...


def span_problem(span: Any) -> str | None:
    """Why a spaCy noun-chunk `Span` is dropped (a `CHUNK_REASONS` key), or None.

    Plural: the head noun is plural (`Number=Plur` or tag NNS/NNPS), a group noun (family, people), or counted by a
    number other than one ("two dogs"). Abstract: any word's lemma is in `ABSTRACT_WORDS` ("the wind").
    """
    root = span.root
    if root.pos_ == "PRON":
        return PRONOUN
    for token in span:
        if token.lemma_.lower() in ABSTRACT_WORDS or token.lower_ in ABSTRACT_WORDS:
            return ABSTRACT
    if "Plur" in root.morph.get("Number") or root.tag_ in ("NNS", "NNPS"):
        return PLURAL
    if root.lemma_.lower() in COLLECTIVE_WORDS or root.lower_ in COLLECTIVE_WORDS:
        return PLURAL
    for token in span:
        if token.i != root.i and (token.pos_ == "NUM" or token.like_num) and token.lower_ not in _SINGLE_NUMBERS:
            return PLURAL
    return None


def chunk_of(span: Any) -> Chunk:
    """A `Chunk` from a noun-chunk span; the description is the root's whole subtree ("a man riding a horse"),
    cut at a following conjunct so "a dog and a cat" describes the dog only."""
    doc = span.doc
    start = min(span.start, span.root.left_edge.i)
    end = span.end
    for token in span.root.rights:
        if token.dep_ in ("cc", "conj", "punct", "appos"):
            break
        end = max(end, token.right_edge.i + 1)
    description = doc[start:end].text.strip()
    return Chunk(text=span.text.strip(), description=description or span.text.strip(), problem=span_problem(span))


def doc_chunks(doc: Any) -> list[Chunk]:
    """Every noun chunk of a parsed `Doc`, kept or not (`doc.noun_chunks` needs a dependency parse)."""
    return [chunk_of(span) for span in doc.noun_chunks]


class SpacyChunker:
    """spaCy's `noun_chunks` with the paper's filters; `nlp.pipe` batches the captions."""

    def __init__(self, nlp: Any, batch_size: int = 64) -> None:
        self.nlp = nlp
        self.batch_size = batch_size

    @classmethod
    def load(cls, name: str) -> SpacyChunker:
        return cls(load_spacy(name))

    def __call__(self, captions: Sequence[str]) -> list[list[Chunk]]:
        return [doc_chunks(doc) for doc in self.nlp.pipe(list(captions), batch_size=self.batch_size)]


def load_spacy(name: str) -> Any:
    """`spacy.load(name)`; a missing package or model raises `ImportError` with the command that installs it."""
    try:
        import spacy
    except ImportError:
        raise ImportError("spaCy is not installed; install it with `pip install 'elysium[data]'`") from None
    try:
        nlp = spacy.load(name)
    except OSError:
        raise ImportError(
            f"the spaCy model {name!r} is not installed (spaCy's English models are not on PyPI); install it with "
            f"`python -m spacy download {name}`, or pass another one with --spacy-model"
        ) from None
    if not nlp.has_pipe("parser"):
        raise ImportError(
            f"the spaCy model {name!r} has no dependency parser, which noun chunks need; use e.g. en_core_web_sm"
        )
    return nlp


def given_chunks(texts: Iterable[str]) -> list[Chunk]:
    """Chunks given with the caption (a `chunks` list in the captions file, e.g. from another parser): used as
    they are, their own text as the description; only the word lists can be checked without a parse."""
    chunks = []
    for text in texts:
        words = [w.strip(".,;:!?\"'").lower() for w in str(text).split()]
        problem = None
        if any(w in ABSTRACT_WORDS for w in words):
            problem = ABSTRACT
        elif (words and words[-1] in COLLECTIVE_WORDS) or any(
            w.isdigit() and w != "1" or w in _NUMBER_WORDS for w in words
        ):
            problem = PLURAL
        chunks.append(Chunk(text=str(text).strip(), description=str(text).strip(), problem=problem))
    return chunks


_NUMBER_WORDS = frozenset("two three four five six seven eight nine ten several many few some multiple".split())
