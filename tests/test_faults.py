"""Faults of the production stack under load, with the real processes: two ``lookalike serve``
(one of them with two worker processes) and a ``lookalike worker`` over PostgreSQL, Redis and
an S3 server on loopback, predictions sent to both servers in turn while a fault comes and
goes (``support/faults.py``). ``bench/load.py`` measures the same faults at full load.

What ``test_database_outage.py`` (one in-process app, the local object store) and
``api/test_redis.py`` (TestClient apps, the requeue called by hand on a fresh queue) do not
cover: PostgreSQL restarted (stopped, or killed as in a crash) under several processes while
visitors' photos go to S3 (every 201 one row and its object, every 503 inside the window,
each process recovering alone), and a worker that lives through a Redis outage and then runs
the job that could not be queued during it, while an admin's retrain request is refused
cleanly meanwhile (503 ``queue.unavailable``; it was a 500).
"""

from __future__ import annotations

import shutil
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest
from support.api import Orl, api_settings, assert_error, client_for, linked_home, trained_home
from support.faults import Load, S3Server, audit, bodies, logged, wait_for_201s
from support.pg import PostgresCluster, new_database
from support.redis_server import RedisServer
from support.server import free_port, join_gallery, running_server, running_worker

from lookalike import accounts
from lookalike.db import make_engine, session_factory
from lookalike.jobs import Jobs, QueueUnavailable

PREFIX = "faults"


def copied_home(tmp_path: Path, factory: pytest.TempPathFactory, orl: Orl) -> Path:
    """The tests' trained data dir, copied (the servers share it), without its database."""
    home = tmp_path / "home"
    ignore = shutil.ignore_patterns("*.sqlite3*")
    shutil.copytree(trained_home(factory, orl), home, ignore=ignore)
    return home


def held_out(orl: Orl) -> list[Path]:
    return [orl[f"s{i}"][n] for i in range(1, 7) for n in (6, 8)]


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["fast", "immediate"])  # stopped, or as if it crashed
def test_a_postgres_restart_under_load_is_clean_503s_then_every_process_recovers(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory, orl: Orl, mode: str
) -> None:
    home = copied_home(tmp_path, tmp_path_factory, orl)
    # Its own, restarted under the servers' feet; a commit acknowledged is kept, as in
    # production (the tests' clusters otherwise acknowledge before writing the WAL).
    cluster = PostgresCluster(durable_commits=True)
    url = cluster.start()
    try:
        with RedisServer() as redis, S3Server() as s3:
            settings = api_settings(home, url, redis_url=redis.url)
            shared = {
                "redis_url": redis.url,
                "secret_key": settings.secret_key,
                "rate_limit_per_minute": "100000",  # never reached; Redis asked every time
                **s3.settings(PREFIX),
            }
            logs = tmp_path / "logs"
            logs.mkdir()
            before = logged(url)
            with (
                running_server(settings, logs, workers=1, **shared) as one,
                running_server(settings, logs, workers=2, **shared) as other,
            ):
                servers = [one, other]
                load = Load([s.url for s in servers], bodies(held_out(orl), 2), 6).start()
                wait_for_201s(load, 0.0, len(servers))
                time.sleep(0.5)
                began = load.now()
                cluster.pause(mode)  # every session cut
                down = load.now()  # a commit in doubt may have started until here
                try:
                    time.sleep(1.0)
                    for server in servers:  # both say so: a balancer takes them out
                        health = httpx.get(server.url + "/api/health", timeout=10)
                        assert health.status_code == 503, health.text
                        assert health.json()["error"]["code"] == "database.unavailable"
                    time.sleep(1.0)
                finally:
                    cluster.resume()
                over = load.now()
                recovered = wait_for_201s(load, over, len(servers))  # no restart of the app
                time.sleep(1.0)
                outcomes = load.stop()
                for server in servers:
                    assert server.health()["model"] == "m0001"
            kept = {f"consented/{key}" for key in s3.keys(f"{PREFIX}/consented")}
        statuses = Counter((o.status, o.code) for o in outcomes)
        assert set(statuses) <= {(201, ""), (503, "database.unavailable")}, statuses
        failed = [o for o in outcomes if o.status != 201]
        assert {o.server for o in failed} == {0, 1}, statuses  # both went through it
        assert {o.retry_after for o in failed} == {"5"}
        late = [o for o in failed if o.ended < began or o.started > over]
        assert not late, (began, over, late[:3])  # only inside the restart window
        assert recovered - over < 10, (over, recovered)
        new_rows = logged(url).since(before)
        checked = audit(outcomes, new_rows, kept)
        # Every 201 is one row, and with consent its photo: nothing lost, nothing doubled...
        assert checked.missing == checked.orphans == 0, checked
        assert checked.rows == checked.successes + checked.extra, checked
        # ...and a row no 201 answered can only be a commit in doubt: the server went down
        # after writing it but before saying so, the request got a 503 (and its kept photo
        # was removed). Only a request in flight when the server was stopped can be one.
        # (Started before the stop returned, not before it began: the kill takes a moment.)
        in_doubt = sum(1 for o in failed if o.started <= down)
        assert checked.extra <= in_doubt and checked.lost <= checked.extra, (checked, in_doubt)
        assert any(o.consent for o in outcomes if o.status == 201) and kept
    finally:
        cluster.stop()


@pytest.mark.slow
def test_while_redis_is_down_both_processes_answer_and_the_worker_runs_the_job_after(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory, orl: Orl, postgres_url: str
) -> None:
    home = copied_home(tmp_path, tmp_path_factory, orl)
    with new_database(postgres_url, "faults") as database, RedisServer() as redis:
        settings = api_settings(home, database, redis_url=redis.url)
        engine = make_engine(database)
        with session_factory(engine)() as session, session.begin():
            _, token = accounts.create_token(session, "operator")
        engine.dispose()
        auth = {"Authorization": f"Bearer {token}"}
        shared = {
            "redis_url": redis.url,
            "secret_key": settings.secret_key,
            "rate_limit_per_minute": "100000",  # every prediction asks Redis first
        }
        logs = tmp_path / "logs"
        logs.mkdir()
        with (
            running_server(settings, logs, workers=1, **shared) as one,
            running_server(settings, logs, workers=1, **shared) as other,
            running_worker(home, database_url=database, **shared) as worker,
        ):
            load = Load([one.url, other.url], bodies(held_out(orl), 0), 4).start()
            wait_for_201s(load, 0.0, 2)
            redis.stop()
            down = load.now()
            joined = join_gallery(one.url, orl["s7"][:6])
            assert joined.status_code == 202, joined.text  # stored; not queued
            contribution = joined.json()
            assert contribution["status"] == "queued"
            refused = httpx.post(other.url + "/api/models/retrain", headers=auth, timeout=30)
            assert refused.status_code == 503, refused.text  # a clean refusal, not a 500
            assert refused.json()["error"]["code"] == "queue.unavailable"
            wait_for_201s(load, down + 0.5, 2)  # served while down...
            time.sleep(max(0.0, down + 4 - load.now()))
            redis.start()  # back, empty: whatever it held is gone
            outcomes = load.stop()
            assert outcomes and {o.status for o in outcomes} == {201}, Counter(
                (o.status, o.code) for o in outcomes
            )  # ...and never refused
            assert max(o.ms for o in outcomes) < 10_000  # nor held on the dead server

            # What the worker's requeue task does every few minutes (REQUEUE_MINUTES):
            # the contribution whose job was never queued is queued again...
            assert Jobs(settings).requeue_contributions(older_than=0) == 1
            status_url = other.url + contribution["status_url"]
            deadline = time.monotonic() + 60
            status = ""
            while time.monotonic() < deadline and status != "enrolled":
                time.sleep(0.3)
                status = httpx.get(status_url, timeout=10).json()["status"]
            # ...and the worker, alive through the outage, runs it.
            assert status == "enrolled"
            assert worker.poll() is None
            again = httpx.post(other.url + "/api/models/retrain", headers=auth, timeout=30)
            assert again.status_code == 202, again.text


def test_a_queue_that_cannot_be_reached_is_a_clean_503_for_a_retrain(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory, orl: Orl
) -> None:
    """Nothing listens at the Redis URL: asking for a retrain, or for a job's outcome, is 503
    ``queue.unavailable`` (it was a 500), and predictions answer as ever."""
    home = linked_home(trained_home(tmp_path_factory, orl), tmp_path / "home")
    dead = f"redis://127.0.0.1:{free_port()}/0"
    settings = api_settings(
        home, f"sqlite:///{tmp_path / 'db.sqlite3'}", redis_url=dead, jobs_in_process=False
    )
    with pytest.raises(QueueUnavailable):
        Jobs(settings).enqueue_retrain()
    engine = make_engine(settings.effective_database_url)
    with session_factory(engine)() as session, session.begin():
        _, token = accounts.create_token(session, "operator")
    engine.dispose()
    auth = {"Authorization": f"Bearer {token}"}
    with client_for(settings, raise_errors=False) as client:
        assert_error(client.post("/api/models/retrain", headers=auth), 503, "queue.unavailable")
        assert_error(client.get("/api/models/jobs/abc", headers=auth), 503, "queue.unavailable")
        photo = orl["s2"][8]
        answered = client.post(
            "/api/predictions", files={"photo": (photo.name, photo.read_bytes())}
        )
        assert answered.status_code == 201, answered.text
