"""Redis by URL (``redis_url``, a real ``redis-server`` on loopback): several app processes
share the rate limits and the job queue, a separate worker process takes the jobs, and
while Redis is down predictions still answer and contributions wait for it."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.api import Orl, api_settings, client_for, linked_home
from support.redis_server import RedisServer

from lookalike.api.state import app_state
from lookalike.config import Settings
from lookalike.jobs import Jobs


@pytest.fixture
def redis() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


@pytest.fixture
def shared(trained: Path, tmp_path: Path, database_url: str, redis: RedisServer) -> Settings:
    return api_settings(
        linked_home(trained, tmp_path / "home"),
        database_url,
        redis_url=redis.url,
        jobs_in_process=False,
    )


def predict(client: Any, photo: Path) -> Any:
    return client.post("/api/predictions", files={"photo": (photo.name, photo.read_bytes())})


def join(client: Any, photos: list[Path]) -> Any:
    files = [("photo", (p.name, p.read_bytes())) for p in photos]
    return client.post(
        "/api/contributions", data={"display_name": "Ada", "consent": "true"}, files=files
    )


def test_two_app_processes_share_the_rate_limit(shared: Settings, orl: Orl) -> None:
    limited = shared.model_copy(update={"rate_limit_per_minute": 3})
    with client_for(limited) as one, client_for(limited) as other:
        assert [predict(one, orl["s1"][8]).status_code for _ in range(2)] == [201, 201]
        assert predict(other, orl["s2"][8]).status_code == 201  # the third hit, counted once
        refused = predict(other, orl["s2"][8])
        assert refused.status_code == 429 and int(refused.headers["retry-after"]) >= 1
        assert predict(one, orl["s1"][8]).status_code == 429  # both see the same window


def test_a_separate_worker_takes_the_jobs_from_redis(shared: Settings, orl: Orl) -> None:
    with client_for(shared) as client:
        body = join(client, orl["s7"][:6]).json()
        assert body["status"] == "queued"  # nothing runs it in this process
        assert Jobs(shared).huey.pending_count() == 1  # it waits in Redis
        worker = subprocess.Popen(
            [
                str(Path(sys.executable).with_name("lookalike")),
                "worker",
                "--home",
                str(shared.home),
            ],
            env={
                **os.environ,
                "LOOKALIKE_REDIS_URL": shared.redis_url,
                "LOOKALIKE_DATABASE_URL": shared.database_url,
            },
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            status = wait_for(client, body["status_url"], "enrolled")
        finally:
            worker.terminate()
            worker.wait(timeout=30)
        assert status == "enrolled"
        answer = predict(client, orl["s7"][9]).json()["answer"]
        assert answer["names"] == ["Ada"]


def wait_for(client: Any, url: str, wanted: str, seconds: float = 60) -> str:
    deadline = time.monotonic() + seconds
    status = ""
    while time.monotonic() < deadline:
        status = client.get(url).json()["status"]
        if status == wanted:
            break
        time.sleep(0.2)
    return status


def test_while_redis_is_down_predictions_answer_and_jobs_wait(
    shared: Settings, orl: Orl, redis: RedisServer
) -> None:
    limited = shared.model_copy(update={"rate_limit_per_minute": 3})
    with client_for(limited) as client:
        redis.stop()
        started = time.perf_counter()
        answers = [predict(client, orl["s1"][8]).status_code for _ in range(5)]
        assert answers == [201] * 5  # no limit applied, none refused
        assert time.perf_counter() - started < 10  # never waiting on the dead server
        body = join(client, orl["s7"][:6])
        assert body.status_code == 202, body.text  # stored; its job could not be queued
        contribution = body.json()
        assert contribution["status"] == "queued"

        redis.start()  # back (empty: what it held is gone): the requeue job finds it
        jobs = Jobs(limited)
        assert jobs.requeue_contributions(older_than=60) == 0  # not stale yet
        assert jobs.requeue_contributions(older_than=0) == 1
        app_state(client.app)._jobs = jobs
        assert jobs.huey.pending_count() == 1
        task = jobs.huey.dequeue()
        assert task is not None
        jobs.huey.execute(task)  # what a worker does
        assert client.get(contribution["status_url"]).json()["status"] == "enrolled"
        assert jobs.requeue_contributions(older_than=0) == 0  # enrolled: not queued again
