"""Generating names: validated parameters, rejection of known names, seeded sampling.

A request asks for ``count`` names at a ``temperature``, optionally starting with a
``prefix``. Candidates are sampled from the network in small batches; a candidate is
rejected when it is empty or malformed (a digit or punctuation where the corpus never has
one counts as malformed), did not end within ``max_length`` characters, is a
name of the training corpus, or was already drawn, and the sampling goes on until ``count``
names are found or ``max_tries`` candidates were drawn (then fewer names come back, never an
error).
With a ``seed`` the answer is reproducible; without one a seed is drawn and returned.
"""

from __future__ import annotations

import math
import secrets
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from itertools import pairwise
from typing import Any

import numpy as np

from lookalike.errors import InvalidInput
from lookalike.names.corpus import display_name, normalize_name
from lookalike.names.store import NamesModel

MIN_TEMPERATURE = 0.2
MAX_TEMPERATURE = 2.0
MAX_SEED = 2**63 - 1
MIN_BATCH = 16


@dataclass(frozen=True)
class NameRequest:
    """Validated generation parameters (``prefix`` normalised)."""

    count: int
    temperature: float
    prefix: str
    max_length: int
    seed: int


@dataclass
class GeneratedNames:
    names: list[str]  # display form, in the order they were drawn
    request: NameRequest
    model: str  # version
    corpus: str  # corpus name of the model
    tries: int  # candidates drawn
    rejected: dict[str, int] = field(default_factory=dict)  # reason -> candidates

    def to_dict(self) -> dict[str, Any]:
        return {
            "data": self.names,
            "count": len(self.names),
            **asdict(self.request),
            "requested": self.request.count,
            "model": self.model,
            "corpus": self.corpus,
            "tries": self.tries,
            "rejected": self.rejected,
        }


def well_formed(name: str) -> bool:
    """Not empty, starts and ends with a letter or digit, no stray spaces."""
    return bool(name) and name[0].isalnum() and name[-1].isalnum() and normalize_name(name) == name


def _shape(name: str) -> str:
    """``name`` between ``^`` and ``$`` with every letter written ``a``: "mr. mime" ->
    "^aa. aaaa$"."""
    return "^" + "".join("a" if c.isalpha() else c for c in name) + "$"


@lru_cache(maxsize=8)
def _style(corpus: frozenset[str]) -> frozenset[str]:
    """Every pair of neighbouring characters the corpus shows, letters as ``a``."""
    return frozenset(a + b for name in corpus for a, b in pairwise(_shape(name)))


def in_style(name: str, corpus: frozenset[str]) -> bool:
    """Digits and punctuation only where the corpus puts them: in Pokemon names (letters,
    and one "Porygon2") a digit may end a name after a letter, never sit inside one as in
    "Woli2nda"."""
    allowed = _style(corpus)
    return all(a + b in allowed for a, b in pairwise(_shape(name)))


def _invalid(code: str, message: str, **details: Any) -> InvalidInput:
    return InvalidInput(message, code=code, status=422, details=details)


def validate_request(
    *,
    count: int,
    temperature: float,
    prefix: str | None,
    seed: int | None,
    max_length: int | None,
    max_count: int,
    longest: int,
) -> NameRequest:
    """Check every parameter against its range (the prefix's characters are checked against
    a model by :func:`check_prefix`); messages say what was expected, what arrived and how
    to fix it."""
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= max_count:
        raise _invalid(
            "names.count",
            f"The count must be a whole number from 1 to {max_count}; got {count!r}."
            f" Ask for between 1 and {max_count} names.",
            received=str(count),
            min=1,
            max=max_count,
        )
    if not (
        isinstance(temperature, int | float)
        and math.isfinite(temperature)
        and MIN_TEMPERATURE <= temperature <= MAX_TEMPERATURE
    ):
        raise _invalid(
            "names.temperature",
            f"The temperature must be a number from {MIN_TEMPERATURE} to {MAX_TEMPERATURE}; got"
            f" {temperature!r}. Low values give safe, familiar names; high ones wilder names.",
            received=str(temperature),
            min=MIN_TEMPERATURE,
            max=MAX_TEMPERATURE,
        )
    if max_length is None:
        max_length = longest
    if isinstance(max_length, bool) or not 2 <= max_length <= longest:
        raise _invalid(
            "names.max_length",
            f"The max_length must be a whole number from 2 to {longest}; got {max_length!r}.",
            received=str(max_length),
            min=2,
            max=longest,
        )
    text = normalize_name(prefix or "")
    if len(text) >= max_length:
        raise _invalid(
            "names.prefix",
            f"The prefix must be shorter than the longest name ({max_length} characters); got"
            f" {len(text)} characters. Use a prefix of at most {max_length - 1} characters.",
            length=len(text),
            max_length=max_length - 1,
        )
    if seed is None:
        seed = secrets.randbelow(2**31)
    elif isinstance(seed, bool) or not 0 <= seed <= MAX_SEED:
        raise _invalid(
            "names.seed",
            f"The seed must be a whole number from 0 to {MAX_SEED}; got {seed!r}.",
            received=str(seed),
        )
    return NameRequest(count, float(temperature), text, int(max_length), int(seed))


def check_prefix(model: NamesModel, request: NameRequest) -> None:
    """The prefix may only use characters the model was trained on."""
    unknown = model.net.vocab.unknown(request.prefix)
    if unknown:
        raise _invalid(
            "names.prefix_characters",
            f"The prefix contains characters the generator never saw in its"
            f" {model.info.corpus_name!r} corpus: {''.join(unknown)!r}. Use only these:"
            f" {model.net.vocab.chars!r} (upper or lower case).",
            unknown=unknown,
            allowed=model.net.vocab.chars,
        )


def generate_names(model: NamesModel, request: NameRequest, *, max_tries: int) -> GeneratedNames:
    """Draw new, unique names for a validated request (see the module docstring)."""
    check_prefix(model, request)
    rng = np.random.default_rng(request.seed)
    found: dict[str, None] = {}  # normalised names, insertion-ordered
    rejected = {"too_long": 0, "malformed": 0, "in_corpus": 0, "duplicate": 0}
    tries = 0
    while len(found) < request.count and tries < max_tries:
        missing = request.count - len(found)
        batch = min(max(4 * missing, MIN_BATCH), max_tries - tries)
        candidates = model.net.sample(
            rng,
            batch,
            temperature=request.temperature,
            prefix=request.prefix,
            max_length=request.max_length,
        )
        tries += batch
        for name in candidates:
            if name is None:
                rejected["too_long"] += 1
            elif not well_formed(name) or not in_style(name, model.corpus):
                rejected["malformed"] += 1
            elif name in model.corpus:
                rejected["in_corpus"] += 1
            elif name in found:
                rejected["duplicate"] += 1
            elif len(found) < request.count:
                found[name] = None
    return GeneratedNames(
        names=[display_name(n) for n in found],
        request=request,
        model=model.version,
        corpus=model.info.corpus_name,
        tries=tries,
        rejected={k: v for k, v in rejected.items() if v},
    )
