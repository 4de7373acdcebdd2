"""Two job queues: the training jobs (they need the data dir's dataset) on a queue of their
own, contributions on the general one, in the same SQLite file or the same Redis; a
``lookalike worker --no-training`` (a host without the dataset) takes only the general one."""

from __future__ import annotations

import shutil
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from huey import MemoryHuey
from support.api import Orl, api_settings, client_for, trained_home
from support.redis_server import RedisServer
from support.server import running_worker

from lookalike.config import Settings
from lookalike.jobs import GENERAL_QUEUE, TRAINING_QUEUE, Jobs, QueuedJob
from lookalike.kinds import Trigger

TRAINING_TASKS = {"retrain", "schedule", "new-images", "retention"}
GENERAL_TASKS = {"contribution", "requeue"}


def registered(queue: Any) -> set[str]:
    """The task names a queue's consumer can run (registered as ``module.name``)."""
    return {key.rsplit(".", 1)[-1] for key in queue._registry._registry}


@pytest.fixture(params=["sqlite", "redis"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Settings]:
    """Settings whose queues live in the data dir's SQLite file, or in a real Redis."""
    settings = Settings(home=tmp_path / "home", backbone="test")
    if request.param == "sqlite":
        yield settings
        return
    with RedisServer() as redis:
        yield settings.model_copy(update={"redis_url": redis.url})


def waiting(jobs: Jobs) -> dict[str, int]:
    """Jobs waiting per queue name (none: left out), read from the backend itself, not
    through huey's queue methods."""
    settings = jobs.settings
    if settings.redis_url:
        from redis import Redis

        client = Redis.from_url(settings.redis_url)
        try:  # each queue is a list of its own (huey drops the name's dash from the key)
            counts = {q.name: int(client.llen(q.storage.queue_key)) for q in jobs.queues()}
        finally:
            client.close()
        return {name: count for name, count in counts.items() if count}
    with sqlite3.connect(settings.data_dir.jobs_queue) as db:
        rows = db.execute("select queue, count(*) from task group by queue").fetchall()
    return {name: count for name, count in rows}


def test_each_job_lands_on_its_queue(backend: Settings) -> None:
    jobs = Jobs(backend)
    assert (jobs.huey.name, jobs.training.name) == (GENERAL_QUEUE, TRAINING_QUEUE)
    assert registered(jobs.training) == TRAINING_TASKS
    assert registered(jobs.huey) == GENERAL_TASKS
    assert jobs.queues() == [jobs.huey, jobs.training]
    assert jobs.queues(training=False) == [jobs.huey]

    queued = jobs.enqueue_retrain(Trigger.MANUAL, "test")
    assert waiting(jobs) == {TRAINING_QUEUE: 1}
    jobs.enqueue_contribution("c1")
    assert waiting(jobs) == {TRAINING_QUEUE: 1, GENERAL_QUEUE: 1}
    assert [task.name for task in jobs.huey.pending()] == ["contribution"]
    assert [task.id for task in jobs.training.pending()] == [queued.id]
    # Joining reads the training queue: another process's Jobs joins the queued retrain.
    assert Jobs(backend).enqueue_retrain() == QueuedJob(queued.id, joined=True)

    # A worker on the training queue runs it (nothing to train on: an outcome, not a crash)
    # and its result is read from that queue.
    task = jobs.training.dequeue()
    assert task is not None and task.id == queued.id
    jobs.training.execute(task)
    outcome = jobs.result(queued.id)
    assert outcome is not None and outcome["error"]["code"] == "dataset.empty"
    assert jobs.huey.result(queued.id, preserve=True) is None  # not in the general queue's
    assert waiting(jobs) == {GENERAL_QUEUE: 1}
    assert not Jobs(backend).enqueue_retrain().joined  # finished: a new one


def test_one_queue_given_serves_both_kinds_of_job(tmp_path: Path) -> None:
    queue = MemoryHuey("one")
    jobs = Jobs(Settings(home=tmp_path, backbone="test"), queue)
    assert jobs.huey is jobs.training is queue
    assert registered(queue) == TRAINING_TASKS | GENERAL_TASKS
    assert jobs.queues() == jobs.queues(training=False) == [queue]  # one consumer, not two
    jobs.enqueue_retrain()
    jobs.enqueue_contribution("c1")
    assert sorted(task.name for task in queue.pending()) == ["contribution", "retrain"]


def wait_until(check: Callable[[], Any], seconds: float = 120) -> Any:
    deadline = time.monotonic() + seconds
    while not (found := check()) and time.monotonic() < deadline:
        time.sleep(0.2)
    return found


@pytest.mark.slow
def test_a_worker_without_training_leaves_retrains_to_the_datasets_host(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory, orl: Orl
) -> None:
    home = tmp_path / "home"
    shutil.copytree(
        trained_home(tmp_path_factory, orl), home, ignore=shutil.ignore_patterns("*.sqlite3*")
    )
    database = f"sqlite:///{tmp_path / 'db.sqlite3'}"
    settings = api_settings(home, database)  # m0001 the champion
    jobs = Jobs(settings)
    retrain = jobs.enqueue_retrain(Trigger.MANUAL, "test")  # queued first
    with client_for(settings) as client:
        files = [("photo", (p.name, p.read_bytes())) for p in orl["s7"][:6]]
        form = {"display_name": "Ada", "consent": "true"}
        joined = client.post("/api/contributions", data=form, files=files).json()
        assert joined["status"] == "queued"  # no consumer in this process
        assert waiting(jobs) == {TRAINING_QUEUE: 1, GENERAL_QUEUE: 1}

        def status() -> str:
            return str(client.get(joined["status_url"]).json()["status"])

        with running_worker(home, training=False, database_url=database) as worker:
            assert wait_until(lambda: status() == "enrolled"), status()
            time.sleep(2)  # time enough to have taken the retrain too, had it been allowed
            assert worker.poll() is None
            assert jobs.result(retrain.id) is None
            assert [task.id for task in jobs.training.pending()] == [retrain.id]
        assert not (home / "models" / "m0002").exists()

        with running_worker(home, database_url=database) as worker:
            outcome = wait_until(lambda: jobs.result(retrain.id))
            assert worker.poll() is None
    assert outcome and outcome["ok"] and outcome["version"] == "m0002", outcome
    assert not jobs.training.pending()
