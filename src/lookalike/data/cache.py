"""Embedding cache keyed by (image SHA-256, backbone id@version).

SQLite (standard library) in WAL mode: one file, safe with several processes, and a lookup
of thousands of vectors is one query instead of thousands of small files. Face facts found
while embedding (faces found, which one was used, its box) are kept beside the vector so a
cache hit needs no detection either.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lookalike.datadir import DataDir


@dataclass
class CachedEmbedding:
    vector: np.ndarray
    meta: dict[str, Any]


class EmbeddingCache:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        with self._conn() as conn:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS embeddings ("
                " backbone TEXT NOT NULL, sha256 TEXT NOT NULL, dim INTEGER NOT NULL,"
                " vector BLOB NOT NULL, meta TEXT NOT NULL,"
                " PRIMARY KEY (backbone, sha256))"
            )

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=30)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            self._local.conn = conn
        return conn

    def get_many(self, backbone: str, hashes: list[str]) -> dict[str, CachedEmbedding]:
        out: dict[str, CachedEmbedding] = {}
        conn = self._conn()
        for start in range(0, len(hashes), 500):  # SQLite's bound-parameter limit
            chunk = hashes[start : start + 500]
            marks = ",".join("?" * len(chunk))
            rows = conn.execute(
                f"SELECT sha256, dim, vector, meta FROM embeddings"
                f" WHERE backbone = ? AND sha256 IN ({marks})",
                [backbone, *chunk],
            )
            for sha, dim, blob, meta in rows:
                vec = np.frombuffer(blob, dtype=np.float32)
                if vec.shape == (dim,):
                    out[sha] = CachedEmbedding(vec.copy(), json.loads(meta))
        return out

    def get(self, backbone: str, sha256: str) -> CachedEmbedding | None:
        return self.get_many(backbone, [sha256]).get(sha256)

    def put(self, backbone: str, sha256: str, vector: np.ndarray, meta: dict[str, Any]) -> None:
        vec = np.ascontiguousarray(vector, dtype=np.float32)
        with self._conn() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO embeddings VALUES (?, ?, ?, ?, ?)",
                (backbone, sha256, vec.shape[0], vec.tobytes(), json.dumps(meta)),
            )

    def delete(self, sha256: str) -> int:
        """Forget every backbone's embedding of an image (its owner deleted it)."""
        with self._conn() as conn:
            return conn.execute("DELETE FROM embeddings WHERE sha256 = ?", (sha256,)).rowcount

    def count(self, backbone: str | None = None) -> int:
        if backbone is None:
            row = self._conn().execute("SELECT COUNT(*) FROM embeddings").fetchone()
        else:
            row = (
                self._conn()
                .execute("SELECT COUNT(*) FROM embeddings WHERE backbone = ?", (backbone,))
                .fetchone()
            )
        return int(row[0])


def embedding_cache(data_dir: DataDir) -> EmbeddingCache:
    """The data dir's embedding cache: imports, training, the promotion gate and visitors'
    photos all share this one file."""
    return EmbeddingCache(data_dir.embedding_cache)
