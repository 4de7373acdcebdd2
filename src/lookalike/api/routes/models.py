"""The model registry over HTTP: ``GET /api/models`` (every version, aliases, promotions and
rollbacks), ``GET /api/models/current`` (the answering model), ``GET /api/models/{version}``
(one version and its history); admin only: promote, roll back, retrain now, job status.
The work is ``lookalike.services.models``'s."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool

from lookalike.api.auth import AdminDep, is_admin, require_admin, require_csrf
from lookalike.api.deps import PredictorDep, RegistryDep, StateDep
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
from lookalike.api.state import AppState
from lookalike.kinds import CHAMPION_CHANGES, Trigger
from lookalike.services import models
from lookalike.services.models import ChampionMove, alias_of, event_view, version_view

router = APIRouter(prefix="/api/models", tags=["models"])
ADMIN_CHANGE = [Depends(require_admin), Depends(require_csrf)]


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


@router.get("/current", response_model=ModelPublic, summary="The model answering predictions")
def current_model(predictor: PredictorDep) -> ModelPublic:
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


@router.get("", response_model=ModelsPublic, summary="Every model version and the history")
def list_models(request: Request, registry: RegistryDep) -> ModelsPublic:
    """Who made a version or moved the champion (``created_by``, ``actor``) only for admins."""
    admin = is_admin(request)
    rows, aliases = registry.versions(), registry.aliases()
    changes = registry.events(event_kinds=CHAMPION_CHANGES)
    return ModelsPublic(
        data=[
            ModelVersionPublic(**version_view(r, alias_of(r.version, aliases), show_authors=admin))
            for r in rows
        ],
        count=len(rows),
        champion=aliases.get("champion"),
        challenger=aliases.get("challenger"),
        events=[ModelEventPublic(**event_view(e, show_authors=admin)) for e in changes],
    )


@router.post(
    "/retrain",
    response_model=JobPublic,
    status_code=202,
    summary="Queue a retrain now (admin)",
    dependencies=ADMIN_CHANGE,
)
def retrain_now(state: StateDep, admin: AdminDep) -> JobPublic:
    job = models.queue_retrain(state.jobs, Trigger.API, f"admin {admin.name}")
    return JobPublic(id=job.id, done=False, joined=job.joined)


@router.get(
    "/jobs/{job_id}",
    response_model=JobPublic,
    summary="A queued job's outcome (admin)",
    dependencies=[Depends(require_admin)],
)
def job_status(job_id: str, state: StateDep) -> JobPublic:
    result = state.jobs.result(job_id)
    return JobPublic(id=job_id, done=result is not None, result=result)


async def _changed(state: AppState, move: ChampionMove) -> ChampionChange:
    # This process switches before answering; others follow between their requests.
    model = await run_in_threadpool(state.predictor.load, True)
    return ChampionChange(
        champion=move.champion, previous=move.previous, serving=model.info.version
    )


@router.post(
    "/rollback",
    response_model=ChampionChange,
    summary="Go back to the previous champion (admin)",
    dependencies=ADMIN_CHANGE,
)
async def rollback(
    state: StateDep, admin: AdminDep, body: RollbackRequest | None = None
) -> ChampionChange:
    request = body or RollbackRequest()
    move = await run_in_threadpool(
        lambda: models.rollback(
            state.registry, reason=request.reason, actor=f"admin {admin.name}", to=request.to
        )
    )
    return await _changed(state, move)


@router.get("/{version}", response_model=ModelVersionDetail, summary="One version and its history")
def show_model(request: Request, version: str, registry: RegistryDep) -> ModelVersionDetail:
    admin = is_admin(request)
    row = registry.get(version)
    events = [
        ModelEventPublic(**event_view(e, show_authors=admin))
        for e in reversed(registry.events(row.kind, version))
    ]
    alias = alias_of(row.version, registry.aliases(row.kind))
    return ModelVersionDetail(**version_view(row, alias, show_authors=admin), events=events)


@router.post(
    "/{version}/promote",
    response_model=ChampionChange,
    summary="Make a version the champion (admin)",
    dependencies=ADMIN_CHANGE,
)
async def promote(
    version: str, state: StateDep, admin: AdminDep, body: PromoteRequest | None = None
) -> ChampionChange:
    reason = (body or PromoteRequest()).reason
    move = await run_in_threadpool(
        lambda: models.promote(state.registry, version, reason=reason, actor=f"admin {admin.name}")
    )
    return await _changed(state, move)
