"""The app's routes, flat: recent FastAPI includes routers by reference, so ``app.routes``
holds the included routers, each with its effective routes inside."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any


def flat_routes(routes: Iterable[Any]) -> Iterator[Any]:
    """Every route, the included routers' own routes in place of the routers."""
    for route in routes:
        if hasattr(route, "effective_route_contexts"):  # included routers (recent FastAPI)
            yield from route.effective_route_contexts()
        else:
            yield route


def allowed_methods(routes: Iterable[Any], path: str) -> list[str]:
    """The methods of the resource ``path`` names (for a 405's ``Allow``): every route with
    the path template of the first route that matches it. Starlette names only that first
    route's methods; a template such as ``/api/models/{version}`` that also matches
    ``/api/models/rollback`` is another resource."""
    flat = [r for r in flat_routes(routes) if getattr(r, "path_regex", None) is not None]
    first = next((r for r in flat if r.path_regex.match(path)), None)
    if first is None:
        return []
    methods: set[str] = set()
    for route in flat:
        if route.path == first.path:
            methods |= set(getattr(route, "methods", None) or ())
    return sorted(methods)
