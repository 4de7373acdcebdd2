"""The embedding cache: exact float32 round trips, chunked lookups, isolation, sharing a file."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from lookalike.data.cache import EmbeddingCache

FACE = "face@1"
IMAGE = "image@1"


def sha(i: int) -> str:
    return hashlib.sha256(str(i).encode()).hexdigest()


def unit_vectors(n: int, dim: int, seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.fixture
def cache(tmp_path: Path) -> EmbeddingCache:
    return EmbeddingCache(tmp_path / "cache" / "embeddings.sqlite")


def test_put_get_round_trip_is_exact_float32(cache: EmbeddingCache) -> None:
    vec = unit_vectors(1, 128)[0]
    vec[0] = np.float32(1e-38)  # a subnormal float32 survives bit for bit
    meta = {"faces_found": 2, "face_index": 0, "face_box": [1.5, 2.0, 30.1, 40.0], "name": "Zoë"}
    cache.put(FACE, sha(1), vec, meta)
    hit = cache.get(FACE, sha(1))
    assert hit is not None
    assert hit.vector.dtype == np.float32
    assert hit.vector.shape == (128,)
    assert np.array_equal(hit.vector, vec)
    assert hit.meta == meta
    hit.vector[0] = 5.0  # the returned vector is a writable copy
    again = cache.get(FACE, sha(1))
    assert again is not None and again.vector[0] == vec[0]


def test_float64_input_is_stored_as_float32(cache: EmbeddingCache) -> None:
    vec64 = unit_vectors(1, 16)[0].astype(np.float64) + 1e-12
    cache.put(FACE, sha(1), vec64, {})
    hit = cache.get(FACE, sha(1))
    assert hit is not None
    assert np.array_equal(hit.vector, vec64.astype(np.float32))


def test_missing_entry_is_none(cache: EmbeddingCache) -> None:
    assert cache.get(FACE, sha(1)) is None
    assert cache.get_many(FACE, []) == {}


def test_put_replaces_an_entry(cache: EmbeddingCache) -> None:
    a, b = unit_vectors(2, 8)
    cache.put(FACE, sha(1), a, {"v": 1})
    cache.put(FACE, sha(1), b, {"v": 2})
    hit = cache.get(FACE, sha(1))
    assert hit is not None and np.array_equal(hit.vector, b) and hit.meta == {"v": 2}
    assert cache.count() == 1


def test_get_many_beyond_the_sqlite_parameter_limit(cache: EmbeddingCache) -> None:
    vectors = unit_vectors(1203, 4)
    for i, vec in enumerate(vectors):
        cache.put(FACE, sha(i), vec, {"i": i})
    # More hashes than one statement may bind on this SQLite build (misses count too).
    limit = sqlite3.connect(":memory:").getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
    misses = [f"{i:064x}" for i in range(limit + 10)]
    wanted = [sha(i) for i in range(1203)] + misses
    hits = cache.get_many(FACE, wanted)
    assert len(hits) == 1203
    for i in (0, 499, 500, 501, 999, 1000, 1202):  # both sides of each 500-hash chunk boundary
        assert np.array_equal(hits[sha(i)].vector, vectors[i])
        assert hits[sha(i)].meta == {"i": i}
    assert misses[0] not in hits


def test_backbones_are_isolated(cache: EmbeddingCache) -> None:
    face_vec, image_vec = unit_vectors(1, 128)[0], unit_vectors(1, 64, seed=1)[0]
    cache.put(FACE, sha(1), face_vec, {"b": "face"})
    cache.put(IMAGE, sha(1), image_vec, {"b": "image"})
    cache.put(IMAGE, sha(2), image_vec, {"b": "image"})
    face_hit, image_hit = cache.get(FACE, sha(1)), cache.get(IMAGE, sha(1))
    assert face_hit is not None and np.array_equal(face_hit.vector, face_vec)
    assert image_hit is not None and np.array_equal(image_hit.vector, image_vec)
    assert cache.get(FACE, sha(2)) is None
    assert cache.get("face@2", sha(1)) is None  # another version of the same backbone
    assert set(cache.get_many(FACE, [sha(1), sha(2)])) == {sha(1)}
    assert (cache.count(FACE), cache.count(IMAGE), cache.count()) == (1, 2, 3)


def test_two_cache_objects_on_one_file_see_each_others_writes(tmp_path: Path) -> None:
    path = tmp_path / "shared.sqlite"
    first = EmbeddingCache(path)
    second = EmbeddingCache(path)  # as a second process would open it
    a, b = unit_vectors(2, 32)
    assert second.count() == 0  # a read before the other side writes must not pin a snapshot
    first.put(FACE, sha(1), a, {"by": "first"})
    hit = second.get(FACE, sha(1))
    assert hit is not None and np.array_equal(hit.vector, a) and hit.meta == {"by": "first"}
    second.put(FACE, sha(2), b, {"by": "second"})
    assert set(first.get_many(FACE, [sha(1), sha(2)])) == {sha(1), sha(2)}
    assert first.count() == second.count() == 2
    # A third object opened later finds everything on disk.
    assert EmbeddingCache(path).count(FACE) == 2


def test_a_vector_whose_blob_does_not_match_its_dim_is_ignored(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"
    cache = EmbeddingCache(path)
    good = unit_vectors(1, 8)[0]
    cache.put(FACE, sha(1), good, {})
    cache.put(FACE, sha(2), good, {})
    # Damage one row as a crash or a foreign writer might: 8 floats declared, 7 stored.
    with sqlite3.connect(path) as conn:
        conn.execute(
            "UPDATE embeddings SET vector = ? WHERE sha256 = ?", (good[:7].tobytes(), sha(2))
        )
    assert cache.get(FACE, sha(2)) is None
    assert set(cache.get_many(FACE, [sha(1), sha(2)])) == {sha(1)}
    hit = cache.get(FACE, sha(1))
    assert hit is not None and np.array_equal(hit.vector, good)


def test_the_cache_creates_its_folder(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "embeddings.sqlite"
    EmbeddingCache(path).put(FACE, sha(1), unit_vectors(1, 4)[0], {})
    assert path.is_file()
