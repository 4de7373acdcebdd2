"""``lookalike serve``: uvicorn on a socket bound before anything is announced; one
process, or ``--workers N`` processes sharing that socket (uvicorn's supervisor restarts one
that dies). Each worker builds its own app from the same settings (passed as JSON in the
environment, secrets included, never on a command line); the job worker runs once, in the
supervising process (or in a separate ``lookalike worker``).

The socket is bound here, not by uvicorn, so a bad port, an address in use or an unknown
host is reported in the project's one error format before "Serving on" is printed (uvicorn
would log and exit 1, or wrap a port like 99999 around to another one).

Forwarded headers (``X-Forwarded-For`` / ``-Proto``) are trusted only from the proxies named
in ``forwarded_allow_ips`` (none by default): otherwise anyone on the local host could pick
the client address that rate limits and the sign-in limit key on.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from lookalike.config import Settings
from lookalike.errors import InvalidInput, LookalikeError

if TYPE_CHECKING:
    from fastapi import FastAPI

MAX_PORT = 65535
SETTINGS_ENV = "LOOKALIKE_WORKER_SETTINGS"  # the settings, as JSON, for each worker process


def worker_app() -> FastAPI:
    """The app of one ``--workers`` process (uvicorn calls this factory in each)."""
    from lookalike.api import create_app

    return create_app(Settings.model_validate_json(os.environ[SETTINGS_ENV]))


def check_port(port: int) -> int:
    if not 1 <= port <= MAX_PORT:
        raise InvalidInput(
            f"Expected a port between 1 and {MAX_PORT}; got {port}. Pass another --port (or"
            " LOOKALIKE_PORT).",
            code="serve.bad_port",
            details={"port": port},
        )
    return port


def listen(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host:port`` and listening, or a ``LookalikeError`` saying why."""
    check_port(port)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise InvalidInput(
            f"Cannot listen on {host!r}: the address is not known ({exc.strerror}). Pass an IP"
            " address or host name of this machine with --host.",
            code="serve.bad_host",
            details={"host": host},
        ) from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.bind(address)
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        raise LookalikeError(
            f"Cannot listen on {host}:{port}: {exc.strerror or exc}. Stop what uses it or pass"
            " another --port.",
            code="serve.cannot_listen",
            details={"host": host, "port": port},
            status=503,
        ) from None
    sock.set_inheritable(True)
    return sock


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """How uvicorn treats forwarded headers: only from ``forwarded_allow_ips``."""
    trusted = [ip.strip() for ip in settings.forwarded_allow_ips.split(",") if ip.strip()]
    return {"proxy_headers": bool(trusted), "forwarded_allow_ips": trusted or None}


def serve(
    settings: Settings,
    host: str | None = None,
    port: int | None = None,
    announce: Callable[[str], None] = print,
    workers: int = 1,
) -> None:
    """Serve the web service until interrupted (SIGTERM or Ctrl+C: requests in flight are
    answered first). ``workers``: processes, each with its own model in memory."""
    import uvicorn

    from lookalike.api import create_app

    if workers < 1:
        raise InvalidInput(f"Expected at least 1 worker; got {workers}.", code="serve.bad_workers")
    host = host or settings.host
    port = port if port is not None else settings.port
    sock = listen(host, port)
    shown = f"[{host}]" if ":" in host else host
    consumer = None
    try:
        options = {"log_level": "info", **uvicorn_options(settings)}
        if workers == 1:
            config = uvicorn.Config(create_app(settings), workers=1, **options)
        else:
            os.environ[SETTINGS_ENV] = settings.model_dump_json()
            config = uvicorn.Config(
                "lookalike.server:worker_app", factory=True, workers=workers, **options
            )
        if settings.jobs_in_process:
            from lookalike.jobs import Jobs

            # Threads: scheduled retrains and queued jobs run beside the server.
            consumer = Jobs(settings).start_in_background()
        processes = f" in {workers} processes" if workers > 1 else ""
        announce(
            f"Serving on http://{shown}:{port}/{processes} (data: {settings.home}); Ctrl+C stops."
        )
        if workers == 1:
            uvicorn.Server(config).run(sockets=[sock])
        else:
            from uvicorn.supervisors import Multiprocess

            Multiprocess(config, sockets=[sock]).run()
    finally:
        sock.close()
        if consumer is not None:
            consumer.stop(graceful=False)
