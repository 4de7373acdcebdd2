"""``GET /api/models/current``: what the answering model is and how good it was on its
frozen test set."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from lookalike.api.deps import get_predictor
from lookalike.api.schemas import ModelMetrics, ModelPublic
from lookalike.inference import Predictor

router = APIRouter(prefix="/api/models", tags=["models"])


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


@router.get("/current", response_model=ModelPublic, summary="The model answering predictions")
def current_model(predictor: Predictor = Depends(get_predictor)) -> ModelPublic:
    model = predictor.load()
    info = model.info
    n = info.metrics.get("n")
    return ModelPublic(
        version=info.version,
        created_at=info.created_at,
        backbone=info.backbone,
        backbone_key=info.backbone_key,
        head=info.head,
        labels=list(info.labels),
        classes=len(info.labels),
        gallery_images=len(model.gallery_hashes),
        threshold=round(float(info.threshold), 4),
        metrics=ModelMetrics(
            accuracy=_number(info.metrics.get("accuracy")),
            macro_f1=_number(info.metrics.get("macro_f1")),
            n=n if isinstance(n, int) else None,
        ),
        test_version=info.test_version,
        dataset_revision=info.dataset_revision,
    )
