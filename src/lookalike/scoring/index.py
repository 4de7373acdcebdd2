"""Nearest-neighbour search over unit embeddings (inner product = cosine similarity): exact
for small sets, a faiss IVF-Flat index for large ones, both answering the same way.

Why IVF-Flat (``bench/gallery.py``: 1M synthetic 128-d faces around ORL's, 2 cores): at
nprobe 16 one query's top 5 takes about 0.5 ms with recall@5 0.99 against exact search, the
index builds in seconds and holds little beyond the vectors; HNSW (M 32, efSearch 128) was
as fast at recall 0.975 but took minutes to build, more memory, and cannot remove a vector,
while a contributor who deletes themselves must leave the index at once.

faiss is the ``index`` extra: without it every set is searched exactly (numpy), which is
what small galleries use anyway (``index_min_size``).

An ``IvfIndex`` turns into bytes and back (faiss's own format: the trained cells, the
vectors, their ids and nprobe), so processes can share one built index instead of each
running k-means over every vector (``lookalike.enrolled``'s snapshots).
"""

from __future__ import annotations

import math
import threading
from typing import Any, Protocol

import numpy as np

DEFAULT_NPROBE = 16


class VectorIndex(Protocol):
    dim: int

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None: ...

    def remove(self, ids: np.ndarray) -> None: ...

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]: ...

    def __len__(self) -> int: ...


class ExactIndex:
    """Every vector compared (the reference the approximate index is measured against).
    Ids and vectors are swapped together, so a search never sees one without the other."""

    def __init__(self, dim: int) -> None:
        self.dim = dim
        self._data = (np.zeros(0, np.int64), np.zeros((0, dim), np.float32))

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        old_ids, old_vectors = self._data
        self._data = (
            np.concatenate([old_ids, np.asarray(ids, np.int64)]),
            np.concatenate([old_vectors, np.asarray(vectors, np.float32)]),
        )

    def remove(self, ids: np.ndarray) -> None:
        old_ids, old_vectors = self._data
        keep = ~np.isin(old_ids, np.asarray(ids, np.int64))
        self._data = (old_ids[keep], old_vectors[keep])

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` most similar vectors of each query: (similarities, ids), best first;
        id -1 and similarity -inf pad a set smaller than ``k``."""
        queries = np.atleast_2d(np.asarray(queries, np.float32))
        all_ids, vectors = self._data
        n = len(all_ids)
        sims_out = np.full((len(queries), k), -np.inf, np.float32)
        ids_out = np.full((len(queries), k), -1, np.int64)
        if n == 0 or k <= 0:
            return sims_out, ids_out
        sims = queries @ vectors.T
        top = min(k, n)
        part = np.argpartition(-sims, top - 1, axis=1)[:, :top]
        order = np.take_along_axis(-sims, part, axis=1).argsort(axis=1, kind="stable")
        best = np.take_along_axis(part, order, axis=1)
        sims_out[:, :top] = np.take_along_axis(sims, best, axis=1)
        ids_out[:, :top] = all_ids[best]
        return sims_out, ids_out

    def __len__(self) -> int:
        return len(self._data[0])


class IvfIndex:
    """faiss IVF-Flat over inner products: the vectors are split into ``nlist`` cells by
    k-means (trained once, on the first vectors added), and a query looks into the
    ``nprobe`` nearest cells. Adds and removes by id at any time; thread-safe."""

    def __init__(self, dim: int, nprobe: int = DEFAULT_NPROBE) -> None:
        self.dim = dim
        self.nprobe = nprobe
        self._index: Any = None  # a faiss.IndexIVFFlat once vectors arrive
        self._lock = threading.Lock()

    def _build(self, vectors: np.ndarray) -> Any:
        import faiss

        # About sqrt(n) cells, each trained on at least 39 vectors (faiss's minimum).
        nlist = max(1, min(int(math.sqrt(len(vectors))), len(vectors) // 39))
        quantizer = faiss.IndexFlatIP(self.dim)
        index = faiss.IndexIVFFlat(quantizer, self.dim, nlist, faiss.METRIC_INNER_PRODUCT)
        rng = np.random.default_rng(0)
        sample = vectors[rng.choice(len(vectors), min(len(vectors), 64 * nlist), replace=False)]
        index.train(sample)
        index.nprobe = self.nprobe  # faiss's wrapper keeps the quantizer referenced
        return index

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        vectors = np.ascontiguousarray(vectors, np.float32)
        with self._lock:
            if self._index is None:
                if not len(vectors):
                    return
                self._index = self._build(vectors)
            self._index.add_with_ids(vectors, np.ascontiguousarray(ids, np.int64))

    def remove(self, ids: np.ndarray) -> None:
        with self._lock:
            if self._index is not None and len(ids):
                self._index.remove_ids(np.ascontiguousarray(ids, np.int64))

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        queries = np.ascontiguousarray(np.atleast_2d(queries), np.float32)
        if self._index is None:
            return ExactIndex(self.dim).search(queries, k)
        sims, ids = self._index.search(queries, k)
        sims = np.where(ids < 0, -np.inf, sims).astype(np.float32)
        return sims, ids.astype(np.int64)

    def __len__(self) -> int:
        return 0 if self._index is None else int(self._index.ntotal)

    def to_bytes(self) -> bytes:
        """The index in faiss's serialised form (b"" before any vector arrived), taken under
        the lock so that no add or remove lands halfway through."""
        import faiss

        with self._lock:
            if self._index is None:
                return b""
            return bytes(faiss.serialize_index(self._index))

    @classmethod
    def from_bytes(cls, data: bytes, dim: int, nprobe: int | None = None) -> IvfIndex:
        """The index ``to_bytes`` made, searching ``nprobe`` cells (None: as it did when
        saved). ``ValueError`` when ``data`` is not an inner-product IVF-Flat index of
        ``dim`` dimensions (faiss's own parse errors are raised as they come)."""
        import faiss

        restored = cls(dim, DEFAULT_NPROBE if nprobe is None else nprobe)
        if not data:
            return restored
        index = faiss.deserialize_index(np.frombuffer(data, np.uint8))
        if not isinstance(index, faiss.IndexIVFFlat):
            raise ValueError(f"not an IVF-Flat index: {type(index).__name__}")
        if index.d != dim or index.metric_type != faiss.METRIC_INNER_PRODUCT:
            raise ValueError(f"an index of {index.d} dimensions or another metric, not {dim}")
        if nprobe is None:
            restored.nprobe = int(index.nprobe)
        index.nprobe = restored.nprobe
        restored._index = index
        return restored


def faiss_available() -> bool:
    try:
        import faiss  # noqa: F401
    except ImportError:
        return False
    return True


def new_index(dim: int, expected: int, min_size: int, nprobe: int = DEFAULT_NPROBE) -> VectorIndex:
    """An IVF index for a set of at least ``min_size`` vectors when faiss is installed, else
    an exact one."""
    if expected >= min_size > 0 and faiss_available():
        return IvfIndex(dim, nprobe)
    return ExactIndex(dim)


def index_of(vectors: np.ndarray, min_size: int) -> VectorIndex:
    """``new_index`` holding ``vectors`` under their row numbers (a model's gallery, a gallery
    head's photos: searched by row)."""
    index = new_index(vectors.shape[1], len(vectors), min_size)
    index.add(np.arange(len(vectors), dtype=np.int64), vectors)
    return index
