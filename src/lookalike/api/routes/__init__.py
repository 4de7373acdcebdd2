"""One router per resource."""

from lookalike.api.routes import (
    admin,
    analytics,
    classes,
    contributions,
    health,
    images,
    login,
    metrics,
    models,
    names,
    pages,
    predictions,
    quote,
    review,
    uploads,
)

ROUTERS = [
    predictions.router,
    uploads.router,
    contributions.router,
    classes.router,
    models.router,
    images.router,
    images.admin_router,
    health.router,
    metrics.router,
    login.router,
    admin.router,
    review.router,
    analytics.router,
    names.router,
    quote.router,
    pages.router,
]

__all__ = ["ROUTERS"]
