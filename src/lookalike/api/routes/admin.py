"""The admin pages and ``/api/admin/me`` (every route here is admin only).

* ``GET /admin`` — the dashboard: Plotly charts fed by ``/api/analytics/...`` (filters,
  exports); ``web/static/admin_dashboard.js``.
* ``GET /admin/models`` — the model registry: table, timeline, gate decisions, retrain /
  promote / roll back (``web/static/admin_models.js`` over ``/api/models``).
* ``GET /admin/contributions`` — contributions to review: approve a held one, delete one
  (``web/static/admin_contributions.js`` over ``/api/admin/contributions``).
* ``GET /admin/evaluation`` — a model version's confusion matrix (click a cell: its photos),
  top losses, per-class precision / recall, champion and challenger side by side
  (``web/static/admin_evaluation.js`` over ``/api/admin/evaluation``).
* ``GET /admin/review`` — the review queue: flagged dataset photos and visitors' photos to
  label, decided with the keyboard (``web/static/admin_review.js`` over
  ``/api/admin/review``).
* ``GET /admin/assets/plotly.min.js`` — plotly.js as shipped inside the ``plotly`` package
  (never a CDN: the service works offline); cached for a year under its digest (``?v=``).
* ``GET /api/admin/me`` — who the request is authenticated as.

Signing in and out: ``lookalike.api.routes.login``; authentication: ``lookalike.api.auth``.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.resources
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Literal

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel, Field

from lookalike.api.auth import CSRF_FIELD, HOME_PATH, Admin, AdminDep, require_admin
from lookalike.api.errors import ApiError
from lookalike.api.routes.pages import admin_page

router = APIRouter(tags=["admin"], dependencies=[Depends(require_admin)])

PLOTLY_PATH = "/admin/assets/plotly.min.js"


class AdminPublic(BaseModel):
    """Who an admin request is authenticated as."""

    name: str = Field(description="The user's name, or the API token's name.")
    via: Literal["session", "token"]
    user_id: int | None = None
    token_id: int | None = None
    session_expires_at: datetime | None = None


@dataclass(frozen=True)
class Asset:
    body: bytes
    gzipped: bytes
    digest: str  # sha256 prefix: the cache key in the URL and the ETag


@cache
def plotly_asset() -> Asset:
    """plotly.min.js from the installed ``plotly`` package (read once per process)."""
    try:
        source = importlib.resources.files("plotly") / "package_data" / "plotly.min.js"
        body = source.read_bytes()
    except (ModuleNotFoundError, OSError) as exc:
        raise ApiError(
            "The admin charts need plotly.js from the `plotly` package, which is missing:"
            " pip install 'plotly>=5.20,<8'.",
            code="admin.plotly_missing",
            status=503,
        ) from exc
    digest = hashlib.sha256(body).hexdigest()[:20]
    return Asset(body=body, gzipped=gzip.compress(body, 6, mtime=0), digest=digest)


def plotly_url() -> str:
    """The script URL for templates: versioned by digest, so it can be cached for good."""
    try:
        return f"{PLOTLY_PATH}?v={plotly_asset().digest}"
    except ApiError:
        return PLOTLY_PATH  # the page loads; its charts say plotly.js is missing


@router.get(PLOTLY_PATH, include_in_schema=False)
def plotly_js(request: Request) -> Response:
    asset = plotly_asset()
    zipped = "gzip" in request.headers.get("accept-encoding", "").lower()
    etag = f'"{asset.digest}{"-gz" if zipped else ""}"'
    headers = {
        "Cache-Control": "private, max-age=31536000, immutable",
        "ETag": etag,
        "Vary": "Accept-Encoding",
    }
    if etag in request.headers.get("if-none-match", ""):
        return Response(status_code=304, headers=headers)
    if zipped:
        headers["Content-Encoding"] = "gzip"
    return Response(
        asset.gzipped if zipped else asset.body,
        media_type="text/javascript; charset=utf-8",
        headers=headers,
    )


def _admin_page(request: Request, admin: Admin, template: str, section: str) -> HTMLResponse:
    return admin_page(
        request,
        template,
        {
            "admin": admin,
            "csrf_token": admin.csrf_token or "",
            "csrf_field": CSRF_FIELD,
            "plotly_url": plotly_url(),
            "section": section,
        },
    )


@router.get(HOME_PATH, response_class=HTMLResponse, include_in_schema=False)
def admin_home(request: Request, admin: AdminDep) -> HTMLResponse:
    return _admin_page(request, admin, "admin.html", "dashboard")


@router.get("/admin/models", response_class=HTMLResponse, include_in_schema=False)
def admin_models(request: Request, admin: AdminDep) -> HTMLResponse:
    return _admin_page(request, admin, "admin_models.html", "models")


@router.get("/api/admin/me", response_model=AdminPublic, summary="Who am I (admin)")
def me(admin: AdminDep) -> AdminPublic:
    return AdminPublic(
        name=admin.name,
        via=admin.via,
        user_id=admin.user_id,
        token_id=admin.token_id,
        session_expires_at=admin.expires_at,
    )


@router.get("/admin/contributions", response_class=HTMLResponse, include_in_schema=False)
def admin_contributions(request: Request, admin: AdminDep) -> HTMLResponse:
    return _admin_page(request, admin, "admin_contributions.html", "contributions")


@router.get("/admin/evaluation", response_class=HTMLResponse, include_in_schema=False)
def admin_evaluation(request: Request, admin: AdminDep) -> HTMLResponse:
    return _admin_page(request, admin, "admin_evaluation.html", "evaluation")


@router.get("/admin/review", response_class=HTMLResponse, include_in_schema=False)
def admin_review(request: Request, admin: AdminDep) -> HTMLResponse:
    return _admin_page(request, admin, "admin_review.html", "review")
