"""Typed dependencies: what a route may ask for, all from the ``AppState`` that
``create_app`` built once. Use the ``...Dep`` aliases in route signatures; admin-only
routers declare ``require_admin`` once (``lookalike.api.auth``)."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from lookalike.api.errors import ApiError
from lookalike.api.gallery import GalleryIndex
from lookalike.api.limits import client_address
from lookalike.api.state import AppState, app_state
from lookalike.config import Settings
from lookalike.inference import Predictor
from lookalike.registry import Registry


def get_state(request: Request) -> AppState:
    return app_state(request.app)


StateDep = Annotated[AppState, Depends(get_state)]


def _settings(state: StateDep) -> Settings:
    return state.settings


def _predictor(state: StateDep) -> Predictor:
    return state.predictor


def _registry(state: StateDep) -> Registry:
    return state.registry


def _engine(state: StateDep) -> Engine:
    return state.engine


def _gallery(state: StateDep) -> GalleryIndex:
    return state.gallery.get(state.predictor)


def _session(state: StateDep) -> Iterator[Session]:
    """A session for one request (sync endpoints run in the threadpool)."""
    with state.sessions() as session:
        yield session


SettingsDep = Annotated[Settings, Depends(_settings)]
PredictorDep = Annotated[Predictor, Depends(_predictor)]
RegistryDep = Annotated[Registry, Depends(_registry)]
EngineDep = Annotated[Engine, Depends(_engine)]
SessionDep = Annotated[Session, Depends(_session)]
GalleryDep = Annotated[GalleryIndex, Depends(_gallery)]


async def rate_limit(request: Request, state: StateDep) -> None:
    """Dependency for public endpoints that do work."""
    limiter = state.rate_limiter
    retry_after = limiter.hit(client_address(request))
    if retry_after is not None:
        seconds = max(1, math.ceil(retry_after))
        raise ApiError(
            f"Too many requests: at most {limiter.per_minute} a minute. Try again in {seconds} s.",
            code="rate_limited",
            status=429,
            details={"limit_per_minute": limiter.per_minute, "retry_after": seconds},
            headers={"Retry-After": str(seconds)},
        )


async def contribution_limit(request: Request, state: StateDep) -> None:
    """Dependency for ``POST /api/contributions``: each one is a video to process, so a
    client gets ``contributions_per_hour`` of them, on top of the general limit."""
    limiter = state.contribution_limiter
    retry_after = limiter.hit(client_address(request))
    if retry_after is not None:
        minutes = max(1, math.ceil(retry_after / 60))
        raise ApiError(
            f"Too many contributions from this address: at most {limiter.per_minute} an hour."
            f" Try again in {minutes} min.",
            code="rate_limited",
            status=429,
            details={"limit_per_hour": limiter.per_minute, "retry_after": math.ceil(retry_after)},
            headers={"Retry-After": str(math.ceil(retry_after))},
        )
