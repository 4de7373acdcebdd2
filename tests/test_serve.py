"""`lookalike serve`: bad ports and busy addresses are refused before "Serving on", and the
client address comes from the connection unless a trusted proxy is configured."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from support.server import free_port

from lookalike.config import Settings
from lookalike.server import listen, uvicorn_options

SCRIPT = Path(sys.executable).with_name("lookalike")


def serve(*args: str, home: Path, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [str(SCRIPT), "serve", "--home", str(home), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "LOOKALIKE_JOBS_IN_PROCESS": "false", **(env or {})},
    )


@pytest.mark.parametrize(
    ("port", "code"),
    [("99999", "serve.bad_port"), ("-5", "serve.bad_port"), ("0", "serve.bad_port")],
)
def test_a_bad_port_is_refused_before_serving(tmp_path: Path, port: str, code: str) -> None:
    done = serve("--port", port, home=tmp_path)
    out, _ = done.communicate(timeout=60)
    assert done.returncode == 2, out
    assert f"[{code}]" in out and "Serving on" not in out and "Traceback" not in out
    assert len(out.strip().splitlines()) == 1


def test_a_busy_port_is_refused_in_one_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = serve("--port", str(port), home=tmp_path)
        out, _ = done.communicate(timeout=60)
    assert done.returncode == 2, out
    assert "[serve.cannot_listen]" in out and f"127.0.0.1:{port}" in out
    assert "Serving on" not in out and "Traceback" not in out
    with pytest.raises(Exception, match="not known"):
        listen("no-such-host.invalid", free_port())


@contextmanager
def running(home: Path, env: dict[str, str]) -> Iterator[str]:
    port = free_port()
    process = serve("--port", str(port), home=home, env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, process.communicate()[0]
            try:
                httpx.get(base + "/api/health", timeout=2)
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline
                time.sleep(0.2)
        yield base
    finally:
        process.terminate()
        out, _ = process.communicate(timeout=30)
        assert "Serving on" in out.splitlines()[0]


def test_a_forwarded_address_does_not_escape_the_sign_in_limit(tmp_path: Path) -> None:
    env = {"LOOKALIKE_LOGIN_ATTEMPTS_PER_MINUTE": "3"}
    with running(tmp_path / "home", env) as base:
        codes = [
            httpx.post(
                base + "/admin/login",
                data={"name": "x", "password": "y"},
                headers={"X-Forwarded-For": f"10.0.0.{i}", "Accept": "application/json"},
            ).status_code
            for i in range(6)
        ]
    assert codes[:3] == [403] * 3 and codes[3:] == [429] * 3, codes


def test_forwarded_headers_only_from_named_proxies() -> None:
    assert uvicorn_options(Settings()) == {"proxy_headers": False, "forwarded_allow_ips": None}
    named = Settings(forwarded_allow_ips="10.0.0.1, 192.168.0.0/16")
    assert uvicorn_options(named) == {
        "proxy_headers": True,
        "forwarded_allow_ips": ["10.0.0.1", "192.168.0.0/16"],
    }
