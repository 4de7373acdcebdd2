"""One router per resource."""

from lookalike.api.routes import (
    classes,
    health,
    images,
    metrics,
    models,
    pages,
    predictions,
    uploads,
)

ROUTERS = [
    predictions.router,
    uploads.router,
    classes.router,
    models.router,
    images.router,
    health.router,
    metrics.router,
    pages.router,
]

__all__ = ["ROUTERS"]
