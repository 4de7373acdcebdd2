"""The dataset on disk: content-addressed image blobs plus one JSON catalog.

Layout under the data dir (``lookalike.datadir``)::

    images/ab/abcdef....jpg   original bytes, named by their SHA-256
    dataset.json              catalog: classes and one record per image
    dataset.lock              held while the catalog is rewritten

The catalog is rewritten atomically under the lock, so a crashed import leaves the previous
catalog intact; blobs not referenced by it are removed by the importer that wrote them.

With a remote object store (``storage_url``) the photos a model shows are shared through it
too, under ``images/ab/<sha256>.<ext>``: a version's reference photos are published there
when it is registered (``publish_blobs``), so that an app process on any machine can show
them (``read_blob``: the data dir's copy, else the store's); removing a photo from the
dataset (``remove_blob``) removes that copy as well.
A JSON file (not the database) because the engine must work from the command line alone;
the web service's database keeps the prediction log, not the training set.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lookalike.config import Settings
from lookalike.errors import DatasetError, NotFound
from lookalike.fsutil import atomic_write_bytes, atomic_write_json, file_lock

if TYPE_CHECKING:
    from lookalike.storage import ObjectStore

CATALOG_FORMAT = 1
log = logging.getLogger("lookalike.data.store")

# Sources of personal photos, which their owners may take back (``data/personal.py``): a
# visitor's kept photo, a contributor's face crops.
VISITOR = "visitor:"  # + prediction id
CONTRIBUTION = "contribution:"  # + contribution id


def is_visitor(source: str) -> bool:
    return source.startswith(VISITOR)


def is_contribution(source: str) -> bool:
    return source.startswith(CONTRIBUTION)


def is_personal(source: str) -> bool:
    """Personal photos always train: the frozen test set stays the operator's photos."""
    return is_visitor(source) or is_contribution(source)


def image_key(sha256: str, ext: str) -> str:
    """Where a dataset photo is kept in a remote object store."""
    return f"images/{sha256[:2]}/{sha256}.{ext}"


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass
class ImageRecord:
    sha256: str
    label: str
    ext: str
    source: str
    width: int
    height: int
    faces_found: int | None = None  # None: imported with a backbone that does not use faces
    face_index: int | None = None
    face_box: list[float] | None = None
    warnings: list[str] = field(default_factory=list)
    added_at: str = field(default_factory=now_iso)
    # The face's measures at import (vision.quality: face_px, brightness, sharpness), for
    # the dataset checks; None before they were kept, or without a face.
    quality: dict[str, float] | None = None

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ImageRecord:
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})


@dataclass
class Catalog:
    revision: int = 0
    images: dict[str, ImageRecord] = field(default_factory=dict)

    def by_label(self) -> dict[str, list[ImageRecord]]:
        out: dict[str, list[ImageRecord]] = {}
        for rec in sorted(self.images.values(), key=lambda r: (r.label, r.sha256)):
            out.setdefault(rec.label, []).append(rec)
        return out

    def counts(self) -> Counter[str]:
        return Counter(r.label for r in self.images.values())


class DatasetStore:
    """The dataset of ``settings``' data dir. ``DatasetStore(settings)`` is the way to get it
    anywhere: it keeps nothing but the data dir's paths, so building one costs nothing and
    every one of a data dir sees the same files."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        data_dir = settings.data_dir
        self.root = data_dir.root
        self.catalog_path = data_dir.catalog
        self.lock_path = data_dir.catalog_lock
        self.images_dir = data_dir.images

    def blob_path(self, sha256: str, ext: str) -> Path:
        return self.images_dir / sha256[:2] / f"{sha256}.{ext}"

    def path_of(self, rec: ImageRecord) -> Path:
        return self.blob_path(rec.sha256, rec.ext)

    def write_blob(self, sha256: str, ext: str, data: bytes) -> bool:
        """Store bytes under their hash; returns True when the file is new."""
        path = self.blob_path(sha256, ext)
        if path.exists():
            return False
        atomic_write_bytes(path, data)
        return True

    @cached_property
    def remote(self) -> ObjectStore | None:
        """The remote object store photos are shared through (``storage_url``), else None."""
        from lookalike.storage import remote_store

        return remote_store(self.settings)

    def publish_blobs(self, blobs: Iterable[tuple[str, str]]) -> int:
        """Copy the photos ``blobs`` ((sha256, ext) pairs) that the remote object store lacks
        into it (nothing without one); returns how many were copied. A photo missing from
        the data dir too is skipped: it was removed from the dataset meanwhile."""
        remote = self.remote
        if remote is None:
            return 0
        # One listing (a request per thousand keys), not a request per photo: a large
        # gallery's photos are mostly there already, published with an earlier version.
        present = set(remote.iter_keys("images/"))
        copied = 0
        for sha256, ext in dict.fromkeys(blobs):
            key = image_key(sha256, ext)
            if key in present:
                continue
            try:
                data = self.blob_path(sha256, ext).read_bytes()
            except FileNotFoundError:
                continue
            remote.put(key, data)
            copied += 1
        return copied

    def read_blob(self, sha256: str, ext: str) -> bytes:
        """A photo's bytes: the data dir's copy, else the remote store's (published from
        another machine). ``NotFound`` when neither has it."""
        try:
            return self.blob_path(sha256, ext).read_bytes()
        except FileNotFoundError:
            if self.remote is None:
                raise NotFound(f"no dataset photo {sha256}", code="image.not_found") from None
        return self.remote.get(image_key(sha256, ext))

    def remove_blob(self, rec: ImageRecord) -> None:
        """Delete a photo's file and its copy in the remote store (a deletion reaches both).
        The catalog no longer names it when this runs, so a store that cannot be reached is
        logged, not raised: the other photos of the same deletion still go."""
        from lookalike.storage import StorageUnavailable

        self.path_of(rec).unlink(missing_ok=True)
        if self.remote is not None:
            try:
                self.remote.delete(image_key(rec.sha256, rec.ext))
            except StorageUnavailable:
                log.warning("could not delete the object store's copy of %s", rec.sha256)

    def load(self) -> Catalog:
        if not self.catalog_path.exists():
            return Catalog()
        try:
            raw = json.loads(self.catalog_path.read_text("utf-8"))
            images = {k: ImageRecord.from_dict(v) for k, v in raw["images"].items()}
            return Catalog(revision=int(raw["revision"]), images=images)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise DatasetError(
                f"The dataset catalog {self.catalog_path} is unreadable ({exc}). Restore it from"
                " a backup or delete it and import the images again.",
                code="dataset.corrupt",
            ) from exc

    def save(self, catalog: Catalog) -> None:
        catalog.revision += 1
        atomic_write_json(
            self.catalog_path,
            {
                "format": CATALOG_FORMAT,
                "revision": catalog.revision,
                "images": {k: asdict(v) for k, v in sorted(catalog.images.items())},
            },
        )

    def rename_class(self, old: str, new: str) -> int:
        """Rename a class (display names only; files are named by hash). Returns images moved."""
        new = new.strip()
        if not new:
            raise DatasetError("A class name cannot be empty.", code="dataset.bad_class_name")
        with file_lock(self.lock_path):
            catalog = self.load()
            labels = catalog.counts()
            if old not in labels:
                raise NotFound(
                    f"No class named {old!r}. Existing classes: {', '.join(sorted(labels)[:10])}"
                    + (" ..." if len(labels) > 10 else ""),
                    code="dataset.class_not_found",
                )
            if new in labels and new != old:
                raise DatasetError(
                    f"A class named {new!r} already exists; pick another name.",
                    code="dataset.class_exists",
                )
            moved = 0
            for rec in catalog.images.values():
                if rec.label == old:
                    rec.label = new
                    moved += 1
            self.save(catalog)
            return moved
