"""A throwaway Redis server for the tests (Debian's ``redis-server``; ``make test`` installs
it): on a free loopback port, no persistence, in a temporary directory; stoppable and
startable again on the same port (for the outage tests)."""

from __future__ import annotations

import shutil
import socket
import tempfile
from pathlib import Path

from support.server import ServerProcess, free_port


class RedisUnavailable(RuntimeError):
    pass


class RedisServer(ServerProcess):
    name = "redis-server"
    unavailable = RedisUnavailable

    def __init__(self) -> None:
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        if not Path(binary).is_file():
            raise RedisUnavailable(
                "redis-server is not installed: apt-get install redis-server (make system-deps)"
            )
        self.binary = binary
        self.port = free_port()
        self.tmpdir = Path(tempfile.mkdtemp(prefix="lookalike-redis-"))

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def command(self) -> list[str]:
        return [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                "--appendonly", "no", "--dir", str(self.tmpdir)]  # fmt: skip

    def answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.tmpdir, ignore_errors=True)
