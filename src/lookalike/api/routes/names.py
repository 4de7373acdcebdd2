"""The name generator: ``GET /api/names`` (JSON) and the ``/names`` page.

The generator is the app state's ``names`` (made by ``create_app``); it loads the registry's
champion lazily and again only when the champion changes (see ``lookalike.names.service``).
Parameters are checked by the engine, so out-of-range values get a precise code
(``names.count``, ``names.temperature``, ``names.prefix``, ...) in the one error shape.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, Field

from lookalike.api.deps import StateDep, rate_limit
from lookalike.api.routes.pages import public_page
from lookalike.names.generate import MAX_TEMPERATURE, MIN_TEMPERATURE

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


@router.get(
    "/api/names",
    response_model=NamesPublic,
    summary="Invent new names",
    dependencies=[Depends(rate_limit)],
)
def get_names(
    state: StateDep,
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
    generated = state.names.generate(
        count=count, temperature=temperature, prefix=prefix, seed=seed, max_length=max_length
    )
    return NamesPublic(**generated.to_dict())


@router.get("/names", response_class=HTMLResponse, include_in_schema=False)
def names_page(request: Request, state: StateDep) -> HTMLResponse:
    settings = state.settings
    return public_page(
        state,
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
