"""Embeddings of stored images, through the cache: each (image, backbone) is embedded once."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from lookalike.data.cache import EmbeddingCache
from lookalike.errors import LookalikeError
from lookalike.vision.backbones import Analysis, Backbone
from lookalike.vision.images import DecodedImage, read_image

Progress = Callable[[int, int], None]


def analysis_meta(analysis: Analysis) -> dict[str, Any]:
    """What is cached beside a vector: enough to report faces without detecting again."""
    face = analysis.face
    return {
        "faces_found": len(analysis.faces),
        "face_index": analysis.face_index,
        "face_box": [round(v, 1) for v in face.box] if face else None,
        "face_score": round(face.score, 4) if face else None,
    }


@dataclass
class EmbedResult:
    vectors: dict[str, np.ndarray]
    failures: dict[str, str]  # sha256 -> error message (e.g. no face for this backbone)
    computed: int  # how many were not in the cache


class Embedder:
    def __init__(self, backbone: Backbone, cache: EmbeddingCache) -> None:
        self.backbone = backbone
        self.cache = cache

    def embed_decoded(self, image: DecodedImage) -> tuple[np.ndarray, dict[str, Any]]:
        """Embed one decoded image (cache first); raises LookalikeError on no face."""
        hit = self.cache.get(self.backbone.key, image.sha256)
        if hit is not None:
            return hit.vector, hit.meta
        analysis = self.backbone.analyze(image.rgb)
        meta = analysis_meta(analysis)
        self.cache.put(self.backbone.key, image.sha256, analysis.vector, meta)
        return analysis.vector, meta

    def embed_files(self, items: dict[str, Any], progress: Progress | None = None) -> EmbedResult:
        """``items`` maps sha256 -> file path. Only cache misses are decoded and embedded."""
        hashes = list(items)
        hits = self.cache.get_many(self.backbone.key, hashes)
        vectors = {sha: hit.vector for sha, hit in hits.items()}
        missing = [sha for sha in hashes if sha not in hits]
        failures: dict[str, str] = {}
        for done, sha in enumerate(missing, 1):
            try:
                image = read_image(items[sha], self.backbone.settings)
                vectors[sha], _ = self.embed_decoded(image)
            except LookalikeError as exc:
                failures[sha] = exc.message
            if progress:
                progress(done, len(missing))
        return EmbedResult(vectors=vectors, failures=failures, computed=len(missing))
