"""One router per resource."""

from lookalike.api.routes import (
    admin,
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
    admin.router,
    pages.router,
]

__all__ = ["ROUTERS"]
