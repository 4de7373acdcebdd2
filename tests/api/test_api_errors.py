"""One error shape everywhere, request limits (body size, rate) and the 500 handler."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.routing import Mount
from support.api import (
    TestClient,
    api_settings,
    assert_error,
    assert_error_shape,
    client_for,
    linked_home,
)

from lookalike.api.limits import BodySizeLimit, RateLimiter
from lookalike.api.state import app_state
from lookalike.config import Settings

Orl = dict[str, list[Path]]

METHODS = ["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"]
PATH_VALUES = {
    "prediction_id": ["0" * 32, "x" * 300, "%00%ff"],
    "key": ["A" * 32, "../etc", "k" * 100],
    "sha256": ["0" * 64, "ZZ", "a" * 65],
}
BODIES: list[dict[str, Any]] = [
    {},
    {"content": b"\x00\xffjunk{", "headers": {"content-type": "application/json"}},
    {"content": b"--x\r\njunk", "headers": {"content-type": "multipart/form-data; boundary=x"}},
    {"content": b"junk", "headers": {"content-type": "multipart/form-data"}},
    {"json": {"feedback": 1, "upload_key": None, "content_type": [], "size": "big"}},
    {"json": []},
    {"content": b"\x89PNG\r\n\x1a\nbroken", "headers": {"content-type": "image/png"}},
]


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    """Server errors come back as answers (500 in the one shape), redirects are not followed."""
    with client_for(settings, raise_errors=False) as c:
        c.follow_redirects = False
        yield c


def concrete_paths(path: str) -> list[str]:
    names = re.findall(r"{(\w+)(?::\w+)?}", path)
    if not names:
        return [path]
    paths = []
    for i in range(max(len(PATH_VALUES.get(n, ["x"])) for n in names)):
        p = path
        for n in names:
            values = PATH_VALUES.get(n, ["x"])
            p = re.sub(r"{" + n + r"(?::\w+)?}", values[i % len(values)], p)
        paths.append(p)
    return paths


def flat_routes(routes: list[Any]) -> Iterator[Any]:
    """``app.routes`` with included routers expanded (recent FastAPI keeps them nested)."""
    for route in routes:
        if hasattr(route, "effective_route_contexts"):
            yield from route.effective_route_contexts()
        else:
            yield route


def test_every_route_answers_errors_in_one_shape(client: TestClient) -> None:
    paths: set[str] = {"/nope", "/api", "/api/predictions/x/y/z", "/static/nope.js"}
    paths.add("/static/../pyproject.toml")
    for route in flat_routes(client.app.routes):  # type: ignore[attr-defined]
        if isinstance(route, Mount):
            paths.update({f"{route.path}/missing.css", f"{route.path}/"})
        else:
            paths.update(concrete_paths(route.path))
    assert {"/api/predictions", "/api/uploads", "/api/classes", "/metrics", "/"} <= paths
    seen: dict[int, int] = {}
    for path in sorted(paths):
        for method in METHODS:
            for body in BODIES:
                r = client.request(method, path, **body)
                seen[r.status_code] = seen.get(r.status_code, 0) + 1
                where = (method, path, body, r.status_code, r.text[:300])
                # This data dir has a lookalike model but no name generator: the one
                # expected 5xx is the documented "train one first" answer of /api/names.
                unavailable = r.status_code == 503 and path == "/api/names"
                assert r.status_code < 500 or unavailable, where
                if not 200 <= r.status_code < 400:
                    assert r.headers["content-type"] == "application/json", where
                    assert_error_shape(r.json())
    assert {404, 405, 422} <= set(seen), seen


def test_not_found_and_method_not_allowed(client: TestClient) -> None:
    assert_error(client.get("/api/nothing-here"), 404, "http.not_found")
    assert_error(client.get("/static/missing.js"), 404, "http.not_found")
    r = client.delete("/api/classes")
    assert_error(r, 405, "http.method_not_allowed")
    assert r.headers["allow"] == "GET"


def test_validation_errors_list_the_fields(client: TestClient) -> None:
    details = assert_error(
        client.post("/api/uploads", json={"size": "big"}), 422, "request.invalid"
    )
    fields = {f["field"]: f for f in details["fields"]}
    assert set(fields) == {"body.content_type", "body.size"}
    assert all(f["message"] and f["type"] for f in fields.values())


def test_unexpected_errors_are_500_with_a_generic_message(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    def broken() -> None:
        raise RuntimeError("secret internal detail")

    app_state(client.app).predictor.load = broken
    with caplog.at_level(logging.ERROR, logger="lookalike.api"):
        r = client.get("/api/models/current")
    assert_error(r, 500, "internal")
    assert "secret" not in r.text
    assert any("secret internal detail" in str(rec.exc_info) for rec in caplog.records)


def test_request_body_limit(trained: Path, tmp_path: Path, database_url: str) -> None:
    settings = api_settings(
        linked_home(trained, tmp_path / "home"), database_url, max_request_bytes=10_000
    )
    with client_for(settings) as client:
        declared = client.post(
            "/api/predictions", files=[("photo", ("a.jpg", b"x" * 20_000, "image/jpeg"))]
        )
        assert assert_error(declared, 413, "request.too_large")["max_bytes"] == 10_000
        # Chunked: no Content-Length, counted as it streams in.
        multipart = {"content-type": "multipart/form-data; boundary=b"}
        chunks = iter(
            [b"--b\r\nContent-Disposition: form-data; name=photo; filename=a\r\n\r\n"]
            + [b"y" * 4096] * 5
        )
        chunked = client.post("/api/predictions", content=chunks, headers=multipart)
        assert_error(chunked, 413, "request.too_large")
        small = client.post("/api/uploads", json={"content_type": "image/png", "size": 5})
        assert small.status_code == 201


def test_body_limit_refuses_before_reading() -> None:
    received: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        received.append(await receive())

    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"x" * 100, "more_body": False}

    async def send(message: Any) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "headers": [(b"content-length", b"100")]}
    asyncio.run(BodySizeLimit(app, max_bytes=99)(scope, receive, send))
    assert received == []  # the body was never read
    assert sent[0]["status"] == 413


def test_rate_limit(trained: Path, tmp_path: Path, database_url: str) -> None:
    settings = api_settings(
        linked_home(trained, tmp_path / "home"), database_url, rate_limit_per_minute=2
    )
    with client_for(settings) as client:
        body = {"content_type": "image/png", "size": 5}
        assert client.post("/api/uploads", json=body).status_code == 201
        assert client.post("/api/predictions/nope/feedback", json={}).status_code == 422
        limited = client.post("/api/uploads", json=body)
        details = assert_error(limited, 429, "rate_limited")
        assert 1 <= int(limited.headers["retry-after"]) <= 60
        assert details["retry_after"] == int(limited.headers["retry-after"])
        assert client.get("/api/health").status_code == 200  # reading is not limited


def test_rate_limiter_sliding_window() -> None:
    now = [1000.0]
    limiter = RateLimiter(3, clock=lambda: now[0], max_clients=2)
    assert [limiter.hit("a") for _ in range(3)] == [None, None, None]
    assert limiter.hit("a") == pytest.approx(60.0)
    assert limiter.hit("b") is None  # per client
    now[0] += 30
    assert limiter.hit("a") == pytest.approx(30.0)
    now[0] += 30.5
    assert limiter.hit("a") is None  # the first three left the window
    now[0] += 61
    assert limiter.hit("c") is None  # a third client: idle ones are forgotten
    assert len(limiter) <= 2
    assert RateLimiter(0).hit("a") is None  # 0 disables
