"""Redis for several machines: a client that gives up quickly, and a lock every machine
sharing ``redis_url`` sees (the retrain's and the name training's, ``retrain.training_lock``
and ``names.service.names_training_lock``, through ``machines_lock``: a file lock of the data
dir without Redis).

The lock is taken at once or refused, naming its holder (host, pid, since when); a thread
renews it every third of its timeout, so a killed holder's lock lapses after ``LOCK_SECONDS``
while a live one never does. redis-py's ``Lock`` does the atomic parts (SET NX PX, the
release script checking the token).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from lookalike.errors import LookalikeError
from lookalike.fsutil import exclusive_lock

if TYPE_CHECKING:
    from redis import Redis

log = logging.getLogger(__name__)

LOCK_SECONDS = 60  # a killed holder's lock lapses after this; a live one renews it


def redis_client(url: str, *, timeout: float = 10.0, connect_timeout: float = 2.0) -> Redis:
    """A client of ``url`` that answers within ``connect_timeout`` when Redis cannot be
    reached (callers pick shorter ones where a request waits on it)."""
    from redis import Redis

    return Redis.from_url(url, socket_connect_timeout=connect_timeout, socket_timeout=timeout)


def redis_text(value: bytes | str | None) -> str:
    """A Redis string value as text ("" for none)."""
    return value.decode() if isinstance(value, bytes) else (value or "")


def lock_held(url: str, key: str) -> bool:
    """Whether someone holds the lock ``key`` now."""
    client = redis_client(url)
    try:
        return bool(client.exists(key))
    finally:
        client.close()


@contextmanager
def redis_lock(
    url: str,
    key: str,
    *,
    refused: Callable[[str], LookalikeError],
    unavailable: Callable[[Exception], LookalikeError],
) -> Iterator[None]:
    """Hold the lock ``key`` in the Redis of ``url`` for the ``with`` block. Taken by
    someone else: ``refused(holder)`` is raised; Redis unreachable: ``unavailable(exc)``."""
    from redis.exceptions import LockError, RedisError

    client = redis_client(url)
    holder = (
        f"pid {os.getpid()} on {socket.gethostname()} since {time.strftime('%Y-%m-%d %H:%M:%S')}"
    )
    lock = client.lock(key, timeout=LOCK_SECONDS, blocking=False, thread_local=False)
    try:
        if not lock.acquire(token=f"{holder} [{uuid.uuid4().hex[:8]}]"):
            found = redis_text(client.get(key))
            raise refused(found.rpartition(" [")[0] or "another process")
    except RedisError as exc:
        client.close()
        raise unavailable(exc) from exc
    except BaseException:
        client.close()
        raise
    stop = threading.Event()

    def renew() -> None:
        while not stop.wait(LOCK_SECONDS / 3):
            try:
                lock.reacquire()
            except RedisError:  # Redis away a moment: try again; lost: the work goes on
                log.warning("could not renew the lock %s in Redis", key, exc_info=True)

    renewer = threading.Thread(target=renew, name=f"lock-{key}", daemon=True)
    renewer.start()
    try:
        yield
    finally:
        stop.set()
        renewer.join()
        try:
            lock.release()
        except (LockError, RedisError):  # lapsed, or Redis away: it lapses by itself
            log.warning("could not release the lock %s in Redis", key, exc_info=True)
        client.close()


@contextmanager
def machines_lock(
    redis_url: str | None,
    key: str,
    path: Path,
    *,
    refused: Callable[[str], LookalikeError],
    unavailable: Callable[[Exception], LookalikeError],
) -> Iterator[None]:
    """One holder at a time: with ``redis_url``, the Redis lock ``key`` (every machine);
    without, the data dir's file lock ``path`` (every process of this machine)."""
    if redis_url:
        with redis_lock(redis_url, key, refused=refused, unavailable=unavailable):
            yield
        return
    with exclusive_lock(path, refused):
        yield
