"""Shared set-up for the analytics tests (no tests here): a prediction log with known values.

``LOG`` holds twelve requests whose local times (Europe/Paris) straddle a month boundary
(2026-02-28 / 03-01), the spring DST change (2026-03-29, a 23-hour day) and the autumn one
(2026-10-25, a 25-hour day whose 02:00 hour happens twice). The expected answers in
``tests/analytics/`` are worked out by hand from this table.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from lookalike import accounts
from lookalike.config import Settings
from lookalike.db import (
    ModelAlias,
    ModelEvent,
    ModelVersion,
    PredictionRecord,
    init_db,
    make_engine,
    session_factory,
)
from support.api import TestClient, api_settings, client_for
from support.pg import new_database

PARIS = "Europe/Paris"
RANGE = {"start": "2026-02-01", "end": "2026-11-01"}  # every request of ``LOG``
ENDPOINTS = [
    "classes",
    "accuracy",
    "volume",
    "heatmap",
    "latency",
    "confidence",
    "feedback",
    "drift",
    "export.csv",
    "export.json",
]
LEVELS = [i / 10 for i in range(11)]
UNIFORM = {  # a held-out reference spread evenly over [0, 1]: F_ref(x) = x
    "quantiles": LEVELS,
    "probability": LEVELS,
    "match_score": LEVELS,
    "mean_match_score": 0.5,
}


@dataclass(frozen=True)
class Req:
    """One logged request: UTC time, answered class (None: no strong match), outcome..."""

    at: str
    label: str | None
    latency: float
    probability: float | None = None
    match: float | None = None
    version: str = "m1"
    outcome: str = "match"
    best: str | None = None
    faces: int = 1
    feedback: str | None = None
    said: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


LOG = [
    # 1. Sat 2026-02-28 23:30 Paris (UTC+1): still February
    Req("2026-02-28T22:30:00", "a", 10.125, 0.95, 0.8),
    # 2. Sun 2026-03-01 00:30 Paris: March there, February in UTC
    Req("2026-02-28T23:30:00", "a", 20.125, 0.85, 0.7),
    # 3. Sun 2026-03-01 11:00, two faces
    Req("2026-03-01T10:00:00", "b", 30.125, 0.55, 0.6, faces=2),
    # 4. Sun 2026-03-01 12:00, no strong match (best b)
    Req("2026-03-01T11:00:00", None, 40.125, 0.35, 0.3, outcome="no_strong_match", best="b"),
    # 5. Sun 2026-03-01 13:00, no face found
    Req("2026-03-01T12:00:00", None, 5.5, outcome="no_face", faces=0),
    # 6. Sun 2026-03-29 01:30 CET, before the clocks go forward
    Req("2026-03-29T00:30:00", "a", 50.125, 0.65, 0.62, version="m2"),
    # 7. Sun 2026-03-29 03:30 CEST, after (02:00-03:00 does not exist)
    Req("2026-03-29T01:30:00", "b", 60.125, 0.75, 0.72, version="m2"),
    # 8. Sun 2026-03-29 23:30 CEST
    Req("2026-03-29T21:30:00", "a", 70.125, 0.9, 0.82, version="m2"),
    # 9. Mon 2026-03-30 00:30 CEST (still 03-29 in UTC)
    Req("2026-03-29T22:30:00", "a", 80.125, 0.1, 0.52, version="m2"),
    # 10. Sun 2026-10-25 02:30 CEST, first time round; liked
    Req("2026-10-25T00:30:00", "a", 90.125, 0.45, 0.5, version="m2", feedback="like"),
    # 11. Sun 2026-10-25 02:30 CET, second time round; disliked: "I look more like a"
    Req(
        "2026-10-25T01:30:00",
        "b",
        100.125,
        0.999,
        0.4,
        version="m2",
        feedback="dislike",
        said="a",
    ),
    # 12. Sun 2026-10-25 23:30 CET, no strong match (best a); disliked: "more like b"
    Req(
        "2026-10-25T22:30:00",
        None,
        110.125,
        0.25,
        0.2,
        version="m2",
        outcome="no_strong_match",
        best="a",
        feedback="dislike",
        said="b",
    ),
]


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def prediction(req: Req) -> PredictionRecord:
    no_face = req.outcome == "no_face"
    return PredictionRecord(
        created_at=utc(req.at),
        model_version=req.version,
        label=req.label,
        best_label=None if no_face else (req.best or req.label),
        probability=req.probability,
        probabilities=[] if no_face else [{"label": "a", "probability": req.probability}],
        match_score=req.match,
        no_strong_match=req.outcome == "no_strong_match",
        faces_found=req.faces,
        frames_used=0 if no_face else 1,
        latency_ms=req.latency,
        client="web",
        feedback=req.feedback,
        feedback_label=req.said,
        feedback_at=utc(req.at) if req.feedback else None,
        **req.extra,
    )


def add_registry(url: str) -> None:
    """m1 (champion, rolled back to once), m2 (the champion now), m3 (refused)."""
    engine = make_engine(url)
    with session_factory(engine)() as session, session.begin():
        for version, created, accuracy, f1, decision in (
            ("m1", "2026-01-10T09:00:00", 0.9, 0.85, "promoted"),
            ("m2", "2026-03-20T09:00:00", 0.95, 0.93, "promoted"),
            ("m3", "2026-05-01T09:00:00", 0.8, 0.75, "refused"),
        ):
            session.add(
                ModelVersion(
                    version=version,
                    kind="lookalike",
                    created_at=utc(created),
                    created_by="test",
                    artifact=f"models/{version}",
                    digest="0" * 64,
                    labels=["a", "b"],
                    metrics={
                        "accuracy": accuracy,
                        "macro_f1": f1,
                        "reference": UNIFORM if version == "m2" else {"quantiles": [0.0]},
                    },
                    decision=decision,
                )
            )
        session.flush()
        for at, kind, version, previous in (
            ("2026-01-10T09:00:00", "register", "m1", None),
            ("2026-01-10T09:01:00", "promote", "m1", None),
            ("2026-03-20T09:01:00", "promote", "m2", "m1"),
            ("2026-04-01T08:00:00", "rollback", "m1", "m2"),
            ("2026-04-05T08:00:00", "promote", "m2", "m1"),
            ("2026-05-01T09:01:00", "decision", "m3", "m2"),
        ):
            session.add(
                ModelEvent(
                    at=utc(at),
                    kind=kind,
                    model_kind="lookalike",
                    version=version,
                    previous=previous,
                    promoted=kind != "decision",
                    reason=f"{kind} {version}",
                    actor="alice",
                )
            )
        session.add(ModelAlias(kind="lookalike", alias="champion", version="m2"))
    engine.dispose()


def seed(url: str, requests: list[Req], *, registry: bool = True) -> None:
    init_db(url)
    engine = make_engine(url)
    with session_factory(engine)() as session, session.begin():
        session.add_all(prediction(r) for r in requests)
    engine.dispose()
    if registry:
        add_registry(url)


def admin_token(url: str) -> str:
    engine = make_engine(url)
    try:
        with session_factory(engine)() as session:
            return accounts.create_token(session, "dashboard")[1]
    finally:
        engine.dispose()


@contextmanager
def database(kind: str, folder: Path, postgres_url: str | None) -> Iterator[str]:
    """A fresh database: a SQLite file in ``folder`` or a new database on the cluster."""
    if kind == "sqlite":
        yield f"sqlite:///{folder / 'log.sqlite3'}"
        return
    assert postgres_url is not None
    with new_database(postgres_url, "analytics") as url:
        yield url


@dataclass
class Dashboard:
    """A running app over a seeded log, and an admin token for it."""

    client: TestClient
    token: str
    settings: Settings

    def get(self, path: str, **params: Any) -> Any:
        r = self.client.get(
            f"/api/analytics/{path}",
            params={k: v for k, v in params.items() if v is not None},
            headers={"Authorization": f"Bearer {self.token}"},
        )
        return r

    def json(self, path: str, **params: Any) -> Any:
        r = self.get(path, **params)
        assert r.status_code == 200, r.text
        return r.json()


@contextmanager
def dashboard(home: Path, url: str, **overrides: Any) -> Iterator[Dashboard]:
    settings = api_settings(home, url, **{"timezone": PARIS, **overrides})
    with client_for(settings) as client:
        yield Dashboard(client, admin_token(url), settings)
