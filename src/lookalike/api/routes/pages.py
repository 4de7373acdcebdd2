"""``GET /``: the public page (Jinja2 template; its JS and CSS are under ``/static/``)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

router = APIRouter(tags=["pages"])

# The page's scripts and styles come from /static; photos from /api/images or data: URLs
# (the face crop) or blob: URLs (a chosen file); the camera stream is a MediaStream.
PAGE_CSP = (
    "default-src 'self'; img-src 'self' data: blob:; media-src 'self' blob: mediastream:;"
    " object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
def index(request: Request) -> HTMLResponse:
    templates: Jinja2Templates = request.app.state.templates
    settings = request.app.state.settings
    response = templates.TemplateResponse(
        request,
        "index.html",
        {
            "max_photos": settings.max_photos_per_request,
            "max_image_bytes": settings.max_image_bytes,
        },
    )
    response.headers["Content-Security-Policy"] = PAGE_CSP
    response.headers["Referrer-Policy"] = "no-referrer"
    return response
