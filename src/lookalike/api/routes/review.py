"""Admins review contributions: list them (held ones first), approve one held for review
(the same face under another name, or every one with ``contributions_need_approval``), or
delete one (every copy, as its owner's token would)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response
from pydantic import BaseModel
from sqlalchemy import select

from lookalike.api.auth import AdminDep, require_admin, require_csrf
from lookalike.api.deps import SessionDep, StateDep
from lookalike.api.routes.contributions import public
from lookalike.api.schemas import ContributionPublic
from lookalike.db import Contribution, utcnow
from lookalike.services import contributions, models
from lookalike.services.contributions import get_contribution

router = APIRouter(
    prefix="/api/admin/contributions",
    tags=["admin"],
    dependencies=[Depends(require_admin)],
)


class ContributionList(BaseModel):
    data: list[ContributionPublic]
    count: int


@router.get("", response_model=ContributionList, summary="Contributions, held ones first (admin)")
def list_contributions(
    session: SessionDep,
    held: bool = Query(False, description="Only those waiting for an admin's approval"),
) -> ContributionList:
    query = select(Contribution).order_by(Contribution.approved, Contribution.created_at.desc())
    if held:
        query = query.where(Contribution.approved.is_(False), Contribution.status == "enrolled")
    rows = session.scalars(query.limit(500)).all()
    return ContributionList(data=[public(r) for r in rows], count=len(rows))


@router.post(
    "/{contribution_id}/approve",
    response_model=ContributionPublic,
    summary="Let a held contributor be matched and shown (admin)",
    dependencies=[Depends(require_csrf)],
)
def approve(contribution_id: str, session: SessionDep) -> ContributionPublic:
    with session.begin():
        row = get_contribution(session, contribution_id)
        row.approved = True
        row.reason_code = row.reason = None
        row.updated_at = utcnow()  # the enrolled gallery reloads on change
    return public(row)


@router.delete(
    "/{contribution_id}",
    status_code=204,
    response_class=Response,
    summary="Delete every copy of a contribution (admin)",
    dependencies=[Depends(require_csrf)],
)
def remove(contribution_id: str, state: StateDep, admin: AdminDep) -> Response:
    actor = f"admin {admin.name}"
    if contributions.delete(state.registry, state.store, contribution_id, actor):
        models.retrain_after_deletion(state.jobs, actor)
    return Response(status_code=204)
