"""The name generator: ``GET /api/names`` (JSON) and the ``/names`` page.

The generator lives on ``app.state.names`` (made by ``create_app``); it loads the registry's
champion lazily and again only when the champion changes (see ``lookalike.names.service``).
Parameters are checked by the engine, so out-of-range values get a precise code
(``names.count``, ``names.temperature``, ``names.prefix``, ...) in the one error shape.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel, Field

from lookalike.api.limits import rate_limit
from lookalike.api.routes.pages import PAGE_CSP
from lookalike.names.generate import MAX_TEMPERATURE, MIN_TEMPERATURE
from lookalike.names.service import NameGenerator

router = APIRouter(tags=["names"])


class NamesPublic(BaseModel):
    """Newly invented names (never one of the training corpus)."""

    data: list[str]
    count: int = Field(description="Names returned (fewer than requested when the tries ran out)")
    requested: int
    temperature: float
    prefix: str
    max_length: int
    seed: int = Field(description="Ask again with this seed to get the same names")
    model: str = Field(description="Name generator version")
    corpus: str = Field(description="The corpus it was trained on")
    tries: int = Field(description="Candidates drawn")
    rejected: dict[str, int] = Field(
        description="Candidates rejected: in_corpus, duplicate, too_long, malformed"
    )


def name_generator(request: Request) -> NameGenerator:
    """The app's one ``NameGenerator``."""
    generator: NameGenerator = request.app.state.names
    return generator


@router.get(
    "/api/names",
    response_model=NamesPublic,
    summary="Invent new names",
    dependencies=[Depends(rate_limit)],
)
def get_names(
    request: Request,
    count: int = Query(5, description="How many names: 1 to names_max_count (15)"),
    temperature: float = Query(
        1.0,
        description=f"{MIN_TEMPERATURE} (safe, familiar) to {MAX_TEMPERATURE} (wild)",
    ),
    prefix: str = Query("", description="The names start with this (case-insensitive)"),
    seed: int | None = Query(None, description="Same seed, same names"),
    max_length: int | None = Query(
        None, description="Longest name in characters (default and limit: names_max_length)"
    ),
) -> NamesPublic:
    generated = name_generator(request).generate(
        count=count, temperature=temperature, prefix=prefix, seed=seed, max_length=max_length
    )
    return NamesPublic(**generated.to_dict())


@router.get("/names", response_class=HTMLResponse, include_in_schema=False)
def names_page(request: Request) -> HTMLResponse:
    templates: Jinja2Templates = request.app.state.templates
    settings = request.app.state.settings
    response = templates.TemplateResponse(
        request,
        "names.html",
        {
            "max_count": settings.names_max_count,
            "default_count": min(5, settings.names_max_count),
            "max_prefix": settings.names_max_length - 1,
            "min_temperature": MIN_TEMPERATURE,
            "max_temperature": MAX_TEMPERATURE,
            "quote_timeout_ms": int(settings.quote_timeout_seconds * 1000),
        },
    )
    response.headers["Content-Security-Policy"] = PAGE_CSP
    response.headers["Referrer-Policy"] = "no-referrer"
    return response
