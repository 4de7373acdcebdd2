"""Several processes, one service: two `lookalike serve`s (one of them with two worker
processes) and a separate `lookalike worker`, sharing PostgreSQL, Redis and the data dir.
A prediction made on one shows on the other's dashboard, a promotion made on one is served
by both within seconds, a contribution taken by one is processed by the worker."""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from support.api import Orl, api_settings, trained_home
from support.pg import new_database
from support.redis_server import RedisServer
from support.server import answer, join_gallery, running_server, running_worker

from lookalike import accounts
from lookalike.db import make_engine, session_factory
from lookalike.retrain import retrain

pytestmark = pytest.mark.slow


def wait_until(check: Any, seconds: float = 30) -> Any:
    deadline = time.monotonic() + seconds
    while True:
        found = check()
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


def test_two_app_processes_and_a_worker_share_one_service(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory, orl: Orl, postgres_url: str
) -> None:
    home = tmp_path / "home"
    shutil.copytree(
        trained_home(tmp_path_factory, orl), home, ignore=shutil.ignore_patterns("*.sqlite3*")
    )
    with new_database(postgres_url, "processes") as database, RedisServer() as redis:
        settings = api_settings(home, database, redis_url=redis.url)  # m0001 the champion
        second = retrain(settings, strict=False, actor="test").version  # a tie: not promoted
        engine = make_engine(database)
        with session_factory(engine)() as session, session.begin():
            _, token = accounts.create_token(session, "operator")
        engine.dispose()
        auth = {"Authorization": f"Bearer {token}"}
        shared = {"redis_url": redis.url, "secret_key": settings.secret_key}
        logs = tmp_path / "logs"
        logs.mkdir()
        with (
            running_server(settings, logs, **shared) as one,
            running_server(settings, logs, workers=2, **shared) as other,
        ):
            assert one.health()["model"] == other.health()["model"] == "m0001"
            asked = answer(one, orl["s2"][9])  # made on one...
            exported = httpx.get(
                other.url + "/api/analytics/export.json", headers=auth, timeout=30
            ).json()
            assert asked["id"] in {row["id"] for row in exported["data"]}  # ...seen on the other

            promoted = httpx.post(
                f"{other.url}/api/models/{second}/promote", json={}, headers=auth, timeout=30
            )
            assert promoted.status_code == 200, promoted.text
            both = wait_until(
                lambda: one.health()["model"] == other.health()["model"] == second, seconds=20
            )
            assert both, (one.health(), other.health())
            assert answer(one, orl["s3"][9])["model_version"] == second

            with running_worker(home, database_url=database, **shared):
                joined = join_gallery(one.url, orl["s7"][:6]).json()
                assert joined["status"] == "queued"  # no job worker in the app processes

                def enrolled() -> bool:
                    url = other.url + joined["status_url"]
                    return bool(httpx.get(url, timeout=10).json()["status"] == "enrolled")

                assert wait_until(enrolled, seconds=60)
                assert answer(other, orl["s7"][9])["answer"]["names"] == ["Ada"]


def test_sigterm_answers_the_requests_in_flight_first(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory, orl: Orl
) -> None:
    """A deployment stops a server with SIGTERM: a visitor whose photo is still arriving
    gets their answer, then the process shuts down; new connections are refused."""
    import signal
    import threading

    home = tmp_path / "home"
    shutil.copytree(
        trained_home(tmp_path_factory, orl), home, ignore=shutil.ignore_patterns("*.sqlite3*")
    )
    settings = api_settings(home, f"sqlite:///{tmp_path / 'db.sqlite3'}")
    logs = tmp_path / "logs"
    logs.mkdir()
    photo = orl["s2"][9].read_bytes()
    boundary = "lookalike-boundary"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="photo"; filename="a.pgm"\r\n'
        "Content-Type: image/x-portable-graymap\r\n\r\n"
    ).encode()
    tail = f"\r\n--{boundary}--\r\n".encode()
    sent_first = threading.Event()

    def slow_body() -> Any:  # the photo arrives over two seconds
        yield head + photo[:1000]
        sent_first.set()
        time.sleep(2)
        yield photo[1000:] + tail

    with running_server(settings, logs) as server:
        result: dict[str, Any] = {}

        def visit() -> None:
            result["response"] = httpx.post(
                server.url + "/api/predictions",
                content=slow_body(),
                headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
                timeout=60,
            )

        visitor = threading.Thread(target=visit)
        visitor.start()
        assert sent_first.wait(30)
        time.sleep(0.3)  # the request is in the server's hands
        server.process.send_signal(signal.SIGTERM)
        visitor.join(60)
        response = result["response"]
        assert response.status_code == 201, response.text  # answered, not cut off
        assert response.json()["answer"]["names"] == ["s2"]
        # Then a clean shutdown: uvicorn re-raises the signal once done, so the exit status
        # says "terminated by SIGTERM" as a process manager expects.
        assert server.process.wait(timeout=30) in (0, -signal.SIGTERM)
        log = server.log.read_text()
        assert log.index("Shutting down") < log.index('"POST /api/predictions HTTP/1.1" 201')
        assert "Application shutdown complete" in log
        with pytest.raises(httpx.TransportError):
            httpx.get(server.url + "/api/health", timeout=5)
