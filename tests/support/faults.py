"""The production stack on loopback and a load to run through it while something breaks (no
tests here): shared by ``tests/test_faults.py`` and ``bench/load.py``.

``S3Server``: an S3-compatible server (moto in server mode, its own process) with one bucket.
``Load``: ``concurrency`` threads sending real ``POST /api/predictions`` round-robin to several
app processes (no load balancer), every outcome time-stamped, so that errors can be placed
against the moment a fault began and ended. ``logged`` reads back what the database and the
bucket hold, to check that every 201 is one row (and with consent one object), nothing more.
"""

from __future__ import annotations

import itertools
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from support.s3 import s3_client, s3_fields
from support.server import ServerProcess, free_port

BUCKET = "lookalike"


class S3Server(ServerProcess):
    """``moto_server`` on a free loopback port, in its own process (so that a client in this
    process does not share its interpreter); ``bucket`` is created on start. Its keys,
    client and settings are ``support.s3``'s."""

    name = "the S3 server"
    start_seconds = 30.0

    def __init__(self, bucket: str = BUCKET) -> None:
        self.bucket = bucket
        self.port = free_port()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def settings(self, prefix: str) -> dict[str, str]:
        """The service's settings (by name) for objects under ``s3://bucket/prefix``."""
        return s3_fields(self.url, self.bucket, prefix)

    def client(self) -> Any:
        return s3_client(self.url)

    def keys(self, prefix: str) -> set[str]:
        """Every key under ``prefix`` (relative to it)."""
        found: set[str] = set()
        pages = self.client().get_paginator("list_objects_v2")
        for page in pages.paginate(Bucket=self.bucket, Prefix=prefix.rstrip("/") + "/"):
            found.update(o["Key"][len(prefix.rstrip("/")) + 1 :] for o in page.get("Contents", []))
        return found

    def command(self) -> list[str]:
        binary = Path(sys.executable).with_name("moto_server")
        command = [str(binary)] if binary.is_file() else [sys.executable, "-m", "moto.server"]
        return [*command, "-H", "127.0.0.1", "-p", str(self.port)]

    def answers(self) -> bool:
        try:
            httpx.get(self.url, timeout=1)
            return True
        except httpx.TransportError:
            return False

    def start(self) -> None:
        super().start()
        self.client().create_bucket(Bucket=self.bucket)


# --- the load ----------------------------------------------------------------------------


BOUNDARY = "lookalike-load-5d1e0b"
HEADERS = {"content-type": f"multipart/form-data; boundary={BOUNDARY}"}


def multipart(photo: Path, *, consent: bool) -> bytes:
    """A prediction request's body: one ``photo`` part (+ ``consent``), encoded once."""
    parts = [
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="photo"; filename="{photo.name}"'
        "\r\nContent-Type: application/octet-stream\r\n\r\n".encode()
        + photo.read_bytes()
        + b"\r\n"
    ]
    if consent:
        header = 'Content-Disposition: form-data; name="consent"'
        parts.append(f"--{BOUNDARY}\r\n{header}\r\n\r\ntrue\r\n".encode())
    return b"".join(parts) + f"--{BOUNDARY}--\r\n".encode()


@dataclass(frozen=True)
class Outcome:
    """One request: when it was sent and answered (seconds since the load began), to which
    server, its status (0: no answer) and error code (or the transport error's name)."""

    started: float
    ended: float
    server: int
    status: int
    code: str = ""
    prediction_id: str | None = None
    consent: bool = False
    retry_after: str | None = None

    @property
    def ms(self) -> float:
        return (self.ended - self.started) * 1000


@dataclass(frozen=True)
class Body:
    content: bytes
    consent: bool


def bodies(photos: list[Path], consent_every: int = 4) -> list[Body]:
    """One body per photo; every ``consent_every``-th with consent (0: none)."""
    chosen = [bool(consent_every) and i % consent_every == 0 for i in range(len(photos))]
    return [Body(multipart(p, consent=c), c) for p, c in zip(photos, chosen, strict=True)]


@dataclass
class Load:
    """``concurrency`` threads, each with its own keep-alive client, sending predictions to
    ``urls`` in turn (request ``i`` to ``urls[i % n]``) until ``stop``."""

    urls: list[str]
    bodies: list[Body]
    concurrency: int
    timeout: float = 60.0
    outcomes: list[Outcome] = field(default_factory=list)
    t0: float = 0.0
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def now(self) -> float:
        return time.perf_counter() - self.t0

    def start(self) -> Load:
        self.t0 = time.perf_counter()
        counter = itertools.count()
        for _ in range(self.concurrency):
            thread = threading.Thread(target=self._run, args=(counter,), daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def _run(self, counter: itertools.count[int]) -> None:
        with httpx.Client(timeout=self.timeout) as client:
            while not self._stop.is_set():
                i = next(counter)
                server = i % len(self.urls)
                body = self.bodies[i % len(self.bodies)]
                outcome = self._send(client, server, body)
                with self._lock:
                    self.outcomes.append(outcome)

    def _send(self, client: httpx.Client, server: int, body: Body) -> Outcome:
        started = self.now()
        try:
            r = client.post(
                self.urls[server] + "/api/predictions", content=body.content, headers=HEADERS
            )
        except httpx.HTTPError as exc:
            return Outcome(started, self.now(), server, 0, type(exc).__name__, None, body.consent)
        ended = self.now()
        code = ""
        prediction_id = None
        try:
            payload = r.json()
        except ValueError:
            payload = None
            code = "not json"
        if isinstance(payload, dict):
            if r.status_code == 201:
                prediction_id = payload.get("id")
            else:
                code = str((payload.get("error") or {}).get("code", "no error shape"))
        return Outcome(
            started,
            ended,
            server,
            r.status_code,
            code,
            prediction_id,
            body.consent,
            r.headers.get("retry-after"),
        )

    def stop(self) -> list[Outcome]:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=self.timeout + 10)
        return sorted(self.outcomes, key=lambda o: o.started)

    def answered_since(self, moment: float) -> Counter[tuple[int, int]]:
        """(server, status) of the requests sent after ``moment``."""
        with self._lock:
            return Counter((o.server, o.status) for o in self.outcomes if o.started >= moment)


def wait_for_201s(load: Load, since: float, servers: int, seconds: float = 30) -> float:
    """Until every server has answered a request sent after ``since`` with 201: when (load
    time); raises after ``seconds``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        seen = load.answered_since(since)
        if all(seen[(s, 201)] for s in range(servers)):
            return load.now()
        time.sleep(0.1)
    raise AssertionError(f"not every server answered 201 again: {load.answered_since(since)}")


# --- what was logged ---------------------------------------------------------------------


@dataclass(frozen=True)
class Logged:
    """The prediction rows (id -> storage key) of a database."""

    rows: dict[str, str | None]

    def since(self, before: Logged) -> dict[str, str | None]:
        return {k: v for k, v in self.rows.items() if k not in before.rows}


def logged(database_url: str) -> Logged:
    from sqlalchemy import select

    from lookalike.db import PredictionRecord, make_engine

    engine = make_engine(database_url)
    try:
        with engine.connect() as connection:
            found = connection.execute(select(PredictionRecord.id, PredictionRecord.storage_key))
            return Logged({row[0]: row[1] for row in found})
    finally:
        engine.dispose()


@dataclass(frozen=True)
class Audit:
    """Answers against rows and objects: ``missing`` 201s without a row, ``extra`` rows no 201
    answered, ``orphans`` objects without a row, ``lost`` rows whose object is not there."""

    successes: int
    rows: int
    missing: int
    extra: int
    orphans: int
    lost: int

    @property
    def clean(self) -> bool:
        return self.rows == self.successes and not (
            self.missing or self.extra or self.orphans or self.lost
        )


def audit(outcomes: list[Outcome], new_rows: dict[str, str | None], new_keys: set[str]) -> Audit:
    answered = {o.prediction_id for o in outcomes if o.status == 201 and o.prediction_id}
    kept = {key for key in new_rows.values() if key}
    return Audit(
        successes=sum(o.status == 201 for o in outcomes),
        rows=len(new_rows),
        missing=len(answered - set(new_rows)),
        extra=len(set(new_rows) - answered),
        orphans=len(new_keys - kept),
        lost=len(kept - new_keys),
    )
