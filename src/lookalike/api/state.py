"""``AppState``: everything a request may need, built once by ``create_app`` from one
``Settings`` and reached through the typed dependencies of ``lookalike.api.deps``."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, cast

from fastapi import FastAPI
from fastapi.templating import Jinja2Templates
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from lookalike.api.gallery import GalleryCache
from lookalike.api.limits import Limiter
from lookalike.api.metrics import Metrics
from lookalike.config import Settings
from lookalike.enrolled import EnrolledGallery
from lookalike.inference import Predictor
from lookalike.names.service import NameGenerator
from lookalike.quotes import QuoteOfTheDay
from lookalike.registry import Registry
from lookalike.storage import ObjectStore

if TYPE_CHECKING:
    from lookalike.jobs import Jobs


@dataclass
class AppState:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]  # the prediction log, accounts, uploads, registry
    registry: Registry  # model versions; the predictor follows its champion
    predictor: Predictor
    store: ObjectStore  # uploads and photos kept with consent
    templates: Jinja2Templates
    metrics: Metrics  # a Prometheus registry of this app's own
    rate_limiter: Limiter  # public endpoints, per client
    login_limiter: Limiter  # sign-in attempts, per client
    contribution_limiter: Limiter  # contributions per client and hour
    gallery: GalleryCache  # reference photos of the current model
    names: NameGenerator  # loads its model on first use
    quote_of_the_day: QuoteOfTheDay
    enrolled: EnrolledGallery  # contributors who joined since the model was trained
    _jobs: Jobs | None = field(default=None, repr=False)
    _jobs_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def jobs(self) -> Jobs:
        """The job queue (opened on first use: most apps never queue anything)."""
        with self._jobs_lock:
            if self._jobs is None:
                from lookalike.jobs import Jobs  # huey and the training pipeline behind it

                self._jobs = Jobs(self.settings)
            return self._jobs


def app_state(app: object) -> AppState:
    """The ``AppState`` of an app made by ``create_app`` (typed ``object``: test clients and
    middleware hold the app as a plain ASGI callable)."""
    state: AppState = cast(FastAPI, app).state.lookalike
    return state
