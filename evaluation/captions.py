"""Video-REG scores: METEOR 1.5 and CIDEr-D, computed by ``pycocoevalcap`` as captioning papers do.

Why pycocoevalcap: ``evaluate``'s "meteor" is NLTK's re-implementation (different numbers, and it
downloads data when loaded). pycocoevalcap ships ``meteor-1.5.jar`` and its paraphrase table, so
it runs offline, but it needs a Java runtime (Debian: ``apt-get install -y default-jre-headless``);
:func:`require_java` checks for one first and names the package. Its ``Cider`` class is CIDEr-D
(clipped n-gram counts, Gaussian length penalty, sigma 6) and runs in Python, without Java.

Tokenization, before both metrics:

* ``"simple"`` (default): lowercase; keep words of letters and digits, with inner apostrophes and
  hyphens (``dog's``, ``t-shirt``) and decimal numbers (``3.5``) kept whole; drop every other
  character (punctuation). This is what PTBTokenizer + pycocoevalcap's punctuation removal give for
  plain captions, without Java. It differs from PTB on clitics (PTB splits ``dog's`` into
  ``dog 's``) and on rare symbols.
* ``"ptb"``: pycocoevalcap's ``PTBTokenizer`` (Stanford CoreNLP 3.4.1, Java), the COCO-caption
  reference. It writes a temporary file inside the installed pycocoevalcap package, so that
  folder must be writable.

Scale: :class:`CaptionScores` holds the values pycocoevalcap returns (METEOR in 0..1; CIDEr-D in
0..10, because CIDEr-D multiplies by 10, and usually below 2). Papers print both x100 (the
Elysium paper's METEOR 46.7 / CIDEr 115.3 are 0.467 / 1.153 here); :meth:`CaptionScores.percent`
gives those.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

JRE_PACKAGE = "default-jre-headless"
METRICS: tuple[str, ...] = ("meteor", "cider")
TOKENIZERS: tuple[str, ...] = ("simple", "ptb")

_TOKEN = re.compile(r"\d+(?:[.,]\d+)+|[^\W_]+(?:['\-][^\W_]+)*")


class JavaNotFoundError(RuntimeError):
    """No ``java`` on PATH: METEOR 1.5 and the PTB tokenizer are Java programs."""


def require_java() -> str:
    """Path of the ``java`` executable, or :class:`JavaNotFoundError` saying how to install one."""
    java = shutil.which("java")
    if java is None:
        raise JavaNotFoundError(
            "METEOR 1.5 (pycocoevalcap's meteor-1.5.jar) and the PTB tokenizer need a Java runtime, and "
            f"there is no `java` on PATH. On Debian/Ubuntu install {JRE_PACKAGE}: "
            f"apt-get install -y {JRE_PACKAGE}"
        )
    return java


def simple_tokenize(text: str) -> str:
    """Lowercased words joined by single spaces, punctuation dropped (see the module docstring)."""
    return " ".join(_TOKEN.findall(text.lower()))


@dataclass(frozen=True)
class CaptionScores:
    """Corpus scores as pycocoevalcap returns them (METEOR 0..1, CIDEr-D 0..10) and per-item scores."""

    count: int
    meteor: float | None = None
    cider: float | None = None
    per_item: dict[Hashable, dict[str, float]] = field(default_factory=dict, repr=False)

    def percent(self) -> dict[str, float]:
        """The scores x100, as papers print them."""
        pairs = (("meteor", self.meteor), ("cider", self.cider))
        return {name: 100.0 * value for name, value in pairs if value is not None}

    def to_dict(self) -> dict[str, Any]:
        return {
            "count": self.count,
            "meteor": self.meteor,
            "cider": self.cider,
            "percent": self.percent(),
            "per_item": {str(k): v for k, v in self.per_item.items()},
        }


def _clean(text: str) -> str:
    # METEOR's stdin protocol is one line per request with ' ||| ' between fields.
    return " ".join(text.replace("|||", " ").split())


def _tokenize(
    predictions: Mapping[Hashable, str], references: Mapping[Hashable, list[str]], tokenizer: str
) -> tuple[dict[Hashable, list[str]], dict[Hashable, list[str]]]:
    if tokenizer == "simple":
        res = {k: [simple_tokenize(predictions[k])] for k in references}
        gts = {k: [simple_tokenize(r) for r in refs] for k, refs in references.items()}
        return res, gts
    require_java()
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    keys = list(references)
    index = {k: i for i, k in enumerate(keys)}  # PTBTokenizer wants plain keys; map back afterwards
    ptb = PTBTokenizer()
    res_tok = ptb.tokenize({index[k]: [{"caption": _clean(predictions[k])}] for k in keys})
    gts_tok = ptb.tokenize({index[k]: [{"caption": _clean(r)} for r in references[k]] for k in keys})
    return {k: res_tok[index[k]] for k in keys}, {k: gts_tok[index[k]] for k in keys}


def _meteor(gts: dict[Hashable, list[str]], res: dict[Hashable, list[str]]) -> tuple[float, list[float]]:
    require_java()
    from pycocoevalcap.meteor.meteor import Meteor

    scorer = Meteor()
    process = scorer.meteor_p
    try:
        score, scores = scorer.compute_score(
            {k: [_clean(r) for r in v] for k, v in gts.items()}, {k: [_clean(v[0])] for k, v in res.items()}
        )
    except Exception as error:  # the jar died (memory, bad install): say what it printed
        process.kill()
        detail = process.stderr.read().decode(errors="replace").strip()[-800:] if process.stderr else ""
        raise RuntimeError(f"METEOR 1.5 failed: {detail or error}") from error
    finally:
        if scorer.lock.locked():  # compute_score leaves it held when it raises; __del__ would then hang
            scorer.lock.release()
        del scorer  # its __del__ closes stdin and ends the Java process
    return float(score), [float(s) for s in scores]


def score_captions(
    predictions: Mapping[Hashable, str],
    references: Mapping[Hashable, str | Sequence[str]],
    *,
    metrics: Sequence[str] = METRICS,
    tokenizer: str = "simple",
) -> CaptionScores:
    """METEOR 1.5 and/or CIDEr-D of ``predictions`` (one caption per id) against ``references`` (one or more).

    Both mappings must have the same ids. CIDEr-D weighs n-grams by their document frequency over
    the evaluated set, so it needs at least two items (with one, every weight is zero).
    """
    unknown = [m for m in metrics if m not in METRICS]
    if unknown or not metrics:
        raise ValueError(f"unknown metrics {unknown}; choose from {', '.join(METRICS)}")
    if tokenizer not in TOKENIZERS:
        raise ValueError(f"unknown tokenizer {tokenizer!r}; choose from {', '.join(TOKENIZERS)}")
    missing = [k for k in references if k not in predictions]
    extra = [k for k in predictions if k not in references]
    if missing or extra:
        raise ValueError(
            f"predictions and references differ: {len(missing)} ids without a prediction {missing[:3]}, "
            f"{len(extra)} predictions without references {extra[:3]}"
        )
    refs: dict[Hashable, list[str]] = {}
    for key, value in references.items():
        refs[key] = [value] if isinstance(value, str) else [str(r) for r in value]
        if not refs[key]:
            raise ValueError(f"item {key!r} has no reference caption")
    if not refs:
        raise ValueError("no captions to score")
    if "cider" in metrics and len(refs) < 2:
        raise ValueError("CIDEr-D needs at least two items: its n-gram weights come from the evaluated set")
    if "meteor" in metrics:
        require_java()  # fail before any work

    res, gts = _tokenize({k: str(predictions[k]) for k in refs}, refs, tokenizer)
    per_item: dict[Hashable, dict[str, float]] = {k: {} for k in refs}
    meteor = cider = None
    if "cider" in metrics:
        from pycocoevalcap.cider.cider import Cider

        corpus, scores = Cider().compute_score(gts, res)
        cider = float(corpus)
        for key, value in zip(refs, scores):
            per_item[key]["cider"] = float(value)
    if "meteor" in metrics:
        meteor, scores = _meteor(gts, res)
        for key, value in zip(refs, scores):
            per_item[key]["meteor"] = value
    return CaptionScores(len(refs), meteor, cider, per_item)
