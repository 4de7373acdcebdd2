"""What the routes share, read from ``app.state`` (set up once by ``create_app``)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from fastapi import Request
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from lookalike.artifacts import TrainedModel
from lookalike.config import Settings
from lookalike.inference import Predictor
from lookalike.storage import ObjectStore


def image_url(sha256: str) -> str:
    """Where a reference photo is served (never a file path)."""
    return f"/api/images/{sha256}"


@dataclass(frozen=True)
class GalleryIndex:
    """A model's reference photos by class and by hash (built once per model version)."""

    version: str
    labels: list[str]
    ext_by_hash: dict[str, str]
    by_label: dict[str, list[str]]  # class -> hashes, in gallery order

    @classmethod
    def of(cls, model: TrainedModel) -> GalleryIndex:
        labels = list(model.info.labels)
        by_label: dict[str, list[str]] = {label: [] for label in labels}
        ext_by_hash: dict[str, str] = {}
        for index, sha, ext in zip(
            model.gallery_labels.tolist(),
            model.gallery_hashes.tolist(),
            model.gallery_exts.tolist(),
            strict=True,
        ):
            by_label[labels[int(index)]].append(str(sha))
            ext_by_hash[str(sha)] = str(ext)
        return cls(model.info.version, labels, ext_by_hash, by_label)

    def class_image_url(self, label: str) -> str | None:
        hashes = self.by_label.get(label)
        return image_url(hashes[0]) if hashes else None


class GalleryCache:
    """The ``GalleryIndex`` of the predictor's current model, rebuilt when the model moves."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._index: GalleryIndex | None = None

    def get(self, predictor: Predictor) -> GalleryIndex:
        model = predictor.load()  # ModelUnavailable (503) when there is none
        index = self._index
        if index is None or index.version != model.info.version:
            with self._lock:
                index = self._index
                if index is None or index.version != model.info.version:
                    index = self._index = GalleryIndex.of(model)
        return index


def state(request: Request) -> Any:
    return request.app.state


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_predictor(request: Request) -> Predictor:
    predictor: Predictor = request.app.state.predictor
    return predictor


def get_store(request: Request) -> ObjectStore:
    store: ObjectStore = request.app.state.store
    return store


def get_engine(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


def get_sessions(request: Request) -> sessionmaker[Session]:
    sessions: sessionmaker[Session] = request.app.state.sessions
    return sessions


def get_gallery(request: Request) -> GalleryIndex:
    cache: GalleryCache = request.app.state.gallery
    return cache.get(get_predictor(request))


def db_session(request: Request) -> Iterator[Session]:
    """A session for one request (sync endpoints run in the threadpool)."""
    with get_sessions(request)() as session:
        yield session
