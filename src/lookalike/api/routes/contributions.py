"""``/api/contributions``: join the gallery from a short face video (or a few photos), follow
the processing, delete every copy with the token (``lookalike.services.contributions``)."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from lookalike.api import forms
from lookalike.api.deps import SessionDep, StateDep, contribution_limit, rate_limit
from lookalike.api.routes.images import IMAGE_HEADERS
from lookalike.api.schemas import ContributionCreated, ContributionPublic
from lookalike.db import Contribution
from lookalike.services import contributions, models

log = logging.getLogger("lookalike.api")

router = APIRouter(
    prefix="/api/contributions", tags=["contributions"], dependencies=[Depends(rate_limit)]
)

_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["display_name", "consent"],
                    "properties": {
                        "video": {
                            "type": "string",
                            "format": "binary",
                            "description": "A face video (MP4, WebM, MOV; 2-10 s), turning the"
                            " head to both sides",
                        },
                        "photo": {
                            "type": "array",
                            "items": {"type": "string", "format": "binary"},
                            "description": "Or 3-20 photos of the face",
                        },
                        "display_name": {"type": "string", "minLength": 1, "maxLength": 64},
                        "consent": {"type": "boolean"},
                    },
                }
            }
        },
    }
}


def public(row: Contribution) -> ContributionPublic:
    return ContributionPublic(
        id=row.id,
        status=row.status,
        progress=row.progress,
        display_name=row.display_name,
        media=row.media,
        crops=row.crops,
        approved=row.approved,
        reason_code=row.reason_code,
        reason=row.reason,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


@router.post(
    "",
    status_code=202,
    response_model=ContributionCreated,
    openapi_extra=_BODY,
    summary="Join the gallery (with consent)",
    dependencies=[Depends(contribution_limit)],
)
async def create_contribution(request: Request, state: StateDep) -> ContributionCreated:
    form = await forms.read_contribution(request, state.settings)
    made = await run_in_threadpool(
        contributions.create_contribution,
        state.sessions,
        state.store,
        state.settings,
        display_name=form.display_name,
        consent=form.consent,
        video=form.video,
        photos=form.photos,
    )
    try:
        await run_in_threadpool(state.jobs.enqueue_contribution, made.row.id)
    except Exception:  # the queue is down: the row stays queued and is queued again later
        log.exception("contribution %s stored but not queued; the requeue job retries", made.row.id)
    with state.sessions() as session:  # the job may have run already (an immediate queue)
        row = session.get(Contribution, made.row.id) or made.row
    return ContributionCreated(
        **public(row).model_dump(),
        status_url=f"/api/contributions/{row.id}",
        deletion_token=made.deletion_token,
        deletion_code=f"c.{row.id}.{made.deletion_token}",  # answers.deletion_code's form
    )


@router.get("/{contribution_id}", response_model=ContributionPublic, summary="How it is going")
def get_contribution(contribution_id: str, session: SessionDep) -> ContributionPublic:
    return public(contributions.get_contribution(session, contribution_id))


@router.delete(
    "/{contribution_id}",
    status_code=204,
    response_class=Response,
    summary="Delete every copy of a contribution with its deletion token",
)
def delete_contribution(
    contribution_id: str,
    state: StateDep,
    token: str | None = Query(None, description="The deletion token shown once"),
    x_deletion_token: str | None = Header(None),
) -> Response:
    trained_on = contributions.delete_with_token(
        state.registry, state.store, contribution_id, token or x_deletion_token
    )
    if trained_on:  # the champion knows them as a class: replace it soon
        models.retrain_after_deletion(state.jobs, "a contributor's deletion")
    return Response(status_code=204)


@router.get(
    "/{contribution_id}/faces/{number}",
    response_class=Response,
    responses={200: {"content": {"image/jpeg": {}}}},
    summary="An enrolled contributor's face crop (their reference photo in answers)",
)
def get_face(contribution_id: str, number: int, state: StateDep) -> Response:
    data = contributions.shown_face(state.sessions, state.store, contribution_id, number)
    headers = {**IMAGE_HEADERS, "Cache-Control": "private, max-age=300"}
    return Response(data, media_type="image/jpeg", headers=headers)
