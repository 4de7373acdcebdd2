"""Limits on what one client may send: request body size and request rate.

``BodySizeLimit`` is a pure ASGI middleware: a declared ``Content-Length`` above the limit is
refused (413 ``request.too_large``) before a byte of the body is read, and a body without a
length (chunked) is counted as it streams in and cut off at the limit, whatever the endpoint
was doing with it.

``RateLimiter`` is a sliding window per client address, used as a dependency on the public
endpoints that do work (429 ``rate_limited`` with ``Retry-After``). In memory it is per
process; ``RedisRateLimiter`` keeps the window in Redis (``redis_url``), so every app
process on every machine counts the same hits. ``limiter`` picks one from the settings.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from fastapi import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from lookalike.api.errors import ApiError, error_body

if TYPE_CHECKING:
    from redis import Redis

log = logging.getLogger("lookalike.api")


def _human(n: int) -> str:
    if n < 1024:
        return f"{n} bytes"
    value = float(n)
    for unit in ("KiB", "MiB"):
        value /= 1024
        if value < 1024:
            return f"{value:.1f} {unit}"
    return f"{value / 1024:.1f} GiB"


def too_large(max_bytes: int, size: int | None = None) -> ApiError:
    got = f" (this one is {_human(size)})" if size is not None else ""
    return ApiError(
        f"The request is larger than the {_human(max_bytes)} allowed{got}. Send fewer or"
        " smaller photos.",
        code="request.too_large",
        status=413,
        details={"max_bytes": max_bytes, "bytes": size},
    )


class _BodyTooLarge(ApiError):
    pass


class BodySizeLimit:
    """Refuse request bodies larger than ``max_bytes`` (declared or streamed), and bodies that
    stall: a client that sends nothing for ``read_timeout`` seconds gets 408 (a slow client
    must not hold a connection and a worker forever)."""

    def __init__(self, app: ASGIApp, max_bytes: int, read_timeout: float = 30.0) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.read_timeout = read_timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared: int | None = None
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    await _send_error(
                        send, 400, "request.bad_request", "Content-Length is not a number.", {}
                    )
                    return
        if declared is not None and declared > self.max_bytes:
            await _send(send, too_large(self.max_bytes, declared))
            return

        received = 0
        exceeded = False
        timed_out = False
        started = False

        async def limited_receive() -> Message:
            nonlocal received, exceeded, timed_out
            try:
                message = await asyncio.wait_for(receive(), self.read_timeout)
            except TimeoutError:
                timed_out = exceeded = True  # answered below, like an oversized body
                raise _BodyTooLarge(
                    "timeout", code="request.timeout", status=408, details={}
                ) from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    exceeded = True
                    raise _BodyTooLarge(
                        too_large(self.max_bytes).message,
                        code="request.too_large",
                        status=413,
                        details={"max_bytes": self.max_bytes, "bytes": None},
                    )
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if exceeded:
                return  # whatever the endpoint made of the cut-off body, the answer is 413
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except Exception:
            if not exceeded or started:
                raise
        if exceeded and not started:
            if timed_out:
                await _send_error(
                    send,
                    408,
                    "request.timeout",
                    f"The request body stalled for more than {self.read_timeout:g} s. Check the"
                    " connection and send the photo again.",
                    {"read_timeout_seconds": self.read_timeout},
                )
            else:
                await _send(send, too_large(self.max_bytes))


async def _send(send: Send, exc: ApiError) -> None:
    await _send_error(send, exc.status, exc.code, exc.message, exc.details)


async def _send_error(
    send: Send, status: int, code: str, message: str, details: dict[str, Any]
) -> None:
    body = json.dumps(error_body(code, message, details)).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"x-content-type-options", b"nosniff"),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class RateLimiter:
    """At most ``per_minute`` hits per client in any 60-second window (0: no limit)."""

    def __init__(
        self,
        per_minute: int,
        *,
        window: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        max_clients: int = 100_000,
    ) -> None:
        self.per_minute = per_minute
        self.window = window
        self.clock = clock
        self.max_clients = max_clients
        self._hits: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def hit(self, client: str) -> float | None:
        """Record a hit; returns None when allowed, else the seconds until one is allowed."""
        if self.per_minute <= 0:
            return None
        now = self.clock()
        start = now - self.window
        with self._lock:
            hits = self._hits.get(client)
            if hits is None:
                if len(self._hits) >= self.max_clients:
                    self._forget(start)
                hits = self._hits[client] = deque()
            while hits and hits[0] <= start:
                hits.popleft()
            if len(hits) >= self.per_minute:
                return max(hits[0] - start, 0.001)
            hits.append(now)
            return None

    def _forget(self, start: float) -> None:
        """Drop clients with no hit in the window; if still full, the oldest ones."""
        for key in [k for k, v in self._hits.items() if not v or v[-1] <= start]:
            del self._hits[key]
        while len(self._hits) >= self.max_clients:
            del self._hits[next(iter(self._hits))]

    def __len__(self) -> int:
        return len(self._hits)


class Limiter(Protocol):
    per_minute: int

    def hit(self, client: str) -> float | None: ...


# One atomic step per hit: drop the hits older than the window, count, add this one if
# allowed; answers 0 (allowed) or the milliseconds until the oldest hit leaves the window.
_SLIDING_WINDOW = """
local key, now, window, limit, member = KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]),
    tonumber(ARGV[3]), ARGV[4]
redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
if redis.call('ZCARD', key) >= limit then
    local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
    return math.max(1, math.ceil(tonumber(oldest[2]) + window - now))
end
redis.call('ZADD', key, now, member)
redis.call('PEXPIRE', key, window)
return 0
"""


class RedisRateLimiter:
    """``RateLimiter``'s window in Redis, shared by every process (times in the Redis
    server's clock, so the machines' clocks need not agree). While Redis cannot be reached
    every hit is allowed (and logged once a minute): a limit never stops the service."""

    def __init__(self, client: Redis, per_minute: int, *, window: float = 60.0, name: str) -> None:
        self.client = client
        self.per_minute = per_minute
        self.window_ms = int(window * 1000)
        self.prefix = f"lookalike:limit:{name}:"
        self._script = client.register_script(_SLIDING_WINDOW)
        self._warned = 0.0

    def hit(self, client: str) -> float | None:
        if self.per_minute <= 0:
            return None
        from redis.exceptions import RedisError

        try:
            seconds, micros = self.client.time()
            now_ms = int(seconds) * 1000 + int(micros) // 1000
            wait_ms = int(
                self._script(
                    keys=[self.prefix + client],
                    args=[now_ms, self.window_ms, self.per_minute, f"{now_ms}:{uuid.uuid4().hex}"],
                )
            )
        except RedisError as exc:
            if time.monotonic() - self._warned > 60:
                self._warned = time.monotonic()
                log.warning("rate limit not applied: Redis cannot be reached (%s)", exc)
            return None
        return wait_ms / 1000 if wait_ms else None


def redis_client(url: str) -> Redis:
    """A client that gives up quickly: a limit check must never hold a request."""
    from lookalike.redis_lock import redis_client as client

    return client(url, timeout=0.5, connect_timeout=0.5)


def limiter(
    per_minute: int, *, name: str, window: float = 60.0, redis: Redis | None = None
) -> Limiter:
    """A limiter shared through ``redis`` when there is one, else in this process."""
    if redis is not None:
        return RedisRateLimiter(redis, per_minute, window=window, name=name)
    return RateLimiter(per_minute, window=window)


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"
