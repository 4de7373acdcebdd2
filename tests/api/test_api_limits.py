"""The body limits as ASGI middleware: a stalled body is answered 408 in the one error shape."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from starlette.types import Message, Receive, Scope, Send

from lookalike.api.limits import BodySizeLimit


async def _reading_app(scope: Scope, receive: Receive, send: Send) -> None:
    """An endpoint that reads the whole body, then answers 200."""
    while True:
        message = await receive()
        if not message.get("more_body"):
            break
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


def _call(receive: Receive, **limits: Any) -> list[Message]:
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/api/predictions", "headers": []}
    asyncio.run(BodySizeLimit(_reading_app, **limits)(scope, receive, send))
    return sent


def test_a_body_that_stalls_is_answered_408() -> None:
    chunks = [{"type": "http.request", "body": b"abc", "more_body": True}]

    async def stalling_receive() -> Message:
        if chunks:
            return chunks.pop()
        await asyncio.sleep(3600)  # the client stopped sending
        raise AssertionError("unreachable")

    sent = _call(stalling_receive, max_bytes=1000, read_timeout=0.05)
    assert sent[0]["status"] == 408
    body = json.loads(sent[1]["body"])
    assert body["error"]["code"] == "request.timeout"
    assert "stalled" in body["error"]["message"]
    assert body["error"]["details"] == {"read_timeout_seconds": 0.05}


def test_a_steady_body_within_the_limits_passes() -> None:
    chunks = [
        {"type": "http.request", "body": b"b", "more_body": False},
        {"type": "http.request", "body": b"a", "more_body": True},
    ]

    async def receive() -> Message:
        return chunks.pop()

    sent = _call(receive, max_bytes=1000, read_timeout=1.0)
    assert sent[0]["status"] == 200


def test_a_streamed_body_over_the_limit_is_answered_413() -> None:
    chunks = [{"type": "http.request", "body": b"x" * 600, "more_body": True}] * 2

    async def receive() -> Message:
        return chunks.pop()

    sent = _call(receive, max_bytes=1000, read_timeout=1.0)
    assert sent[0]["status"] == 413
    assert json.loads(sent[1]["body"])["error"]["code"] == "request.too_large"
