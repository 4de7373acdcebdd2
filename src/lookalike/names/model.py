"""The character-level GRU language model, forward pass in numpy (serving needs no torch).

Tokens: ``0`` padding, ``1`` start, ``2`` end, then one per character of the vocabulary.
A name ``"abra"`` is read as ``<start> a b r a`` and should predict ``a b r a <end>``.

The equations are ``torch.nn.GRU``'s (gates in the order r, z, n)::

    r  = sigmoid(W_ir x + b_ir + W_hr h + b_hr)
    z  = sigmoid(W_iz x + b_iz + W_hz h + b_hz)
    n  = tanh(W_in x + b_in + r * (W_hn h + b_hn))
    h' = (1 - z) * n + z * h

followed by a linear layer to one logit per token. Since the input of the GRU is an
embedding row, ``W_i x + b_i`` is a per-token table computed once at load.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np

PAD, BOS, EOS = 0, 1, 2
SPECIAL_TOKENS = 3

WEIGHT_NAMES = ("embedding", "w_ih", "w_hh", "b_ih", "b_hh", "w_out", "b_out")


@dataclass(frozen=True)
class Vocabulary:
    """The characters a model knows; token ``SPECIAL_TOKENS + i`` is ``chars[i]``."""

    chars: str

    @classmethod
    def of(cls, names: Sequence[str]) -> Vocabulary:
        return cls("".join(sorted(set("".join(names)))))

    @property
    def size(self) -> int:
        return SPECIAL_TOKENS + len(self.chars)

    def index(self) -> dict[str, int]:
        return {c: SPECIAL_TOKENS + i for i, c in enumerate(self.chars)}

    def unknown(self, text: str) -> list[str]:
        """Characters of ``text`` the model has never seen, in order of appearance."""
        known = set(self.chars)
        return list(dict.fromkeys(c for c in text if c not in known))

    def encode(self, text: str) -> list[int]:
        index = self.index()
        return [index[c] for c in text]

    def decode(self, tokens: Sequence[int]) -> str:
        return "".join(self.chars[t - SPECIAL_TOKENS] for t in tokens if t >= SPECIAL_TOKENS)


class _OneBlasThread:
    """While any sampling runs, numpy's BLAS uses one thread. The matrices are tiny: a second
    thread only adds synchronisation, and on a busy machine its spin-waiting made a request
    25x slower (measured: 14 ms against 350 ms for 15 names on 2 shared cores). Reference
    counted, so overlapping requests restore the original setting only when the last ends.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._users = 0
        self._limiter: Any = None

    @contextmanager
    def __call__(self) -> Iterator[None]:
        with self._lock:
            if self._users == 0:
                try:
                    from threadpoolctl import ThreadpoolController  # scikit-learn's dependency

                    # Looked up each time (about a millisecond): a BLAS loaded since (scipy's,
                    # torch's) must be limited too, not only those loaded at the first request.
                    controller = ThreadpoolController()
                    self._limiter = controller.limit(limits=1, user_api="blas")
                except Exception:  # no threadpoolctl or an unknown BLAS: run as is
                    self._limiter = None
            self._users += 1
        try:
            yield
        finally:
            with self._lock:
                self._users -= 1
                if self._users == 0 and self._limiter is not None:
                    self._limiter.restore_original_limits()
                    self._limiter = None


one_blas_thread = _OneBlasThread()


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (np.tanh(0.5 * x) + 1.0)  # no overflow warnings for large |x|


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(shifted)
    out: np.ndarray = e / e.sum(axis=-1, keepdims=True)
    return out


@dataclass
class CharGRU:
    """Weights of the trained network (shapes as ``torch.nn.GRU`` names them) + vocabulary."""

    vocab: Vocabulary
    embedding: np.ndarray  # (V, E)
    w_ih: np.ndarray  # (3H, E)
    w_hh: np.ndarray  # (3H, H)
    b_ih: np.ndarray  # (3H,)
    b_hh: np.ndarray  # (3H,)
    w_out: np.ndarray  # (V, H)
    b_out: np.ndarray  # (V,)
    _input_gates: np.ndarray | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        for name in WEIGHT_NAMES:
            setattr(self, name, np.ascontiguousarray(getattr(self, name), dtype=np.float64))
        v, h = self.vocab.size, self.hidden_size
        expected = {
            "embedding": (v, self.embedding.shape[1]),
            "w_ih": (3 * h, self.embedding.shape[1]),
            "w_hh": (3 * h, h),
            "b_ih": (3 * h,),
            "b_hh": (3 * h,),
            "w_out": (v, h),
            "b_out": (v,),
        }
        for name, shape in expected.items():
            actual = getattr(self, name).shape
            if actual != shape:
                raise ValueError(f"weight {name} has shape {actual}, expected {shape}")
            if not np.isfinite(getattr(self, name)).all():
                raise ValueError(f"weight {name} holds NaN or infinite values")

    @classmethod
    def from_arrays(cls, vocab: Vocabulary, arrays: dict[str, np.ndarray]) -> CharGRU:
        missing = [n for n in WEIGHT_NAMES if n not in arrays]
        if missing:
            raise ValueError(f"weights missing: {', '.join(missing)}")
        return cls(vocab, **{n: arrays[n] for n in WEIGHT_NAMES})

    def arrays(self) -> dict[str, np.ndarray]:
        return {n: np.asarray(getattr(self, n), dtype=np.float32) for n in WEIGHT_NAMES}

    @property
    def hidden_size(self) -> int:
        return int(self.w_hh.shape[1])

    @property
    def input_gates(self) -> np.ndarray:
        """``W_ih x + b_ih`` for every token, (V, 3H)."""
        if self._input_gates is None:
            self._input_gates = self.embedding @ self.w_ih.T + self.b_ih
        return self._input_gates

    # --- the recurrence ------------------------------------------------------------------

    def initial_state(self, batch: int) -> np.ndarray:
        return np.zeros((batch, self.hidden_size))

    def step(self, tokens: np.ndarray, h: np.ndarray) -> np.ndarray:
        """One time step for a batch: tokens (B,), state (B, H) -> new state (B, H)."""
        size = self.hidden_size
        gi = self.input_gates[tokens]
        gh = h @ self.w_hh.T + self.b_hh
        r = sigmoid(gi[:, :size] + gh[:, :size])
        z = sigmoid(gi[:, size : 2 * size] + gh[:, size : 2 * size])
        n = np.tanh(gi[:, 2 * size :] + r * gh[:, 2 * size :])
        out: np.ndarray = (1.0 - z) * n + z * h
        return out

    def logits(self, h: np.ndarray) -> np.ndarray:
        out: np.ndarray = h @ self.w_out.T + self.b_out
        return out

    def read(self, tokens: Sequence[int], batch: int = 1) -> np.ndarray:
        """The state after reading ``<start>`` + ``tokens``, repeated for a batch."""
        h = self.initial_state(1)
        for t in [BOS, *tokens]:
            h = self.step(np.array([t]), h)
        return np.repeat(h, batch, axis=0)

    def next_probabilities(self, text: str, temperature: float = 1.0) -> np.ndarray:
        """Probabilities of every token after ``<start>`` + ``text``, (V,). Padding and start
        are never predicted (probability 0)."""
        h = self.read(self.vocab.encode(text))
        return softmax(self._masked(self.logits(h)[0]) / temperature)

    @staticmethod
    def _masked(logits: np.ndarray) -> np.ndarray:
        logits = np.array(logits, dtype=np.float64)
        logits[..., PAD] = -np.inf
        logits[..., BOS] = -np.inf
        return logits

    def token_log_likelihoods(self, names: Sequence[str]) -> np.ndarray:
        """log p of every predicted token (each character and the end) of every name,
        concatenated; their mean negated is the loss, its exp the perplexity."""
        if not names:
            return np.zeros(0)
        encoded = [self.vocab.encode(n) for n in names]
        longest = max(len(e) for e in encoded)
        batch = len(encoded)
        inputs = np.full((batch, longest + 1), PAD, dtype=np.int64)
        targets = np.full((batch, longest + 1), PAD, dtype=np.int64)
        for i, e in enumerate(encoded):
            inputs[i, : len(e) + 1] = [BOS, *e]
            targets[i, : len(e) + 1] = [*e, EOS]
        h = self.initial_state(batch)
        out: list[np.ndarray] = []
        for t in range(longest + 1):
            h = self.step(inputs[:, t], h)
            logits = self._masked(self.logits(h))
            shifted = logits - logits.max(axis=1, keepdims=True)
            logp = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
            live = targets[:, t] != PAD
            out.append(logp[live, targets[live, t]])
        return np.concatenate(out)

    def perplexity(self, names: Sequence[str]) -> float:
        return float(np.exp(-self.token_log_likelihoods(names).mean()))

    # --- sampling ------------------------------------------------------------------------

    def sample(
        self,
        rng: np.random.Generator,
        batch: int,
        *,
        temperature: float,
        prefix: str = "",
        max_length: int,
    ) -> list[str | None]:
        """``batch`` names that start with ``prefix`` and have at most ``max_length``
        characters; None where the network had not ended the name by then."""
        with one_blas_thread():
            return self._sample(rng, batch, temperature, prefix, max_length)

    def _sample(
        self,
        rng: np.random.Generator,
        batch: int,
        temperature: float,
        prefix: str,
        max_length: int,
    ) -> list[str | None]:
        tokens = self.vocab.encode(prefix)
        h = self.read(tokens, batch)
        out = np.zeros((batch, max_length), dtype=np.int64)
        out[:, : len(tokens)] = tokens
        done = np.zeros(batch, dtype=bool)
        ended = np.zeros(batch, dtype=bool)
        length = np.full(batch, len(tokens))
        for position in range(len(tokens), max_length + 1):
            probs = softmax(self._masked(self.logits(h)) / temperature)
            cdf = np.cumsum(probs, axis=1)
            u = rng.random(batch)[:, None] * cdf[:, -1:]
            chosen = np.minimum((cdf < u).sum(axis=1), probs.shape[1] - 1)
            chosen = np.where(done, EOS, chosen)
            newly_ended = (chosen == EOS) & ~done
            ended |= newly_ended
            done |= newly_ended
            if position == max_length:
                break
            live = ~done
            out[live, position] = chosen[live]
            length[live] += 1
            if done.all():
                break
            h = self.step(np.where(done, EOS, chosen), h)
        return [
            self.vocab.decode(out[i, : length[i]].tolist()) if ended[i] else None
            for i in range(batch)
        ]
