"""The web service: ``create_app(settings)`` builds the FastAPI app (``lookalike serve``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fastapi import FastAPI

    from lookalike.config import Settings

__all__ = ["create_app"]


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the web service for ``settings`` (see ``lookalike.api.app``)."""
    from lookalike.api.app import create_app as build

    return build(settings)
