"""``GET /``: the public page (Jinja2 template; its JS and CSS are under ``/static/``)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from lookalike.api.deps import StateDep
from lookalike.api.state import AppState, app_state

router = APIRouter(tags=["pages"])

# The page's scripts and styles come from /static; photos from /api/images or data: URLs
# (the face crop) or blob: URLs (a chosen file); the camera stream is a MediaStream.
PAGE_CSP = (
    "default-src 'self'; img-src 'self' data: blob:; media-src 'self' blob: mediastream:;"
    " object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)


# Admin pages: scripts from this site only (no inline script, no eval), nothing framed,
# forms post here only. Styles may also be inline: plotly.js styles its charts with
# <style> rules and style attributes it writes itself.
ADMIN_CSP = (
    "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:;"
    " object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)


def admin_page(
    request: Request, template: str, context: dict[str, Any], status_code: int = 200
) -> HTMLResponse:
    """An admin page (the sign-in page too): its own CSP, never cached."""
    templates = app_state(request.app).templates
    response = templates.TemplateResponse(request, template, context, status_code=status_code)
    response.headers["Content-Security-Policy"] = ADMIN_CSP
    response.headers["Cache-Control"] = "no-store"
    return response


def public_page(
    state: AppState,
    request: Request,
    template: str,
    context: dict[str, Any],
    csp: str = PAGE_CSP,
) -> HTMLResponse:
    """A public page, under its Content-Security-Policy and leaking no referrer."""
    response = state.templates.TemplateResponse(request, template, context)
    response.headers["Content-Security-Policy"] = csp
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
def index(request: Request, state: StateDep) -> HTMLResponse:
    settings = state.settings
    # Photos PUT straight to S3 (presigned uploads): the page may connect to the bucket.
    s3_origin = state.store.upload_origin()
    csp = PAGE_CSP if s3_origin is None else f"{PAGE_CSP}; connect-src 'self' {s3_origin}"
    return public_page(
        state,
        request,
        "index.html",
        {
            "max_photos": settings.max_photos_per_request,
            "max_image_bytes": settings.max_image_bytes,
            "direct_uploads": s3_origin is not None,
        },
        csp,
    )


@router.get("/join", response_class=HTMLResponse, include_in_schema=False)
def join_page(request: Request, state: StateDep) -> HTMLResponse:
    """Join the gallery: a short webcam video or a few photos, with consent."""
    settings = state.settings
    return public_page(
        state,
        request,
        "join.html",
        {
            "min_photos": settings.contribution_min_photos,
            "max_photos": settings.contribution_max_photos,
            "max_crops": settings.contribution_max_crops,
            "max_image_bytes": settings.max_image_bytes,
            "video_max_bytes": settings.video_max_bytes,
            "max_request_bytes": settings.max_request_bytes,
            "video_min_seconds": settings.video_min_seconds,
            "video_max_seconds": settings.video_max_seconds,
            "need_approval": settings.contributions_need_approval,
            "retention_days": settings.retention_days,
        },
    )


@router.get("/forget", response_class=HTMLResponse, include_in_schema=False)
def forget_page(request: Request, state: StateDep) -> HTMLResponse:
    """Delete a contribution or a kept photo with its deletion code."""
    return public_page(state, request, "forget.html", {})
