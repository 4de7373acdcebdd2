"""``GET /api/quote``: the quote of the day (an external API cached in the database, or a
built-in public-domain quote); see ``lookalike.quotes``."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from fastapi import APIRouter
from pydantic import BaseModel, Field

from lookalike.api.deps import StateDep

router = APIRouter(prefix="/api/quote", tags=["quote"])


class QuotePublic(BaseModel):
    text: str
    author: str | None
    source: Literal["api", "builtin"] = Field(
        description="api: from the configured quotes API (cached); builtin: the project's own"
        " public-domain quotes"
    )
    fetched_at: datetime | None = Field(None, description="When the quotes API gave it")
    stale: bool = Field(
        False, description="The quotes API failed since; this is its last good answer"
    )


@router.get("", response_model=QuotePublic, summary="The quote of the day")
def get_quote(state: StateDep) -> QuotePublic:
    return QuotePublic(**state.quote_of_the_day.get().to_dict())
