"""The model registry over HTTP: ``GET /api/models`` (every version, aliases, promotions and
rollbacks), ``GET /api/models/current`` (the answering model), ``GET /api/models/{version}``
(one version and its history); admin only: promote, roll back, retrain now, job status."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool

from lookalike.api.auth import Admin, is_admin, require_admin, require_csrf
from lookalike.api.deps import get_predictor, get_settings
from lookalike.api.schemas import (
    ChampionChange,
    JobPublic,
    ModelEventPublic,
    ModelMetrics,
    ModelPublic,
    ModelsPublic,
    ModelVersionDetail,
    ModelVersionPublic,
    PromoteRequest,
    RollbackRequest,
)
from lookalike.config import Settings
from lookalike.db import ModelEvent, ModelVersion
from lookalike.inference import Predictor
from lookalike.registry import Registry

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


def get_registry(request: Request) -> Registry:
    registry: Registry = request.app.state.registry
    return registry


def _version(row: ModelVersion, aliases: dict[str, str], admin: bool) -> dict[str, Any]:
    tag = next((a for a, v in aliases.items() if v == row.version), None)
    return {
        "version": row.version,
        "alias": tag,
        "created_at": row.created_at,
        "created_by": row.created_by if admin else None,  # names admins and their tokens
        "backbone": row.backbone,
        "head": row.head,
        "labels": list(row.labels),
        "dataset_revision": row.dataset_revision,
        "test_version": row.test_version,
        "metrics": row.metrics,
        "decision": row.decision,
    }


def _event(e: ModelEvent, admin: bool) -> ModelEventPublic:
    return ModelEventPublic(
        at=e.at, kind=e.kind, version=e.version, previous=e.previous,
        promoted=e.promoted, reason=e.reason, actor=e.actor if admin else None,
        figures=e.figures,
    )  # fmt: skip


@router.get("", response_model=ModelsPublic, summary="Every model version and the history")
def list_models(request: Request, registry: Registry = Depends(get_registry)) -> ModelsPublic:
    """Who made a version or moved the champion (``created_by``, ``actor``) only for admins."""
    admin = is_admin(request)
    rows, aliases = registry.versions(), registry.aliases()
    changes = registry.events(kinds=("promote", "rollback"))
    return ModelsPublic(
        data=[ModelVersionPublic(**_version(r, aliases, admin)) for r in rows],
        count=len(rows),
        champion=aliases.get("champion"),
        challenger=aliases.get("challenger"),
        events=[_event(e, admin) for e in changes],
    )


@router.post(
    "/retrain",
    response_model=JobPublic,
    status_code=202,
    summary="Queue a retrain now (admin)",
    dependencies=[Depends(require_csrf)],
)
def retrain_now(
    settings: Settings = Depends(get_settings), admin: Admin = Depends(require_admin)
) -> JobPublic:
    from lookalike.jobs import Jobs

    job = Jobs(settings).enqueue_retrain("api", f"admin {admin.name}")
    return JobPublic(id=job.id, done=False, joined=job.joined)


@router.get("/jobs/{job_id}", response_model=JobPublic, summary="A queued job's outcome (admin)")
def job_status(
    job_id: str, settings: Settings = Depends(get_settings), _: Admin = Depends(require_admin)
) -> JobPublic:
    from lookalike.jobs import Jobs

    result = Jobs(settings).result(job_id)
    return JobPublic(id=job_id, done=result is not None, result=result)


@router.post(
    "/rollback",
    response_model=ChampionChange,
    summary="Go back to the previous champion (admin)",
    dependencies=[Depends(require_csrf)],
)
async def rollback(
    body: RollbackRequest | None = None,
    registry: Registry = Depends(get_registry),
    predictor: Predictor = Depends(get_predictor),
    admin: Admin = Depends(require_admin),
) -> ChampionChange:
    request = body or RollbackRequest()
    old, new = await run_in_threadpool(
        lambda: registry.rollback(reason=request.reason, actor=f"admin {admin.name}", to=request.to)
    )
    model = await run_in_threadpool(predictor.load, True)
    return ChampionChange(champion=new, previous=old, serving=model.info.version)


@router.get("/{version}", response_model=ModelVersionDetail, summary="One version and its history")
def show_model(
    request: Request, version: str, registry: Registry = Depends(get_registry)
) -> ModelVersionDetail:
    admin = is_admin(request)
    row = registry.get(version)
    events = [_event(e, admin) for e in reversed(registry.events(row.kind, version))]
    return ModelVersionDetail(**_version(row, registry.aliases(row.kind), admin), events=events)


@router.post(
    "/{version}/promote",
    response_model=ChampionChange,
    summary="Make a version the champion (admin)",
    dependencies=[Depends(require_csrf)],
)
async def promote(
    version: str,
    body: PromoteRequest | None = None,
    registry: Registry = Depends(get_registry),
    predictor: Predictor = Depends(get_predictor),
    admin: Admin = Depends(require_admin),
) -> ChampionChange:
    reason = (body or PromoteRequest()).reason
    previous = await run_in_threadpool(
        lambda: registry.promote(version, reason=reason, actor=f"admin {admin.name}")
    )
    # This process switches before answering; others follow between their requests.
    model = await run_in_threadpool(predictor.load, True)
    return ChampionChange(champion=version, previous=previous, serving=model.info.version)
