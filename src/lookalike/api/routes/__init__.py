"""One router per resource."""

from lookalike.api.routes import (
    admin,
    analytics,
    classes,
    contributions,
    evaluation,
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
    review_queue,
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
    review_queue.router,
    evaluation.router,
    analytics.router,
    names.router,
    quote.router,
    pages.router,
]

__all__ = ["ROUTERS"]
