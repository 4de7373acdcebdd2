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

Shared through the object store: with a remote store (``storage_url``) a space searched by
faiss is published as a snapshot, ``indexes/enrolled/<backbone key slug>-<hash>.npz`` (npz,
no pickle: the faiss index's bytes, each index row's contributor and crop, and every indexed
contributor's name and ``updated_at``), after a cold build and again once crops added or
removed since the last snapshot reach ``PUBLISH_FRACTION`` of the index, from a background
thread. A process starting cold loads it (if it is for this backbone key and dimension) and
the incremental update then applies what changed in the database since: no k-means, and only
newer contributors' embeddings are read. A missing, damaged or foreign snapshot, or a store
that cannot be reached, is logged and the index built from the database as before.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import re
import threading
import time
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from lookalike.db import Contribution
from lookalike.errors import NotFound
from lookalike.scoring.index import IvfIndex, VectorIndex, faiss_available, new_index
from lookalike.storage import ObjectStore, StorageUnavailable

log = logging.getLogger("lookalike.enrolled")

ENROLLED = "enrolled"  # lookalike.contributions.ENROLLED (imported here would be a cycle)
CANDIDATES = 64  # nearest crops looked at per query
FETCH = 500  # contributions whose embeddings are read at once

SNAPSHOT_PREFIX = "indexes/enrolled/"
SNAPSHOT_FORMAT = 1
# A snapshot is republished once the crops added or removed since the last one reach this
# share of the index: a cold start then reads at most about a tenth of the gallery from the
# database, while a 1M-crop gallery (about 0.5 GB of snapshot) is uploaded once per ~100k
# changed crops rather than on every enrolment.
PUBLISH_FRACTION = 0.1
PUBLISH_RETRY_S = 300.0  # after a failed upload: the store is probably down, do not hammer it


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
    changed: int = 0  # crops added or removed since the last snapshot (published or loaded)


def snapshot_key(backbone_key: str) -> str:
    """The object key of a space's snapshot: backbone keys hold characters object keys
    refuse ('@', '+', ':'), so a readable slug plus a hash of the real key."""
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", backbone_key).strip(".-")[:48]
    digest = hashlib.sha256(backbone_key.encode()).hexdigest()[:16]
    return f"{SNAPSHOT_PREFIX}{slug}-{digest}.npz" if slug else f"{SNAPSHOT_PREFIX}{digest}.npz"


@dataclass
class Snapshot:
    """A space's state at one moment, ready to be written out without holding any lock."""

    backbone_key: str
    dim: int
    nprobe: int
    index: bytes  # IvfIndex.to_bytes
    row_owner: list[str]
    row_crop: list[int]
    rows: dict[str, np.ndarray]
    names: dict[str, str]
    versions: dict[str, datetime]
    changed: int

    @classmethod
    def of(cls, backbone_key: str, space: Space) -> Snapshot:
        """Copies of ``space`` (the caller holds the lock that guards its updates)."""
        if not isinstance(space.index, IvfIndex):
            raise TypeError("only a faiss index is shared")
        index = space.index
        return cls(
            backbone_key,
            index.dim,
            index.nprobe,
            index.to_bytes(),
            list(space.row_owner),
            list(space.row_crop),
            dict(space.rows),
            dict(space.names),
            dict(space.versions),
            space.changed,
        )

    def encode(self) -> bytes:
        """npz: ``meta`` (JSON), ``index`` (faiss bytes), ``owner`` (index id -> position in
        meta's contributors, -1 for a row that left) and ``crop`` (index id -> crop number)."""
        live = list(self.versions)
        owner = np.full(len(self.row_owner), -1, np.int32)
        if live:
            ids = np.concatenate([self.rows[cid] for cid in live])
            owner[ids] = np.repeat(np.arange(len(live)), [len(self.rows[c]) for c in live])
        meta = {
            "format": SNAPSHOT_FORMAT,
            "backbone_key": self.backbone_key,
            "dim": self.dim,
            "nprobe": self.nprobe,
            "contributors": [
                [cid, self.names[cid], self.versions[cid].isoformat()] for cid in live
            ],
        }
        out = io.BytesIO()
        np.savez(
            out,
            meta=np.frombuffer(json.dumps(meta).encode(), np.uint8),
            index=np.frombuffer(self.index, np.uint8),
            owner=owner,
            crop=np.asarray(self.row_crop, np.int32),
        )
        return out.getvalue()


def decode_snapshot(data: bytes, backbone_key: str, dim: int) -> Space:
    """The space a snapshot holds; ``ValueError`` when it is for another backbone key or
    dimension, or inconsistent (a damaged zip fails its CRC check in numpy)."""
    with np.load(io.BytesIO(data), allow_pickle=False) as z:
        meta = json.loads(z["meta"].tobytes())
        if meta.get("format") != SNAPSHOT_FORMAT:
            raise ValueError(f"snapshot format {meta.get('format')!r}")
        if meta.get("backbone_key") != backbone_key or meta.get("dim") != dim:
            raise ValueError(f"a snapshot of {meta.get('backbone_key')!r}, {meta.get('dim')}-d")
        owner, crop = z["owner"].astype(np.int64), z["crop"]
        index = IvfIndex.from_bytes(z["index"].tobytes(), dim, int(meta["nprobe"]))
    contributors = meta["contributors"]
    inside = not len(owner) or (owner.min() >= -1 and owner.max() < len(contributors))
    if len(owner) != len(crop) or not inside:
        raise ValueError("rows and contributors disagree")
    counts = np.bincount(owner[owner >= 0], minlength=len(contributors))
    if len(index) != int(counts.sum()) or (len(counts) and int(counts.min()) == 0):
        raise ValueError("the index and its rows disagree")
    order = np.argsort(owner, kind="stable")[len(owner) - int(counts.sum()) :]
    ids = np.split(order, np.cumsum(counts)[:-1]) if len(contributors) else []
    space = Space(index=index)
    space.row_owner = np.array([c[0] for c in contributors] + [""], object)[owner].tolist()
    space.row_crop = crop.tolist()
    for (cid, name, updated), rows in zip(contributors, ids, strict=True):
        space.rows[cid] = rows
        space.names[cid] = name
        space.versions[cid] = datetime.fromisoformat(updated)
    return space


class EnrolledGallery:
    """``store``: where faiss indexes are shared between processes (only a remote one, as
    ``storage_url`` sets: one machine's processes gain little from a local copy)."""

    def __init__(
        self,
        engine: Engine,
        top_k: int,
        index_min_size: int = 50_000,
        store: ObjectStore | None = None,
    ) -> None:
        self.engine = engine
        self.top_k = top_k
        self.index_min_size = index_min_size
        self.store = store if store is not None and store.settings.storage_url else None
        self._lock = threading.Lock()
        self._spaces: dict[str, Space] = {}
        self._stamp: tuple[int, object] | None = None
        self._live: frozenset[str] = frozenset()
        self.embeddings_read = 0  # contributors whose embeddings came from the database
        self._publisher: threading.Thread | None = None
        self._retry_at = 0.0  # monotonic time before which no upload is tried again

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
                self._schedule_publish()

    def _update_space(
        self, session: Session, key: str, rows: list[tuple[str, str, datetime, int]]
    ) -> None:
        space = self._spaces.get(key)
        if space is None:
            space = self._spaces[key] = self._seed(session, key, rows) or Space()
        current = {cid: updated for cid, _, updated, _ in rows}
        gone = [cid for cid, at in space.versions.items() if current.get(cid) != at]
        if gone and space.index is not None:
            space.index.remove(np.concatenate([space.rows[cid] for cid in gone]))
        space.changed += sum(len(space.rows[cid]) for cid in gone)
        for cid in gone:
            del space.versions[cid], space.rows[cid]
            space.names.pop(cid, None)
        new = [r for r in rows if r[0] not in space.versions]
        added: list[tuple[str, str, datetime, np.ndarray]] = []
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
                if blob := blobs.get(cid):
                    vectors = np.frombuffer(blob, dtype=np.float32).reshape(crops, -1)
                    added.append((cid, name, updated, vectors))
        self.embeddings_read += len(added)
        if added:
            self._add(space, added, expected=sum(r[3] for r in rows))

    def _add(
        self, space: Space, added: list[tuple[str, str, datetime, np.ndarray]], expected: int
    ) -> None:
        """Index every new contributor's crops in one call: an IVF index learns its cells from
        the first vectors it gets (one contributor's crops would make a single cell), and an
        exact one would otherwise copy its growing array once per contributor."""
        vectors = np.concatenate([v for *_, v in added])
        if space.index is None:
            space.index = new_index(vectors.shape[1], expected, self.index_min_size)
        first = len(space.row_owner)
        space.index.add(np.arange(first, first + len(vectors), dtype=np.int64), vectors)
        for cid, name, updated, own in added:
            ids = np.arange(len(space.row_owner), len(space.row_owner) + len(own), dtype=np.int64)
            space.row_owner += [cid] * len(own)
            space.row_crop += list(range(len(own)))
            space.rows[cid], space.versions[cid], space.names[cid] = ids, updated, name
        space.changed += len(vectors)

    def _seed(
        self, session: Session, key: str, rows: list[tuple[str, str, datetime, int]]
    ) -> Space | None:
        """The space of ``key``'s snapshot, when one is shared and would be a faiss index
        here too; None to build it from the database."""
        if self.store is None or not rows or not faiss_available():
            return None
        if not sum(r[3] for r in rows) >= self.index_min_size > 0:
            return None
        cid, _, _, crops = rows[0]
        size = session.execute(
            select(func.length(Contribution.embeddings)).where(Contribution.id == cid)
        ).scalar()
        if not size:
            return None
        name = snapshot_key(key)
        try:
            data = self.store.get(name)
        except NotFound:
            return None
        except StorageUnavailable as exc:
            log.warning("enrolled index snapshot %s unreadable, building it: %s", name, exc)
            return None
        try:
            space = decode_snapshot(data, key, int(size) // (4 * crops))
        except Exception as exc:  # whatever is wrong with it, the database has the truth
            log.warning(
                "enrolled index snapshot %s ignored (%s: %s)", name, type(exc).__name__, exc
            )
            return None
        log.info(
            "enrolled index of %s seeded from %s (%d crops)", key, name, len(space.index or ())
        )
        return space

    def _due(self, space: Space) -> bool:
        if not isinstance(space.index, IvfIndex) or space.changed <= 0:
            return False
        return space.changed >= PUBLISH_FRACTION * len(space.index)

    def _schedule_publish(self) -> None:
        """Start uploading the spaces whose snapshot is due (the caller holds the lock). In a
        thread of its own: serialising and uploading a large index takes seconds, which no
        request should wait for; the request that saw the change only starts it."""
        if self.store is None or time.monotonic() < self._retry_at:
            return
        if self._publisher is not None and self._publisher.is_alive():
            return  # what changes meanwhile stays counted and is published next time
        if not any(self._due(space) for space in self._spaces.values()):
            return
        self._publisher = threading.Thread(
            target=self._publish_due, name="enrolled-snapshot", daemon=True
        )
        self._publisher.start()

    def _publish_due(self) -> None:
        with self._lock:
            keys = list(self._spaces)
        for key in keys:
            try:
                self._publish(key)
            except Exception:
                log.exception("publishing the enrolled index snapshot of %s failed", key)
                self._retry_at = time.monotonic() + PUBLISH_RETRY_S
                return

    def _publish(self, key: str) -> None:
        assert self.store is not None
        # The copy is taken under the update lock (a request that must apply a change waits
        # for the index's serialisation, well under a second at 1M crops; searches do not);
        # encoding and the upload run without it. Processes may overwrite each other's
        # snapshots: each is consistent, and a loader applies whatever changed since.
        with self._lock:
            space = self._spaces[key]
            if not self._due(space):
                return
            snapshot = Snapshot.of(key, space)
        self.store.put(snapshot_key(key), snapshot.encode())
        with self._lock:
            space.changed -= snapshot.changed
        log.info("enrolled index snapshot of %s published (%d crops)", key, len(snapshot.rows))

    def wait_published(self, timeout: float | None = None) -> None:
        """Wait for a snapshot upload in flight, if any (tests; a process about to exit)."""
        publisher = self._publisher
        if publisher is not None:
            publisher.join(timeout)

    def withheld(
        self, contributors: dict[str, str], backbone_key: str, refresh: bool = True
    ) -> set[str]:
        """The classes of ``contributors`` (a model's label -> contribution id) whose
        contribution was deleted (or expired) since the model was trained. ``refresh``:
        False when the caller has just brought the gallery up to date (``refresh()``)."""
        if not contributors:
            return set()
        if refresh:
            self._refresh()
        live = self._live
        return {label for label, cid in contributors.items() if cid not in live}

    def refresh(self) -> None:
        """Bring the gallery up to date with the database (one small query when nothing
        changed): once per request, before ``withheld`` and ``match`` with ``refresh=False``."""
        self._refresh()

    def match(
        self,
        query: np.ndarray,
        backbone_key: str,
        skip: Collection[str] = (),
        refresh: bool = True,
    ) -> EnrolledMatch | None:
        """The contributor ``query`` (a unit embedding) scores highest, with that score;
        None when nobody is enrolled in this space. ``skip``: contribution ids the model
        already knows as classes."""
        if refresh:
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
