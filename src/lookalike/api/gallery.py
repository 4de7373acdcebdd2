"""A model's reference photos by class and by hash, for the routes that show them."""

from __future__ import annotations

import threading
from dataclasses import dataclass

from lookalike.artifacts import TrainedModel
from lookalike.inference import Neighbour, Predictor


def image_url(sha256: str) -> str:
    """Where a reference photo is served (never a file path)."""
    return f"/api/images/{sha256}"


def reference_url(ref: Neighbour) -> str:
    """Where a lookalike's reference photo is served: a model's gallery photo, or an
    enrolled contributor's face crop."""
    if ref.crop is not None:
        contribution_id, number = ref.crop
        return f"/api/contributions/{contribution_id}/faces/{number}"
    return image_url(ref.sha256)


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
