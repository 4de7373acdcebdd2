"""The real server in its own process (``lookalike serve``), the job worker
(``lookalike worker``), a free port, and the lifecycle of the other servers the tests run in
their own processes (``ServerProcess``: Redis, S3) (no tests here).

Used by the tests that kill or swap things under a running server (``test_retrain_crash``,
``test_hot_swap``) and by ``bench/serve.py``.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import httpx

from lookalike.config import Settings


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def child_env(**settings: str) -> dict[str, str]:
    """This environment without any ``LOOKALIKE_*`` setting, plus ``settings``."""
    fields = {f"LOOKALIKE_{name.upper()}" for name in Settings.model_fields}
    env = {k: v for k, v in os.environ.items() if k.upper() not in fields}
    env["COLUMNS"] = "200"
    env.update({f"LOOKALIKE_{k.upper()}": v for k, v in settings.items()})
    return env


class ServerProcess:
    """A server in its own process on ``self.port``: started (once it answers), stopped,
    and startable again on the same port (for the outage tests). A subclass says how to run
    it (``command``) and how to tell it answers (``answers``)."""

    port: int
    process: subprocess.Popen[bytes] | None = None
    name = "server"
    start_seconds = 10.0
    unavailable: type[Exception] = RuntimeError  # raised when it does not start

    def command(self) -> list[str]:
        raise NotImplementedError

    def answers(self) -> bool:
        raise NotImplementedError

    def start(self) -> None:
        self.process = subprocess.Popen(
            self.command(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + self.start_seconds
        while not self.answers():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise self.unavailable(f"{self.name} did not answer on port {self.port}")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Stopped for good (a subclass also removes what it made)."""
        self.stop()


@dataclass
class Server:
    """A server process, its base URL and its log file."""

    process: subprocess.Popen[bytes]
    url: str
    log: Path

    def stop(self) -> None:
        """SIGINT (a graceful shutdown), then SIGKILL if it is still up after 20 s."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def health(self) -> dict[str, Any]:
        r = httpx.get(self.url + "/api/health", timeout=30)
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        return body


@contextmanager
def running_server(
    settings: Settings, logs: Path, *, workers: int = 1, **more: str
) -> Iterator[Server]:
    """``lookalike serve`` (the real CLI, its own process) on a free port for ``settings``'
    data dir and database: no job worker, no rate limit (``more``: other settings, by name,
    these two included).
    Yields once it serves a model."""
    port = free_port()
    log = logs / f"server-{port}.log"
    defaults = {
        "database_url": settings.effective_database_url,
        "backbone": settings.backbone,
        "jobs_in_process": "false",
        "rate_limit_per_minute": "0",
    }
    env = child_env(**{**defaults, **more})
    cmd = [sys.executable, "-m", "lookalike.cli", "serve", "--home", str(settings.home)]
    cmd += ["--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)]
    with log.open("wb") as out:
        process = subprocess.Popen(
            cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=tempfile.gettempdir()
        )
    server = Server(process, f"http://127.0.0.1:{port}", log)
    try:
        deadline = time.monotonic() + 120
        while True:
            assert process.poll() is None, f"the server exited:\n{log.read_text()}"
            try:
                r = httpx.get(server.url + "/api/health", timeout=5)
                if r.status_code == 200 and r.json().get("model"):
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, f"the server never got healthy:\n{log.read_text()}"
            time.sleep(0.1)
        yield server
    finally:
        server.stop()


@contextmanager
def running_worker(
    home: Path, *, training: bool = True, **settings: str
) -> Iterator[subprocess.Popen[bytes]]:
    """``lookalike worker`` (the real CLI, its own process) for ``home``, with ``settings``
    by name (``training=False``: ``--no-training``, contributions only); terminated on exit."""
    cmd = [sys.executable, "-m", "lookalike.cli", "worker", "--home", str(home)]
    worker = subprocess.Popen(
        cmd if training else [*cmd, "--no-training"],
        env=child_env(**settings),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield worker
    finally:
        worker.terminate()
        worker.wait(timeout=30)


def answer(server: Server, photo: Path) -> dict[str, Any]:
    """A real prediction through the server (201, or the test fails)."""
    files = {"photo": (photo.name, photo.read_bytes(), "application/octet-stream")}
    r = httpx.post(server.url + "/api/predictions", files=files, timeout=60)
    assert r.status_code == 201, (r.status_code, r.text)
    body: dict[str, Any] = r.json()
    return body


def join_gallery(url: str, photos: list[Path], name: str = "Ada") -> httpx.Response:
    """Ask the server at ``url`` to add ``photos`` of one person to the gallery (consent
    given): the contribution's answer."""
    files = [("photo", (p.name, p.read_bytes())) for p in photos]
    data = {"display_name": name, "consent": "true"}
    return httpx.post(url + "/api/contributions", data=data, files=files, timeout=60)
