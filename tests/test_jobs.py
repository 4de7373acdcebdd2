"""Background jobs: the retrain schedule from settings, the new-images trigger, and the real
huey consumer running a queued retrain (the `test` backbone keeps it fast)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from datetime import datetime
from pathlib import Path

import pytest
from huey import SqliteHuey
from support.cli import SCRIPT
from support.training import copy_home, quick_import

from lookalike.config import Settings
from lookalike.jobs import (
    Jobs,
    QueuedJob,
    maybe_retrain_for_new_images,
    new_images_since_last_model,
)
from lookalike.registry import Registry
from lookalike.retrain import retrain, training_lock

Orl = dict[str, list[Path]]


@pytest.fixture(scope="module")
def with_champion(tmp_path_factory: pytest.TempPathFactory, orl: Orl) -> Path:
    root = tmp_path_factory.mktemp("jobs")
    settings = Settings(home=root / "home", backbone="test")
    quick_import(settings, root, {p: orl[p][:5] for p in ("s1", "s2", "s3")})
    retrain(settings)
    return settings.home


def test_the_schedule_follows_the_cron_setting(tmp_path: Path) -> None:
    jobs = Jobs(Settings(home=tmp_path, backbone="test"))  # default: 03:00 every 3rd day
    fires = jobs.scheduled_retrain.s().validate_datetime
    assert fires(datetime(2026, 11, 1, 3, 0))
    assert fires(datetime(2026, 11, 4, 3, 0))
    assert not fires(datetime(2026, 11, 2, 3, 0))
    assert not fires(datetime(2026, 11, 4, 3, 1))
    hourly = Jobs(Settings(home=tmp_path, backbone="test", retrain_cron="15 * * * 1-5"))
    monday, sunday = datetime(2026, 11, 23, 9, 15), datetime(2026, 11, 22, 9, 15)
    assert hourly.scheduled_retrain.s().validate_datetime(monday)
    assert not hourly.scheduled_retrain.s().validate_datetime(sunday)
    check = Jobs(Settings(home=tmp_path, backbone="test", retrain_check_minutes=10))
    assert check.new_images_check.s().validate_datetime(datetime(2026, 11, 23, 9, 20))
    assert not check.new_images_check.s().validate_datetime(datetime(2026, 11, 23, 9, 21))
    with pytest.raises(ValueError, match="5 cron fields"):
        Settings(retrain_cron="0 3 * *")


def test_new_images_trigger_a_retrain_only_past_the_threshold(
    with_champion: Path, tmp_path: Path, orl: Orl
) -> None:
    settings = Settings(
        home=copy_home(with_champion, tmp_path / "home"), backbone="test", retrain_min_new_images=4
    )
    assert maybe_retrain_for_new_images(settings) is None  # nothing new
    quick_import(settings, tmp_path, {"s1": orl["s1"][5:7], "s2": orl["s2"][5:6]})
    assert new_images_since_last_model(settings) == 3
    assert maybe_retrain_for_new_images(settings) is None  # 3 < 4
    quick_import(settings, tmp_path / "more", {"s3": orl["s3"][5:6]})
    outcome = maybe_retrain_for_new_images(settings)
    assert outcome is not None and outcome["ok"] and outcome["trigger"] == "new-images"
    assert outcome["version"] == "m0002"
    assert new_images_since_last_model(settings) == 0  # the new model has seen them
    quick_import(settings, tmp_path / "small", {"newcomer": orl["s9"][:2]})  # too small a class
    assert new_images_since_last_model(settings) == 0
    with Registry(settings) as registry:
        row = registry.get("m0002")
        assert row.created_by == "4 new images (new-images)"
        assert row.decision in ("promoted", "refused")
    off = settings.model_copy(update={"retrain_min_new_images": 0})
    assert maybe_retrain_for_new_images(off) is None


def test_a_queued_retrain_runs_in_the_consumer(with_champion: Path, tmp_path: Path) -> None:
    settings = Settings(home=copy_home(with_champion, tmp_path / "home"), backbone="test")
    jobs = Jobs(settings)
    assert isinstance(jobs.huey, SqliteHuey)
    assert Path(jobs.huey.storage.filename) == settings.home / "jobs.sqlite3"
    queued = jobs.enqueue_retrain("manual", "test")
    job = queued.id
    assert jobs.result(job) is None and not queued.joined  # queued, not run
    # Asked again while it waits (from this process or another): the same job answers.
    for _ in range(20):
        assert Jobs(settings).enqueue_retrain("api", "someone") == QueuedJob(job, joined=True)
    assert len(jobs.training.pending()) == 1 and not jobs.huey.pending()  # training's queue
    consumer = jobs.start_in_background()
    try:
        deadline = time.monotonic() + 60
        while (result := jobs.result(job)) is None:
            assert time.monotonic() < deadline
            time.sleep(0.1)
    finally:
        consumer.stop(graceful=True)
    assert result["ok"] and result["version"] == "m0002" and result["promoted"] is False
    # Once it is done, a new request queues a new retrain.
    again = jobs.enqueue_retrain("manual", "test")
    assert not again.joined and again.id != job
    # While a retrain runs (holding the lock), a request joins it.
    with training_lock(settings.home):
        # The worker took it and is running it (the consumer's scheduler may have queued a
        # periodic task meanwhile: take until the retrain is out of the queue).
        while (task := jobs.training.dequeue()) is not None and task.id != again.id:
            pass
        assert jobs.enqueue_retrain("api", "x") == QueuedJob(again.id, joined=True)
    assert not jobs.enqueue_retrain("api", "x").joined  # it died without a result: a new one
    # A failing retrain is an outcome, not a crash of the worker.
    empty = Jobs(Settings(home=tmp_path / "empty", backbone="test"))
    failed = empty.retrain_task.call_local("manual", "test")
    assert failed["ok"] is False and failed["error"]["code"] == "dataset.empty"


@pytest.mark.parametrize(
    ("options", "stop", "banner"),
    [
        (
            [],
            signal.SIGINT,
            "Job worker: contributions (queue 'lookalike') and training (queue"
            " 'lookalike-training'): retrain on '0 3 */3 * *'",
        ),
        (
            ["--no-training"],
            signal.SIGTERM,
            "Job worker: contributions (queue 'lookalike') only; training jobs wait",
        ),
    ],
)
def test_worker_command_starts_and_stops(
    with_champion: Path, tmp_path: Path, options: list[str], stop: signal.Signals, banner: str
) -> None:
    home = copy_home(with_champion, tmp_path / "home")
    proc = subprocess.Popen(
        [str(SCRIPT), "worker", "--home", str(home), *options],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "LOOKALIKE_BACKBONE": "test", "COLUMNS": "200"},
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert banner in first, first
        time.sleep(1.0)
        assert proc.poll() is None  # running
        proc.send_signal(stop)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, proc.returncode  # a clean stop, not a crash
    assert (home / "jobs.sqlite3").exists()
