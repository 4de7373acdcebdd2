"""PostgreSQL goes away under load and comes back: the service answers 503 with Retry-After
meanwhile (never a 500, never a reset connection), health says so, and it recovers without a
restart; every 201 is one logged row, nothing more."""

from __future__ import annotations

import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, func, select
from support.api import api_settings, linked_home, trained_home
from support.browser import running_server
from support.pg import PostgresCluster

from lookalike.db import PredictionRecord

pytestmark = pytest.mark.slow

Orl = dict[str, list[Path]]


def test_a_database_outage_answers_503_and_recovers(
    tmp_path_factory: pytest.TempPathFactory, tmp_path: Path, orl: Orl
) -> None:
    cluster = PostgresCluster()  # make test installs PostgreSQL: its absence is a failure
    url = cluster.start()
    try:
        from lookalike.api import create_app

        home = linked_home(trained_home(tmp_path_factory, orl), tmp_path / "home")
        settings = api_settings(home, url)
        photo = orl["s2"][8].read_bytes()
        statuses: Counter[str] = Counter()
        retry_after: set[str] = set()
        stop = threading.Event()

        with running_server(create_app(settings)) as base:

            def load() -> None:
                with httpx.Client(base_url=base, timeout=30) as client:
                    while not stop.is_set():
                        try:
                            r = client.post(
                                "/api/predictions", files=[("photo", ("a.pgm", photo, "x/y"))]
                            )
                        except httpx.HTTPError as exc:
                            statuses[type(exc).__name__] += 1
                            continue
                        statuses[str(r.status_code)] += 1
                        if r.status_code == 503:
                            assert r.json()["error"]["code"] == "database.unavailable"
                            retry_after.add(r.headers.get("retry-after", ""))

            workers = [threading.Thread(target=load) for _ in range(3)]
            for w in workers:
                w.start()
            time.sleep(1.0)
            cluster.pause()
            try:
                time.sleep(1.0)
                health = httpx.get(base + "/api/health", timeout=10)
                assert health.status_code == 503, health.text
                assert health.json()["error"]["code"] == "database.unavailable"
                assert health.headers["retry-after"] == "5"
                time.sleep(1.0)
            finally:
                cluster.resume()
            deadline = time.monotonic() + 20
            while httpx.get(base + "/api/health", timeout=10).status_code != 200:
                assert time.monotonic() < deadline, "health did not recover"
                time.sleep(0.2)
            before = statuses["201"]
            time.sleep(1.5)  # served again, without a restart
            stop.set()
            for w in workers:
                w.join(timeout=60)
            assert statuses["201"] > before, statuses
        # Only successes and 503s: no 500, no reset or refused connection.
        assert set(statuses) <= {"201", "503"}, statuses
        assert statuses["503"] > 0 and retry_after == {"5"}, statuses
        engine = create_engine(url.replace("postgresql+psycopg", "postgresql+psycopg"))
        with engine.connect() as connection:
            logged = connection.scalar(select(func.count()).select_from(PredictionRecord))
        engine.dispose()
        assert logged == statuses["201"], (logged, statuses)
    finally:
        cluster.stop()
