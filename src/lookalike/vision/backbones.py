"""Backbones turn an RGB image into one L2-normalised embedding (plus the faces they found).

A registry in the style of timm: ``register_backbone`` decorates a factory, ``create_backbone(id)``
builds one, ``list_backbones()`` lists them. Factories must be cheap: weights load lazily on the
first ``analyze`` call (or an explicit ``load()``), never at import.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lookalike.config import Settings, get_settings
from lookalike.errors import InvalidInput, NoFaceFound


@dataclass(frozen=True)
class Face:
    """One detected face, in pixels of the original image."""

    box: tuple[float, float, float, float]  # x, y, width, height
    landmarks: tuple[tuple[float, float], ...]  # right eye, left eye, nose, mouth corners
    score: float

    @property
    def area(self) -> float:
        return self.box[2] * self.box[3]

    def to_dict(self) -> dict[str, Any]:
        return {
            "box": [round(v, 1) for v in self.box],
            "landmarks": [[round(x, 1), round(y, 1)] for x, y in self.landmarks],
            "score": round(self.score, 4),
        }


@dataclass
class Analysis:
    """What a backbone saw in one image: every face, the one used, and its embedding."""

    vector: np.ndarray  # float32, L2-normalised, shape (dim,)
    faces: list[Face] = field(default_factory=list)
    face_index: int | None = None  # index into ``faces`` of the face embedded (None: whole image)
    crop: np.ndarray | None = None  # the aligned face the embedding was computed from

    @property
    def face(self) -> Face | None:
        return None if self.face_index is None else self.faces[self.face_index]


class Backbone:
    """Base class. Subclasses set the class attributes and implement ``_embed``/``detect``."""

    id: str = ""
    version: str = ""
    dim: int = 0
    uses_faces: bool = False  # True: images without a face cannot be embedded
    # Settings fields that change the embedding: part of the cache key, recorded in every
    # model's preprocessing and restored from it at prediction time.
    embedding_settings: tuple[str, ...] = ()
    # onnxruntime intra-op threads (None: one per core). Parallel workers use 1 each.
    threads: int | None = None

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or get_settings()

    @property
    def key(self) -> str:
        """Cache key: embeddings are only reused by the same backbone, version and settings."""
        if not self.embedding_settings:
            return f"{self.id}@{self.version}"
        values = json.dumps({k: getattr(self.settings, k) for k in self.embedding_settings})
        return f"{self.id}@{self.version}:{hashlib.sha256(values.encode()).hexdigest()[:8]}"

    @property
    def preprocessing(self) -> dict[str, Any]:
        """Recorded in every model trained on this backbone; inference reads it back."""
        return {}

    def load(self) -> None:
        """Load weights now (the server warms up with this). Idempotent."""

    def detect(self, rgb: np.ndarray) -> list[Face]:
        """Every face, largest first. Backbones that do not use faces return []."""
        return []

    def analyze(self, rgb: np.ndarray, face_index: int | None = None) -> Analysis:
        """Embed ``rgb`` (HxWx3 uint8). Face backbones use the largest face unless told which.

        Raises ``NoFaceFound`` when a face backbone finds none, ``InvalidInput`` for a bad index.
        """
        if not self.uses_faces:
            return Analysis(vector=self.embed_batch([rgb])[0])
        faces = self.detect(rgb)
        if not faces:
            raise NoFaceFound(
                "No face was found in the image. Expected a photo with a face that is visible,"
                " lit and at least a few dozen pixels wide; try a closer or sharper photo.",
                details={"faces_found": 0},
            )
        index = 0 if face_index is None else face_index
        if not 0 <= index < len(faces):
            raise InvalidInput(
                f"face_index {face_index} does not exist: the image has {len(faces)} face(s),"
                f" numbered 0 to {len(faces) - 1}.",
                code="face.index_out_of_range",
                details={"faces_found": len(faces), "face_index": face_index},
            )
        crop = self.crop(rgb, faces[index])
        if crop is None:
            vector = self.embed_faces(rgb, [faces[index]])[0]
        else:
            vector = self.embed_crops([crop])[0]
        return Analysis(vector=vector, faces=faces, face_index=index, crop=crop)

    def crop(self, rgb: np.ndarray, face: Face) -> np.ndarray | None:
        """The aligned face crop a face backbone embeds (None: it has no such crop)."""
        return None

    def embed_crops(self, crops: list[np.ndarray]) -> np.ndarray:
        """Embeddings of aligned face crops (face backbones that have them)."""
        raise NotImplementedError

    def embed_batch(self, images: list[np.ndarray]) -> np.ndarray:
        """Whole-image embeddings (non-face backbones), shape (n, dim), L2-normalised."""
        raise NotImplementedError

    def embed_faces(self, rgb: np.ndarray, faces: list[Face]) -> np.ndarray:
        """Embeddings of the given faces of one image (face backbones), shape (n, dim)."""
        raise NotImplementedError


def l2_normalize(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    norm = np.linalg.norm(x, axis=-1, keepdims=True)
    unit: np.ndarray = x / np.maximum(norm, 1e-12)
    return unit


BackboneFactory = Callable[[Settings | None], Backbone]
_REGISTRY: dict[str, tuple[BackboneFactory, str]] = {}


def register_backbone(name: str, description: str) -> Callable[[BackboneFactory], BackboneFactory]:
    def decorate(factory: BackboneFactory) -> BackboneFactory:
        _REGISTRY[name] = (factory, description)
        return factory

    return decorate


def _ensure_builtins() -> None:
    # Importing the modules registers them; their heavy imports stay inside load().
    from lookalike.vision import efficientnet, faces  # noqa: F401


def list_backbones() -> dict[str, str]:
    """Backbone id -> one-line description."""
    _ensure_builtins()
    return {name: desc for name, (_, desc) in sorted(_REGISTRY.items())}


def create_backbone(
    name: str, settings: Settings | None = None, *, threads: int | None = None
) -> Backbone:
    """A new, not yet loaded backbone. ``threads``: inference threads it may use."""
    _ensure_builtins()
    if name not in _REGISTRY:
        raise InvalidInput(
            f"Unknown backbone {name!r}. Expected one of: {', '.join(sorted(_REGISTRY))}.",
            code="backbone.unknown",
            details={"backbone": name, "available": sorted(_REGISTRY)},
        )
    backbone = _REGISTRY[name][0](settings)
    if threads is not None:
        backbone.threads = threads
    return backbone


class TestBackbone(Backbone):
    """Tiny deterministic backbone for fast tests: no weights, no faces, ~0.1 ms an image.

    The embedding is a fixed random projection of a 16x16 grey thumbnail, so the same picture
    always gives the same vector and similar pictures give similar vectors.
    """

    __test__ = False  # not a pytest class
    id = "test"
    version = "1"
    dim = 32

    def __init__(self, settings: Settings | None = None) -> None:
        super().__init__(settings)
        seed = int.from_bytes(hashlib.sha256(b"lookalike-test-backbone").digest()[:4], "little")
        self._projection = np.random.default_rng(seed).standard_normal((256, self.dim))

    @property
    def preprocessing(self) -> dict[str, Any]:
        return {"resize": [16, 16], "grey": True, "normalize": "mean-std"}

    def embed_batch(self, images: list[np.ndarray]) -> np.ndarray:
        import cv2

        out = []
        for rgb in images:
            grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
            small = cv2.resize(grey, (16, 16), interpolation=cv2.INTER_AREA).astype(np.float32)
            small = (small - small.mean()) / (small.std() + 1e-6)
            out.append(small.reshape(-1) @ self._projection)
        return l2_normalize(np.stack(out))


register_backbone("test", "Deterministic 32-d thumbnail projection, for fast tests only")(
    TestBackbone
)
