"""The enrolled contributors, matchable the moment processing ends: "this is X" for a photo
whose identity score against X's crops passes the serving model's threshold.

Their crops' embeddings live in the database (``contributions.embeddings``); each process
keeps them in a search index per embedding space (``scoring.index``: exact for small
galleries, faiss IVF-Flat from ``enrolled_index_min_size`` crops on), kept up to date
incrementally: one small aggregate query per request says whether anything changed; if so,
the rows' ids and change times are compared with what the index holds, deleted or changed
contributors leave it at once, and only new ones' embeddings are read.

A contributor's score is the mean of their top-k crop similarities, as the gallery head
scores a class. The index returns the ``CANDIDATES`` nearest crops; a contributor with fewer
than k of them there has the rest counted at the farthest candidate's similarity (an upper
bound of what is missing: a contributor far from the photo never reaches the threshold).
"""

from __future__ import annotations

import threading
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from lookalike.db import Contribution
from lookalike.scoring.index import VectorIndex, new_index

ENROLLED = "enrolled"  # lookalike.contributions.ENROLLED (imported here would be a cycle)
CANDIDATES = 64  # nearest crops looked at per query
FETCH = 500  # contributions whose embeddings are read at once


@dataclass(frozen=True)
class EnrolledMatch:
    contribution_id: str
    name: str
    score: float  # the mean of the top-k similarities to their crops
    crop: int  # their crop closest to the query (``face-NN.jpg``)
    crop_similarity: float


@dataclass
class Space:
    """One embedding space's contributors and their crops in an index."""

    index: VectorIndex | None = None
    names: dict[str, str] = field(default_factory=dict)  # contribution id -> display name
    versions: dict[str, datetime] = field(default_factory=dict)  # id -> updated_at indexed
    rows: dict[str, np.ndarray] = field(default_factory=dict)  # id -> its crops' index ids
    row_owner: list[str] = field(default_factory=list)  # index id -> contribution id
    row_crop: list[int] = field(default_factory=list)  # index id -> crop number


class EnrolledGallery:
    def __init__(self, engine: Engine, top_k: int, index_min_size: int = 50_000) -> None:
        self.engine = engine
        self.top_k = top_k
        self.index_min_size = index_min_size
        self._lock = threading.Lock()
        self._spaces: dict[str, Space] = {}
        self._stamp: tuple[int, object] | None = None
        self._live: frozenset[str] = frozenset()

    def _refresh(self) -> None:
        live = (Contribution.status == ENROLLED, Contribution.approved.is_(True))
        with Session(self.engine) as session:
            count, last = session.execute(
                select(func.count(), func.max(Contribution.updated_at)).where(*live)
            ).one()
            stamp = (int(count), last)
            if stamp == self._stamp:
                return
            with self._lock:
                if stamp == self._stamp:
                    return
                rows = session.execute(
                    select(
                        Contribution.id,
                        Contribution.display_name,
                        Contribution.updated_at,
                        Contribution.backbone_key,
                        Contribution.crops,
                    ).where(*live)
                ).all()
                self._live = frozenset(r[0] for r in rows)
                by_space: dict[str, list[tuple[str, str, datetime, int]]] = {}
                for cid, name, updated, key, crops in rows:
                    if key and crops:
                        by_space.setdefault(key, []).append((cid, name, updated, crops))
                for key in set(self._spaces) | set(by_space):
                    self._update_space(session, key, by_space.get(key, []))
                self._stamp = stamp

    def _update_space(
        self, session: Session, key: str, rows: list[tuple[str, str, datetime, int]]
    ) -> None:
        space = self._spaces.setdefault(key, Space())
        current = {cid: updated for cid, _, updated, _ in rows}
        gone = [cid for cid, at in space.versions.items() if current.get(cid) != at]
        if gone and space.index is not None:
            space.index.remove(np.concatenate([space.rows[cid] for cid in gone]))
        for cid in gone:
            del space.versions[cid], space.rows[cid]
            space.names.pop(cid, None)
        new = [r for r in rows if r[0] not in space.versions]
        for start in range(0, len(new), FETCH):
            chunk = new[start : start + FETCH]
            blobs = dict(
                session.execute(
                    select(Contribution.id, Contribution.embeddings).where(
                        Contribution.id.in_([r[0] for r in chunk])
                    )
                ).all()
            )
            for cid, name, updated, crops in chunk:
                blob = blobs.get(cid)
                if not blob:
                    continue
                vectors = np.frombuffer(blob, dtype=np.float32).reshape(crops, -1)
                if space.index is None:
                    expected = sum(r[3] for r in rows)
                    space.index = new_index(vectors.shape[1], expected, self.index_min_size)
                ids = np.arange(len(space.row_owner), len(space.row_owner) + crops, dtype=np.int64)
                space.index.add(ids, vectors)
                space.row_owner += [cid] * crops
                space.row_crop += list(range(crops))
                space.rows[cid], space.versions[cid], space.names[cid] = ids, updated, name

    def withheld(self, contributors: dict[str, str], backbone_key: str) -> set[str]:
        """The classes of ``contributors`` (a model's label -> contribution id) whose
        contribution was deleted (or expired) since the model was trained."""
        if not contributors:
            return set()
        self._refresh()
        live = self._live
        return {label for label, cid in contributors.items() if cid not in live}

    def match(
        self, query: np.ndarray, backbone_key: str, skip: Collection[str] = ()
    ) -> EnrolledMatch | None:
        """The contributor ``query`` (a unit embedding) scores highest, with that score;
        None when nobody is enrolled in this space. ``skip``: contribution ids the model
        already knows as classes."""
        self._refresh()
        space = self._spaces.get(backbone_key)
        if space is None or space.index is None or not space.versions:
            return None
        if space.index.dim != query.shape[-1]:
            return None
        return best_match(space, query, skip, self.top_k)


def best_match(
    space: Space, query: np.ndarray, skip: Collection[str], top_k: int
) -> EnrolledMatch | None:
    """The contributor of ``space`` with the best score among the nearest crops' owners."""
    assert space.index is not None
    sims, ids = space.index.search(query.reshape(1, -1), CANDIDATES)
    finite = np.isfinite(sims[0])
    floor = float(sims[0][finite].min()) if finite.any() else -1.0
    found: dict[str, list[tuple[float, int]]] = {}
    for sim, row in zip(sims[0].tolist(), ids[0].tolist(), strict=True):
        if row < 0:
            continue
        cid = space.row_owner[row]
        if cid in skip or cid not in space.versions:
            continue
        found.setdefault(cid, []).append((sim, space.row_crop[row]))
    best: EnrolledMatch | None = None
    for cid, hits in found.items():
        top = sorted((s for s, _ in hits), reverse=True)[:top_k]
        top += [floor] * (min(top_k, len(space.rows[cid])) - len(top))
        score = float(np.mean(top))
        if best is None or score > best.score:
            sim, crop = max(hits)
            best = EnrolledMatch(cid, space.names[cid], score, crop, sim)
    return best
