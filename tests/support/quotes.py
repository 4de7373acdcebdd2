"""A real quotes API on loopback for the quote-of-the-day tests (no tests here).

``QuoteServer`` serves, on 127.0.0.1 and a free port, one path per behaviour:

    /quote      {"quote": {"text": ..., "author": ...}}  (the current ``quote``)
    /list       [{"q": ..., "a": ...}]                     (a top-level list)
    /hang       accepts the request and never answers
    /garbage    200 with bytes that are not JSON
    /error      HTTP 500
    /empty      valid JSON without the text
    /big        a JSON answer larger than 64 KiB

``mode`` switches what /quote does ("ok", "hang", "garbage", "error"), and ``hits`` counts the
requests per path.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class QuoteServer:
    def __init__(self) -> None:
        self.mode = "ok"
        self.quote = {"text": "Knowledge is power.", "author": "Francis Bacon"}
        self.hits: Counter[str] = Counter()
        self.release = threading.Event()  # set at shutdown: hanging handlers return
        self._httpd: ThreadingHTTPServer | None = None

    @property
    def base(self) -> str:
        assert self._httpd is not None
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def url(self, path: str) -> str:
        return self.base + path

    def _answer(self, handler: BaseHTTPRequestHandler) -> None:
        path = handler.path.split("?")[0]
        self.hits[path] += 1
        behaviour = self.mode if path == "/quote" else path.strip("/")
        if behaviour == "hang":
            self.release.wait(30)
            return
        if behaviour == "error":
            send(handler, 500, b'{"message": "internal"}')
        elif behaviour == "garbage":
            send(handler, 200, b"<html>\x00\xff not json", "text/html")
        elif behaviour == "empty":
            send(handler, 200, json.dumps({"quote": {"author": "Nobody"}}).encode())
        elif behaviour == "big":
            send(handler, 200, json.dumps({"quote": {"text": "x" * 100_000}}).encode())
        elif behaviour == "list":
            body = [{"q": self.quote["text"], "a": self.quote["author"]}]
            send(handler, 200, json.dumps(body).encode())
        else:
            send(handler, 200, json.dumps({"quote": self.quote}).encode())

    @contextmanager
    def running(self) -> Iterator[QuoteServer]:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                owner._answer(self)

            def log_message(self, *args: Any) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,), daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self.release.set()
            self._httpd.shutdown()
            self._httpd.server_close()
            thread.join(5)


def send(
    handler: BaseHTTPRequestHandler, status: int, body: bytes, kind: str = "application/json"
) -> None:
    handler.send_response(status)
    handler.send_header("Content-Type", kind)
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)
