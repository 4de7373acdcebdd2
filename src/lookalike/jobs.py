"""Background jobs with huey: retraining on a schedule, when enough new images arrived, and
on demand; processing a contribution (joining the gallery); the daily retention sweep
(contributions and kept photos older than ``retention_days``).

Two queues: the training jobs (a retrain, the schedule, the new-images check, the retention
sweep, which retrains inside) read and write the data dir's dataset, so they have a queue of
their own (``lookalike-training``) that only a worker on the dataset's host takes; the rest
(contributions, their requeue) need only the database and the object store, so a worker on
any host may take them (``lookalike worker --no-training``). Both queues live in the same
SQLite file in the data dir by default (``jobs.sqlite3``), or in the same Redis when
``redis_url`` is set: huey keeps queues apart by name. ``lookalike worker`` runs both
consumers; ``lookalike serve`` runs them in its own process unless ``jobs_in_process`` is
off. Schedules run in the server's local time. Every retrain goes through
``lookalike.retrain.retrain``, whose lock makes sure two retrains never overlap, whichever
process or trigger started them (with Redis, whichever machine: the lock, and the last
retrain job a new request joins, are kept in Redis).
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from huey import Huey, SqliteHuey, crontab
from huey.api import Result
from huey.consumer import Consumer

from lookalike.config import Settings, parse_cron
from lookalike.data.splits import SplitStore
from lookalike.data.store import DatasetStore
from lookalike.errors import LookalikeError
from lookalike.fsutil import atomic_write_bytes, file_lock
from lookalike.kinds import Trigger
from lookalike.redis_lock import redis_client, redis_text
from lookalike.retrain import retrain, retrain_running

log = logging.getLogger("lookalike.jobs")
GENERAL_QUEUE = "lookalike"  # contributions (the queue's name before training had its own)
TRAINING_QUEUE = "lookalike-training"  # the jobs that need the data dir's dataset
REQUEUE_MINUTES = 5  # how often contributions whose job was lost are queued again
REQUEUE_AFTER_SECONDS = 120.0
# With Redis: the last retrain job's id, and the lock it is checked and replaced under
# (shared by every machine; in the data dir's files otherwise).
RETRAIN_JOB_KEY = "lookalike:retrain:job"
ENQUEUE_LOCK_KEY = "lookalike:retrain:enqueue"


class QueueUnavailable(LookalikeError):
    """The job queue cannot be reached (Redis down, the SQLite queue locked): nothing was
    queued; the caller may try again in a moment."""

    status = 503
    code = "queue.unavailable"


def _queue_errors() -> tuple[type[Exception], ...]:
    """What the queue's storage raises while it cannot be reached."""
    from redis.exceptions import RedisError

    return (sqlite3.OperationalError, RedisError)


@contextmanager
def _queue_reached(action: str) -> Iterator[None]:
    try:
        yield
    except _queue_errors() as exc:
        raise QueueUnavailable(
            f"The job queue cannot be reached right now, so nothing could be {action}."
            " Try again in a moment.",
            details={"reason": type(exc).__name__},
        ) from exc


def create_queue(settings: Settings, name: str = GENERAL_QUEUE) -> Huey:
    """The queue ``name`` in the SQLite file of the data dir, or in Redis (``redis_url``)."""
    if settings.redis_url:
        from huey import RedisHuey
        from redis import ConnectionPool

        # A queue that cannot be reached answers at once, not after the OS's TCP timeout.
        pool = ConnectionPool.from_url(settings.redis_url, socket_connect_timeout=2)
        return RedisHuey(name, connection_pool=pool, utc=False)
    path = settings.data_dir.jobs_queue
    path.parent.mkdir(parents=True, exist_ok=True)
    return SqliteHuey(name, filename=str(path), utc=False)


def new_images_since_last_model(settings: Settings) -> int:
    """Labelled images no training has seen yet: not assigned to a split, in classes big
    enough to train (a class still too small would otherwise trigger retrains forever)."""
    catalog = DatasetStore(settings).load()
    assigned = SplitStore(settings).load().assignments
    counts = catalog.counts()
    return sum(
        1
        for r in catalog.images.values()
        if r.sha256 not in assigned and counts[r.label] >= settings.min_images_per_class
    )


def run_retrain(settings: Settings, trigger: Trigger, actor: str) -> dict[str, Any]:
    """One retrain as a job: its outcome as a small dict (errors included, never raised)."""
    try:
        result = retrain(settings, trigger=trigger, actor=actor)
    except LookalikeError as exc:
        log.warning("retrain (%s) did not run: %s", trigger, exc.message)
        return {"ok": False, "trigger": trigger, **exc.to_dict()}
    log.info("retrain (%s): %s", trigger, result.decision.reason)
    return {
        "ok": True,
        "trigger": trigger,
        "version": result.version,
        "promoted": result.promoted,
        "champion": result.champion,
        "reason": result.decision.reason,
        "seconds": result.seconds,
    }


def maybe_retrain_for_new_images(settings: Settings) -> dict[str, Any] | None:
    """Retrain once ``retrain_min_new_images`` arrived since the last model (None: not yet)."""
    if settings.retrain_min_new_images <= 0:
        return None
    new = new_images_since_last_model(settings)
    if new < settings.retrain_min_new_images:
        return None
    return run_retrain(settings, Trigger.NEW_IMAGES, f"{new} new images")


def _every(minutes: int) -> crontab:
    if minutes < 60:
        return crontab(minute=f"*/{minutes}")
    return crontab(minute="0", hour=f"*/{max(1, minutes // 60)}")


@dataclass(frozen=True)
class QueuedJob:
    id: str
    joined: bool  # True: a retrain already queued or running answers this request too


def run_contribution(settings: Settings, contribution_id: str) -> str:
    """Process one contribution (``lookalike.contributions.process``); its status."""
    from lookalike.contributions import process
    from lookalike.db import make_engine

    engine = make_engine(settings.effective_database_url)
    try:
        return process(settings, engine, contribution_id)
    finally:
        engine.dispose()


def run_retention(settings: Settings) -> dict[str, Any]:
    """Delete what outlived ``retention_days`` (``lookalike.retention.expire``)."""
    from lookalike.db import make_engine
    from lookalike.retention import expire

    engine = make_engine(settings.effective_database_url)
    try:
        expired = expire(settings, engine)
    finally:
        engine.dispose()
    outcome: dict[str, Any] = {"contributions": expired.contributions, "photos": expired.photos}
    if expired.champion_trained_on:  # the champion may not serve what expired: replace it
        outcome["retrain"] = run_retrain(settings, Trigger.DELETION, "retention")
    return outcome


class Jobs:
    """The queues and their tasks for one ``Settings``: ``huey``, the general queue
    (contributions), and ``training``, the training jobs' (retrains, the retention sweep).
    Given one queue (tests), both kinds of job use it."""

    def __init__(
        self, settings: Settings, huey: Huey | None = None, training: Huey | None = None
    ) -> None:
        self.settings = settings
        self.huey = huey or create_queue(settings)
        if training is None:
            training = huey or create_queue(settings, TRAINING_QUEUE)
        self.training = training

        @training.task(name="retrain")
        def retrain_task(trigger: Trigger, actor: str) -> dict[str, Any]:
            return run_retrain(settings, trigger, actor)

        @training.periodic_task(crontab(**parse_cron(settings.retrain_cron)), name="schedule")
        def scheduled_retrain() -> dict[str, Any]:
            return run_retrain(settings, Trigger.SCHEDULE, "scheduler")

        @training.periodic_task(_every(settings.retrain_check_minutes), name="new-images")
        def new_images_check() -> dict[str, Any] | None:
            return maybe_retrain_for_new_images(settings)

        @training.periodic_task(crontab(minute="30", hour="4"), name="retention")
        def retention() -> dict[str, Any]:
            return run_retention(settings)  # it retrains when the champion saw what expired

        @self.huey.task(name="contribution")
        def contribution_task(contribution_id: str) -> str:
            return run_contribution(settings, contribution_id)

        @self.huey.periodic_task(_every(REQUEUE_MINUTES), name="requeue")
        def requeue() -> int:
            return self.requeue_contributions()

        self.retrain_task = retrain_task
        self.scheduled_retrain = scheduled_retrain
        self.new_images_check = new_images_check
        self.contribution_task = contribution_task
        self.retention = retention
        self.requeue = requeue

    def enqueue_contribution(self, contribution_id: str) -> str:
        """Queue the processing of a stored contribution; returns the job id."""
        result: Result = self.contribution_task(contribution_id)
        return str(result.id)

    def requeue_contributions(self, older_than: float = REQUEUE_AFTER_SECONDS) -> int:
        """Queue again the contributions still ``queued`` after ``older_than`` seconds: their
        job was lost (the queue was down when they came) or never ran. Processing claims a
        contribution first, so one queued twice is processed once. Returns how many."""
        from datetime import timedelta

        from sqlalchemy import select
        from sqlalchemy.orm import Session

        from lookalike.db import Contribution, make_engine, utcnow

        engine = make_engine(self.settings.effective_database_url)
        try:
            with Session(engine) as session:
                stale = session.scalars(
                    select(Contribution.id).where(
                        Contribution.status == "queued",
                        Contribution.updated_at < utcnow() - timedelta(seconds=older_than),
                    )
                ).all()
        finally:
            engine.dispose()
        for contribution_id in stale:
            self.enqueue_contribution(contribution_id)
        if stale:
            log.info("%d contribution(s) queued again", len(stale))
        return len(stale)

    def enqueue_retrain(self, trigger: Trigger = Trigger.API, actor: str = "api") -> QueuedJob:
        """Queue a retrain, or join the one already queued or running (its id comes back):
        a burst of requests makes one model, not one each. Across processes: the last job
        id is kept in the data dir and checked under a lock; with Redis, in Redis, so that
        every machine joins the same job. ``QueueUnavailable`` (503) while the queue cannot
        be reached."""
        with _queue_reached("queued"), self._last_retrain_job() as (last, remember):
            if last and self._unfinished(last):
                return QueuedJob(last, joined=True)
            result: Result = self.retrain_task(trigger, actor)
            remember(str(result.id))
            return QueuedJob(str(result.id), joined=False)

    @contextmanager
    def _last_retrain_job(self) -> Iterator[tuple[str, Callable[[str], None]]]:
        """Under the enqueue lock: the last retrain job's id ("" before the first) and how
        to replace it."""
        if self.settings.redis_url:
            client = redis_client(self.settings.redis_url)
            try:
                with client.lock(ENQUEUE_LOCK_KEY, timeout=30, blocking_timeout=10):
                    last = redis_text(client.get(RETRAIN_JOB_KEY))

                    def remember(job_id: str) -> None:
                        client.set(RETRAIN_JOB_KEY, job_id)

                    yield last, remember
            finally:
                client.close()
            return
        data_dir = self.settings.data_dir
        with file_lock(data_dir.retrain_enqueue_lock):
            path = data_dir.retrain_job
            last = path.read_text().strip() if path.exists() else ""
            yield last, lambda job_id: atomic_write_bytes(path, job_id.encode())

    def _unfinished(self, job_id: str) -> bool:
        """Queued, or running (dequeued, no result yet, and a retrain holds the lock)."""
        if self.training.result(job_id, preserve=True) is not None:
            return False
        if any(task.id == job_id for task in self.training.pending()):
            return True
        return retrain_running(self.settings)

    def result(self, job_id: str) -> dict[str, Any] | None:
        """A finished retrain's outcome (None while queued or running, or unknown)."""
        with _queue_reached("read"):
            value = self.training.result(job_id, preserve=True)
        return value if isinstance(value, dict) else None

    def queues(self, training: bool = True) -> list[Huey]:
        """The queues a worker takes: both, or only the general one (a host without the
        dataset); one when a single queue serves both kinds of job."""
        if training and self.training is not self.huey:
            return [self.huey, self.training]
        return [self.huey]

    def consumer(self, workers: int = 1, training: bool = True) -> Consumer:
        """A consumer for a dedicated worker process (``run()`` blocks, handles signals):
        ``workers`` threads on the general queue, one on the training queue (retrains run one
        at a time anyway); ``training=False``: the general queue only."""
        general, *others = self.queues(training)
        guests = [_GuestConsumer(queue, **_OPTIONS) for queue in others]
        return _HostConsumer(general, guests, workers=workers, **_OPTIONS)

    def start_in_background(self) -> Consumer:
        """Both queues' consumers running in threads inside this process (``stop()`` ends
        them); they leave signal handling to their host (the web server)."""
        general, *others = self.queues()
        guests = [_GuestConsumer(queue, **_OPTIONS) for queue in others]
        consumer = _GuestConsumer(general, guests, **_OPTIONS)
        consumer.start()
        return consumer


_OPTIONS: dict[str, Any] = {"worker_type": "thread", "periodic": True}


class _HostConsumer(Consumer):
    """One queue's consumer that also runs other queues' (``guests``, in threads of this
    process): started, checked and stopped with it, so one signal stops them all."""

    def __init__(self, huey: Huey, guests: Sequence[Consumer] = (), **options: Any) -> None:
        super().__init__(huey, **options)
        self.guests = list(guests)

    def start(self) -> None:
        for guest in self.guests:
            guest.start()
        super().start()

    def stop(self, graceful: bool = False) -> None:
        for consumer in (self, *self.guests):  # every queue stops taking jobs at once
            consumer.stop_flag.set()
        for guest in self.guests:
            guest.stop(graceful=graceful)
            # A second Ctrl+C cut the guest's graceful stop short: no more waiting.
            graceful = graceful and not any(
                guest.environment.is_alive(t) for _, t in guest.worker_threads
            )
        super().stop(graceful=graceful)

    def check_worker_health(self) -> bool:
        healthy = all([guest.check_worker_health() for guest in self.guests])
        return super().check_worker_health() and healthy


class _GuestConsumer(_HostConsumer):
    def _set_signal_handlers(self) -> None:
        pass  # the host process (uvicorn, or the worker's main consumer) owns the signals
