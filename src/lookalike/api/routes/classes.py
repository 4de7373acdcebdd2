"""``GET /api/classes``: the classes of the current model, with a representative photo."""

from __future__ import annotations

from fastapi import APIRouter

from lookalike.api.deps import GalleryDep
from lookalike.api.schemas import ClassList, ClassPublic

router = APIRouter(prefix="/api/classes", tags=["classes"])


@router.get("", response_model=ClassList, summary="Classes of the current model")
def list_classes(gallery: GalleryDep) -> ClassList:
    data = [
        ClassPublic(
            name=label,
            images=len(gallery.by_label.get(label, [])),
            image_url=gallery.class_image_url(label),
        )
        for label in gallery.labels
    ]
    return ClassList(data=data, count=len(data))
