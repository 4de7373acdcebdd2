"""Nearest-neighbour search (``scoring.index``): faiss IVF-Flat against exact search on
clustered unit vectors like faces (a few photos per identity), adding and removing by id."""

from __future__ import annotations

import numpy as np
import pytest

from lookalike.scoring.index import ExactIndex, IvfIndex, new_index


def faces(identities: int, per: int, dim: int = 64, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(identities, dim))
    owner = np.repeat(np.arange(identities), per)
    x = centres[owner] + 0.5 * rng.normal(size=(len(owner), dim))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32), owner


def test_ivf_finds_what_exact_search_finds() -> None:
    x, _ = faces(2000, 10)
    ids = np.arange(len(x), dtype=np.int64) + 1000  # ids need not be positions
    exact, ivf = ExactIndex(x.shape[1]), IvfIndex(x.shape[1])
    exact.add(ids, x)
    ivf.add(ids, x)
    assert len(exact) == len(ivf) == 20_000
    queries, _ = faces(2000, 1, seed=0)  # near the identities' centres
    _, want = exact.search(queries[:200], 5)
    sims, got = ivf.search(queries[:200], 5)
    recall = np.mean([len(set(a) & set(b)) / 5 for a, b in zip(want, got, strict=True)])
    assert recall >= 0.95
    assert np.all(np.diff(sims, axis=1) <= 1e-6)  # best first


@pytest.mark.parametrize("kind", [ExactIndex, IvfIndex])
def test_removed_vectors_are_never_found_again(kind: type) -> None:
    x, _ = faces(300, 10)
    index = kind(x.shape[1])
    index.add(np.arange(len(x)), x)
    _, before = index.search(x[:1], 3)
    assert before[0][0] == 0  # a vector finds itself first
    index.remove(np.arange(10))  # identity 0's photos
    _, after = index.search(x[:10], 5)
    assert not np.isin(after, np.arange(10)).any() and len(index) == len(x) - 10
    index.add(np.array([99_999]), x[:1])  # added again under a new id
    _, again = index.search(x[:1], 1)
    assert again[0][0] == 99_999


def test_a_small_set_pads_its_answer_and_uses_exact_search() -> None:
    x, _ = faces(1, 3)
    index = new_index(x.shape[1], expected=3, min_size=50_000)
    assert isinstance(index, ExactIndex)
    index.add(np.arange(3), x)
    sims, ids = index.search(x[:1], 5)
    assert ids[0].tolist()[3:] == [-1, -1] and np.isneginf(sims[0][3:]).all()
    assert isinstance(new_index(x.shape[1], expected=60_000, min_size=50_000), IvfIndex)
    tiny = IvfIndex(x.shape[1])  # fewer vectors than faiss trains a cell on: one cell
    tiny.add(np.arange(3), x)
    assert tiny.search(x[:1], 1)[1][0][0] == 0
