"""Training the name generator (torch, imported only inside :func:`fit`).

Split: a seeded 10% of the corpus is held out for validation; the loss reported is the mean
negative log-likelihood per predicted token (every character and the end of the name) on
those names, and the perplexity its exponential. Training stops early when the validation
loss has not improved for ``patience`` epochs and keeps the best epoch's weights. The same
split gives a character-bigram baseline (add-k smoothing, ``k`` the best of a small grid on
validation, so the baseline is as strong as a bigram gets): the network has to beat it.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from lookalike.names.model import BOS, EOS, PAD, CharGRU, Vocabulary

VAL_FRACTION = 0.1
BIGRAM_K_GRID = (0.01, 0.03, 0.1, 0.3, 1.0)


@dataclass(frozen=True)
class HyperParameters:
    embedding: int = 48
    hidden: int = 128
    dropout: float = 0.3
    learning_rate: float = 3e-3
    weight_decay: float = 1e-5
    batch_size: int = 32
    max_epochs: int = 60
    patience: int = 6
    clip: float = 1.0
    max_seconds: float = 40.0  # a hard stop, whatever the corpus size
    seed: int = 0
    # Threads for torch. The matrices are small: a second thread saves a little on an idle
    # machine and costs many times over on a busy one, where the threads spin waiting for
    # each other (bench/names.py: 7 s with one thread, 50 s with two, on 2 shared cores).
    threads: int = 1

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class FitResult:
    model: CharGRU
    train_names: list[str]
    val_names: list[str]
    val_loss: float
    val_perplexity: float
    bigram_perplexity: float
    bigram_k: float
    epochs: int  # epochs run
    best_epoch: int
    train_seconds: float
    history: list[dict[str, float]] = field(default_factory=list)
    stopped: str = "early stopping"  # or "max epochs", "time budget"

    def metrics(self) -> dict[str, Any]:
        return {
            "val_loss": round(self.val_loss, 5),
            "val_perplexity": round(self.val_perplexity, 4),
            "bigram_perplexity": round(self.bigram_perplexity, 4),
            "bigram_k": self.bigram_k,
            "epochs": self.epochs,
            "best_epoch": self.best_epoch,
            "train_seconds": round(self.train_seconds, 2),
            "stopped": self.stopped,
            "train_names": len(self.train_names),
            "val_names": len(self.val_names),
        }


def split_names(
    names: Sequence[str], seed: int, fraction: float = VAL_FRACTION
) -> tuple[list[str], list[str]]:
    """(train, validation): a seeded shuffle, ``fraction`` of the names (at least one) held out."""
    order = np.random.default_rng(seed).permutation(len(names))
    n_val = max(1, round(len(names) * fraction))
    val = sorted(names[i] for i in order[:n_val])
    train = [names[i] for i in order[n_val:]]
    return train, val


# --- the baseline -----------------------------------------------------------------------------


def bigram_log_likelihoods(
    train: Sequence[str], val: Sequence[str], vocab: Vocabulary, k: float
) -> np.ndarray:
    """log p of every predicted token of ``val`` under an add-k character bigram model
    counted on ``train`` (contexts: start + characters; outcomes: characters + end)."""
    index = vocab.index()
    counts = np.zeros((vocab.size, vocab.size))
    for name in train:
        seq = [BOS, *(index[c] for c in name), EOS]
        for a, b in itertools.pairwise(seq):
            counts[a, b] += 1
    outcomes = np.ones(vocab.size, dtype=bool)
    outcomes[[PAD, BOS]] = False
    smoothed = (counts + k) * outcomes
    with np.errstate(divide="ignore"):  # padding and start are never outcomes: log 0
        logp = np.log(smoothed / smoothed.sum(axis=1, keepdims=True))
    out: list[float] = []
    for name in val:
        seq = [BOS, *(index[c] for c in name), EOS]
        out.extend(logp[a, b] for a, b in itertools.pairwise(seq))
    return np.array(out)


def bigram_perplexity(
    train: Sequence[str], val: Sequence[str], vocab: Vocabulary
) -> tuple[float, float]:
    """(perplexity on ``val``, k) of the best add-k bigram model of the grid."""
    best = min(
        (float(np.exp(-bigram_log_likelihoods(train, val, vocab, k).mean())), k)
        for k in BIGRAM_K_GRID
    )
    return best


# --- the network ------------------------------------------------------------------------------


def _batches(
    encoded: list[list[int]], batch_size: int, rng: np.random.Generator | None
) -> list[tuple[np.ndarray, np.ndarray]]:
    order = rng.permutation(len(encoded)) if rng is not None else np.arange(len(encoded))
    out = []
    for start in range(0, len(order), batch_size):
        chunk = [encoded[i] for i in order[start : start + batch_size]]
        longest = max(len(e) for e in chunk) + 1
        inputs = np.full((len(chunk), longest), PAD, dtype=np.int64)
        targets = np.full((len(chunk), longest), PAD, dtype=np.int64)
        for i, e in enumerate(chunk):
            inputs[i, : len(e) + 1] = [BOS, *e]
            targets[i, : len(e) + 1] = [*e, EOS]
        out.append((inputs, targets))
    return out


def fit(
    names: Sequence[str],
    params: HyperParameters | None = None,
    *,
    progress: Callable[[int, int, float], None] | None = None,
) -> FitResult:
    """Train the GRU on ``names`` (normalised), holding 10% out; returns the best epoch's
    weights as a numpy :class:`CharGRU` and the figures. ``progress(epoch, max_epochs,
    val_loss)`` is called after every epoch."""
    try:
        import torch
    except ImportError as exc:  # pragma: no cover - torch is an optional extra
        from lookalike.errors import ModelUnavailable

        raise ModelUnavailable(
            "Training the name generator needs torch: pip install 'lookalike[torch]'.",
            code="names.torch_missing",
        ) from exc

    params = params or HyperParameters()
    threads = torch.get_num_threads()
    torch.set_num_threads(params.threads)
    try:
        return _fit(names, params, progress)
    finally:
        torch.set_num_threads(threads)


def _fit(
    names: Sequence[str],
    params: HyperParameters,
    progress: Callable[[int, int, float], None] | None,
) -> FitResult:
    import torch
    from torch import nn

    started = time.perf_counter()
    torch.manual_seed(params.seed)
    rng = np.random.default_rng(params.seed)
    train_names, val_names = split_names(list(names), params.seed)
    vocab = Vocabulary.of(list(names))
    bigram_ppl, bigram_k = bigram_perplexity(train_names, val_names, vocab)
    train_enc = [vocab.encode(n) for n in train_names]
    val_batches = _batches([vocab.encode(n) for n in val_names], 256, None)

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embedding = nn.Embedding(vocab.size, params.embedding)
            self.gru = nn.GRU(params.embedding, params.hidden, batch_first=True)
            self.dropout = nn.Dropout(params.dropout)
            self.out = nn.Linear(params.hidden, vocab.size)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            states, _ = self.gru(self.dropout(self.embedding(x)))
            logits: torch.Tensor = self.out(self.dropout(states))
            return logits

    net = Net()
    optimizer = torch.optim.Adam(
        net.parameters(), lr=params.learning_rate, weight_decay=params.weight_decay
    )
    loss_fn = nn.CrossEntropyLoss(ignore_index=PAD, reduction="sum")

    def validation_loss() -> float:
        net.eval()
        total, count = 0.0, 0
        with torch.no_grad():
            for inputs, targets in val_batches:
                logits = net(torch.from_numpy(inputs))
                logits[..., PAD] = -math.inf  # never predicted (as in serving)
                logits[..., BOS] = -math.inf
                t = torch.from_numpy(targets)
                total += float(loss_fn(logits.reshape(-1, vocab.size), t.reshape(-1)))
                count += int((t != PAD).sum())
        return total / count

    best_loss, best_epoch, best_state = math.inf, 0, None
    history: list[dict[str, float]] = []
    stopped = "max epochs"
    epoch = 0
    for epoch in range(1, params.max_epochs + 1):
        net.train()
        total, count = 0.0, 0
        for inputs, targets in _batches(train_enc, params.batch_size, rng):
            t = torch.from_numpy(targets)
            logits = net(torch.from_numpy(inputs))
            loss = loss_fn(logits.reshape(-1, vocab.size), t.reshape(-1))
            n = int((t != PAD).sum())
            optimizer.zero_grad()
            (loss / n).backward()
            nn.utils.clip_grad_norm_(net.parameters(), params.clip)
            optimizer.step()
            total += float(loss.detach())
            count += n
        val = validation_loss()
        history.append({"epoch": epoch, "train_loss": total / count, "val_loss": val})
        if progress is not None:
            progress(epoch, params.max_epochs, val)
        if val < best_loss - 1e-4:
            best_loss, best_epoch = val, epoch
            best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
        elif epoch - best_epoch >= params.patience:
            stopped = "early stopping"
            break
        if time.perf_counter() - started > params.max_seconds:
            stopped = "time budget"
            break
    assert best_state is not None
    weights = {k: v.numpy() for k, v in best_state.items()}
    model = CharGRU(
        vocab,
        embedding=weights["embedding.weight"],
        w_ih=weights["gru.weight_ih_l0"],
        w_hh=weights["gru.weight_hh_l0"],
        b_ih=weights["gru.bias_ih_l0"],
        b_hh=weights["gru.bias_hh_l0"],
        w_out=weights["out.weight"],
        b_out=weights["out.bias"],
    )
    return FitResult(
        model=model,
        train_names=train_names,
        val_names=val_names,
        val_loss=best_loss,
        val_perplexity=math.exp(best_loss),
        bigram_perplexity=bigram_ppl,
        bigram_k=bigram_k,
        epochs=epoch,
        best_epoch=best_epoch,
        train_seconds=time.perf_counter() - started,
        history=history,
        stopped=stopped,
    )
