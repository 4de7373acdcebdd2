"""Predictor: bytes -> decode -> detect -> embed -> head -> answer.

Set up once (model and backbone load lazily on the first call, or in ``load()``), then
answer many photos. Several photos of the same person (a webcam burst) are answered
together: their embeddings are averaged over the frames where a face was found, so one
blink or blurred frame does not decide the answer.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lookalike.artifacts import TrainedModel, current_version, load_model
from lookalike.config import Settings, get_settings
from lookalike.data.store import DatasetStore
from lookalike.errors import InvalidInput, LookalikeError, NoFaceFound
from lookalike.training.train import backbone_for
from lookalike.vision.backbones import Backbone, Face, l2_normalize
from lookalike.vision.images import DecodedImage, decode_image


@dataclass
class Neighbour:
    label: str
    similarity: float
    sha256: str
    path: str


@dataclass
class Prediction:
    label: str | None  # None when there is no strong match
    best_label: str  # the top of the ranking, even when it is weak
    probability: float
    probabilities: list[tuple[str, float]]  # every class, best first
    match_score: float
    threshold: float
    no_strong_match: bool
    nearest: list[Neighbour]
    faces: list[Face]
    face_index: int | None
    frames_used: int
    model_version: str
    latency_ms: float
    errors: list[str] = field(default_factory=list)  # frames that were skipped, and why

    @property
    def face(self) -> Face | None:
        return None if self.face_index is None else self.faces[self.face_index]

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "best_label": self.best_label,
            "probability": round(self.probability, 4),
            "no_strong_match": self.no_strong_match,
            "match_score": round(self.match_score, 4),
            "threshold": round(self.threshold, 4),
            "probabilities": [
                {"label": k, "probability": round(v, 4)} for k, v in self.probabilities
            ],
            "nearest": [
                {
                    "label": n.label,
                    "similarity": round(n.similarity, 4),
                    "sha256": n.sha256,
                    "path": n.path,
                }
                for n in self.nearest
            ],
            "faces_found": len(self.faces),
            "faces": [f.to_dict() for f in self.faces],
            "face_index": self.face_index,
            "face_box": self.face.to_dict()["box"] if self.face else None,
            "frames_used": self.frames_used,
            "model_version": self.model_version,
            "latency_ms": round(self.latency_ms, 1),
            "skipped_frames": self.errors,
        }


class Predictor:
    def __init__(self, settings: Settings | None = None, version: str | None = None) -> None:
        self.settings = settings or get_settings()
        self.pinned_version = version
        self._lock = threading.Lock()
        # One tuple, swapped in one assignment: a concurrent reload never pairs one version's
        # model with another version's backbone.
        self._loaded: tuple[TrainedModel, Backbone] | None = None

    @property
    def home(self) -> Path:
        return Path(self.settings.home)

    def load(self) -> TrainedModel:
        """Load the model (and warm its backbone). Reloads when ``current`` moved."""
        return self._load()[0]

    def _load(self) -> tuple[TrainedModel, Backbone]:
        wanted = self.pinned_version or current_version(self.home)
        loaded = self._loaded
        if loaded is not None and loaded[0].info.version == wanted:
            return loaded
        with self._lock:
            loaded = self._loaded
            if loaded is None or loaded[0].info.version != wanted:
                model = load_model(self.home, wanted)
                backbone = backbone_for(model.info, self.settings)
                backbone.load()
                loaded = self._loaded = (model, backbone)
            return loaded

    def predict(
        self,
        photos: bytes | DecodedImage | list[bytes | DecodedImage],
        face_index: int | None = None,
    ) -> Prediction:
        start = time.perf_counter()
        model, backbone = self._load()
        frames = photos if isinstance(photos, list) else [photos]
        if not frames:
            raise InvalidInput("Expected at least one photo; got none.", code="input.no_photo")
        vectors: list[np.ndarray] = []
        errors: list[str] = []
        first_faces: list[Face] = []
        first_index: int | None = None
        last_error: LookalikeError | None = None
        for i, frame in enumerate(frames):
            image = frame if isinstance(frame, DecodedImage) else decode_image(frame, self.settings)
            try:
                analysis = backbone.analyze(image.rgb, face_index if len(frames) == 1 else None)
            except NoFaceFound as exc:
                errors.append(f"photo {i}: {exc.message}")
                last_error = exc
                continue
            if not vectors:
                first_faces, first_index = analysis.faces, analysis.face_index
            vectors.append(analysis.vector)
        if not vectors:
            assert last_error is not None
            if len(frames) > 1:
                raise NoFaceFound(
                    f"No face was found in any of the {len(frames)} photos. Face the camera"
                    " in good light and try again.",
                    details={"faces_found": 0, "photos": len(frames)},
                )
            raise last_error
        query = l2_normalize(np.mean(vectors, axis=0))
        return self._answer(model, query, first_faces, first_index, len(vectors), errors, start)

    def _answer(
        self,
        model: TrainedModel,
        query: np.ndarray,
        faces: list[Face],
        face_index: int | None,
        frames_used: int,
        errors: list[str],
        start: float,
    ) -> Prediction:
        info = model.info
        proba, sims, match = model.classify(query)
        proba, sims, match = proba[0], sims[0], match[0]
        order = np.argsort(-proba)
        best = int(order[0])
        score = float(match[best])
        weak = score < info.threshold
        store = DatasetStore(self.settings)
        near = np.argsort(-sims)[: self.settings.nearest_k]
        nearest = [
            Neighbour(
                label=info.labels[int(model.gallery_labels[i])],
                similarity=float(sims[i]),
                sha256=str(model.gallery_hashes[i]),
                path=str(store.blob_path(str(model.gallery_hashes[i]), str(model.gallery_exts[i]))),
            )
            for i in near
        ]
        return Prediction(
            label=None if weak else info.labels[best],
            best_label=info.labels[best],
            probability=float(proba[best]),
            probabilities=[(info.labels[int(c)], float(proba[c])) for c in order],
            match_score=score,
            threshold=info.threshold,
            no_strong_match=weak,
            nearest=nearest,
            faces=faces,
            face_index=face_index,
            frames_used=frames_used,
            model_version=info.version,
            latency_ms=(time.perf_counter() - start) * 1000,
            errors=errors,
        )
