"""The FastAPI app factory: everything built from one ``Settings``, nothing global.

``create_app(settings)`` builds one ``AppState`` (``lookalike.api.state``; routes reach it
through the typed dependencies of ``lookalike.api.deps``): among others one ``predictor``
(loaded and warmed at start-up when a model exists; without one the app still starts and
prediction endpoints answer 503 ``model.none``; concurrent requests are analysed side by
side, see ``lookalike.inference.Backbones``).

Middleware, outermost first: metrics -> body size limit -> security headers -> FastAPI's
exception handling (one error shape, ``lookalike.api.errors``) -> routes.
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from fastapi_offline import FastAPIOffline
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from lookalike import __version__
from lookalike.api.errors import install_error_handlers
from lookalike.api.gallery import GalleryCache
from lookalike.api.limits import BodySizeLimit, limiter, redis_client
from lookalike.api.metrics import Metrics, MetricsMiddleware
from lookalike.api.openapi import document_errors, install_openapi
from lookalike.api.routes import ROUTERS
from lookalike.api.state import AppState
from lookalike.config import Settings, get_settings
from lookalike.db import make_engine, session_factory
from lookalike.enrolled import EnrolledGallery
from lookalike.errors import LookalikeError
from lookalike.inference import Predictor
from lookalike.names.service import NameGenerator
from lookalike.quotes import QuoteOfTheDay
from lookalike.registry import Registry
from lookalike.services.uploads import sweep_uploads
from lookalike.storage import ObjectStore

log = logging.getLogger("lookalike.api")

WEB_DIR = Path(__file__).resolve().parent.parent / "web"


class SecurityHeaders:
    """``X-Content-Type-Options: nosniff`` on every answer (nothing is ever sniffed into
    something executable) and no referrer leaking to other sites."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                names = {name.lower() for name, _ in headers}
                if b"x-content-type-options" not in names:
                    headers.append((b"x-content-type-options", b"nosniff"))
                if b"referrer-policy" not in names:
                    headers.append((b"referrer-policy", b"no-referrer"))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_wrapper)


def inference_workers() -> int:
    """Photos analysed side by side under concurrent requests: one per core we may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def _warm(predictor: Predictor) -> str | None:
    """Load the current model and its backbone now, so the first visitor does not wait."""
    try:
        return predictor.load().info.version
    except LookalikeError as exc:
        if exc.code == "model.none":
            log.info("no model yet: predictions answer 503 until one is trained")
        else:
            log.warning("model not loaded at start-up: [%s] %s", exc.code, exc.message)
        return None


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the web service for ``settings`` (default: the process settings)."""
    settings = settings or get_settings()
    url = settings.effective_database_url
    engine = make_engine(url)
    sessions = session_factory(engine)
    registry = Registry(settings, engine)
    # The champion is read from the registry between requests: a promotion or a rollback
    # is served without a restart.
    predictor = Predictor(settings, workers=inference_workers(), champion=registry.champion)
    store = ObjectStore(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # The migrations, then the models trained before the registry (once).
        await run_in_threadpool(registry.prepare)
        try:
            await run_in_threadpool(sweep_uploads, sessions, store, settings)
        except Exception:
            log.exception("sweeping expired uploads at start-up failed")
        version = await run_in_threadpool(_warm, predictor)
        log.info("lookalike %s ready (model %s)", __version__, version or "none")
        try:
            yield
        finally:
            engine.dispose()

    # FastAPI's own /docs loads Swagger UI from a CDN: blank offline. fastapi-offline is the
    # same page with the same Swagger UI files shipped inside its wheel (MIT, no other
    # dependency), served here under /api/docs/assets.
    app = FastAPIOffline(
        title="lookalike",
        version=__version__,
        summary="Who or what does a face look like?",
        lifespan=lifespan,
        docs_url="/api/docs",
        redoc_url=None,
        static_url="/api/docs/assets",
        openapi_url="/api/openapi.json",
        swagger_ui_oauth2_redirect_url="/api/docs/oauth2-redirect",
    )
    redis = redis_client(settings.redis_url) if settings.redis_url else None
    state = app.state.lookalike = AppState(
        settings=settings,
        engine=engine,
        sessions=sessions,
        registry=registry,
        predictor=predictor,
        store=store,
        templates=Jinja2Templates(directory=str(WEB_DIR / "templates")),
        metrics=Metrics(),
        rate_limiter=limiter(settings.rate_limit_per_minute, name="requests", redis=redis),
        login_limiter=limiter(settings.login_attempts_per_minute, name="sign-in", redis=redis),
        contribution_limiter=limiter(
            settings.contributions_per_hour, name="contributions", window=3600, redis=redis
        ),
        gallery=GalleryCache(),
        names=NameGenerator(settings, registry),  # loads its model on first use
        quote_of_the_day=QuoteOfTheDay(settings, sessions),
        enrolled=EnrolledGallery(
            engine, settings.top_k_per_class, settings.enrolled_index_min_size, store
        ),
    )

    install_error_handlers(app)
    document_errors(ROUTERS)
    for router in ROUTERS:
        app.include_router(router)
    install_openapi(app, settings)
    app.mount("/static", StaticFiles(directory=WEB_DIR / "static", check_dir=False), name="static")
    # add_middleware wraps: the last one added is the outermost.
    app.add_middleware(SecurityHeaders)
    app.add_middleware(
        BodySizeLimit,
        max_bytes=settings.max_request_bytes,
        read_timeout=settings.request_timeout_seconds,
    )
    app.add_middleware(MetricsMiddleware, metrics=state.metrics)
    return app
