"""A data dir for the admin dashboard's browser tests (no tests here).

``build_dashboard_home`` makes a registry with three tiny models (``test`` backbone, real ORL
photos) and a history spread over two months — m0001 the first champion, m0002 and m0003 put
through the gate, m0003 promoted by hand, then rolled back to m0002 — and a known prediction
log: every day of the last 60 days except a gap (``GAP_DAYS``), at local times in the
dashboard's time zone (``TIMEZONE``, which has a daylight saving change in that window),
several classes, "no strong match", requests with no face or several faces, feedback and
corrections. ``Seed`` says what was written, so tests can compute the numbers the charts must
show. ``build_single_version_home``: one model version and nothing else (no earlier champion).
The page helpers at the end (``sign_in``, ``chart``...) drive the admin pages in Chromium.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select

from lookalike import accounts
from lookalike.config import Settings
from lookalike.data.importers import import_images
from lookalike.db import (
    ModelEvent,
    ModelVersion,
    PredictionRecord,
    init_db,
    make_engine,
    session_factory,
)
from lookalike.kinds import Trigger
from lookalike.registry import Registry
from lookalike.retrain import retrain
from lookalike.services.predictions import cannot_judge_record
from support.training import class_folders

ADMIN = "alice"
PASSWORD = "correct horse battery staple"
SECRET = "browser-dashboard-secret-0123456789abcdef"
TIMEZONE = "Europe/Paris"  # the dashboard's days; the browser runs in it too
FIRST_CLASSES = ["s1", "s2", "s3", "s4"]
LATER_CLASS = "s5"  # imported before m0002: a class the first model does not know
DAYS = 60  # predictions on the days [today - DAYS, today - 1]
GAP_DAYS = (22, 21, 20)  # days ago with no predictions: a date filter there is unambiguous
CUT_DAYS_AGO = 19  # the test's new start date: everything from here on


@dataclass
class Seed:
    """What the prediction log holds: (local day, label, model, faces found) of every row."""

    today: date
    rows: list[tuple[date, str | None, str, int]] = field(default_factory=list)

    def day(self, days_ago: int) -> date:
        return self.today - timedelta(days=days_ago)

    def lookalikes(self) -> int:
        """Answered rows whose answer is lookalikes (not in the gallery: no label)."""
        return sum(1 for _, label, _, faces in self.rows if faces > 0 and label is None)

    def several_faces(self) -> int:
        return sum(1 for *_, faces in self.rows if faces > 1)

    def count(self, start: date | None = None, *, answered: bool = False) -> int:
        """Rows from local day ``start`` on (``answered``: only those where a face was found)."""
        return sum(
            1
            for day, _, _, faces in self.rows
            if (start is None or day >= start) and (faces > 0 or not answered)
        )


def _local(day: date, hour: int, minute: int) -> datetime:
    """A wall time on ``day`` in the dashboard's time zone, as an aware datetime."""
    return datetime.combine(day, time(hour, minute), tzinfo=ZoneInfo(TIMEZONE))


def build_dashboard_home(root: Path, orl: dict[str, list[Path]]) -> tuple[Settings, Seed]:
    settings = Settings(
        home=root / "home",
        backbone="test",
        secret_key=SECRET,
        rate_limit_per_minute=0,
        retrain_min_new_images=0,  # only the test's "Retrain now" retrains
        timezone=TIMEZONE,
    )
    import_images(class_folders(root / "first", {p: orl[p][:6] for p in FIRST_CLASSES}), settings)
    retrain(settings, strict=False, actor="seed", trigger=Trigger.MANUAL)  # m0001: first champion
    import_images(class_folders(root / "later", {LATER_CLASS: orl[LATER_CLASS][:6]}), settings)
    retrain(settings, strict=False, actor="seed", trigger=Trigger.NEW_IMAGES)  # m0002: gate decides
    retrain(settings, strict=False, actor="seed", trigger=Trigger.SCHEDULE)  # m0003: gate decides

    today = datetime.now(ZoneInfo(TIMEZONE)).date()
    created = {"m0001": 58, "m0002": 35, "m0003": 12}
    with Registry(settings) as registry:
        if registry.champion() != "m0003":
            registry.promote("m0003", reason="better on webcam photos", actor="seed admin")
        registry.rollback(reason="complaints about s2 answers", actor="seed admin")
        # Spread the history over two months (the registry writes "now").
        with registry.sessions.begin() as session:
            for version, days_ago in created.items():
                row = session.get(ModelVersion, version)
                assert row is not None
                shift = _local(today - timedelta(days=days_ago), 9, 0) - row.created_at
                row.created_at = row.created_at + shift
                for event in session.scalars(
                    select(ModelEvent).where(
                        ModelEvent.version == version, ModelEvent.actor != "seed admin"
                    )
                ):
                    event.at = event.at + shift
            manual = session.scalars(
                select(ModelEvent).where(ModelEvent.actor == "seed admin").order_by(ModelEvent.id)
            ).all()
            for event, days_ago in zip(manual, (10, 5), strict=True):
                event.at = _local(today - timedelta(days=days_ago), 11, 30)

    seed = Seed(today=today)
    engine = make_engine(settings.effective_database_url)
    init_db(settings.effective_database_url)
    rng = random.Random(7)
    labels = [*FIRST_CLASSES, LATER_CLASS]
    sessions = session_factory(engine)
    with sessions() as session:
        accounts.create_user(session, ADMIN, PASSWORD)
    with sessions.begin() as session:
        for days_ago in range(DAYS, 0, -1):
            if days_ago in GAP_DAYS:
                continue
            day = today - timedelta(days=days_ago)
            model = "m0001" if days_ago > 35 else "m0003" if 5 < days_ago <= 10 else "m0002"
            known = FIRST_CLASSES if model == "m0001" else labels
            for _ in range(rng.randint(2, 7)):
                faces = rng.choices([1, 2, 0], weights=[88, 8, 4])[0]
                at = _local(day, rng.randint(8, 22), rng.randint(0, 59))
                latency = round(rng.lognormvariate(4.0, 0.35), 2)
                if faces == 0:  # refused: no face, no answer
                    row = cannot_judge_record(model, latency, "web")
                    row.created_at = at
                    session.add(row)
                    seed.rows.append((day, None, model, 0))
                    continue
                best = rng.choice(known)
                weak = rng.random() < 0.12
                probability = round(rng.uniform(0.2, 0.45) if weak else rng.uniform(0.45, 0.99), 4)
                label = None if weak else best
                feedback = rng.choices([None, "like", "dislike"], weights=[70, 20, 10])[0]
                said = None
                if feedback == "dislike" and rng.random() < 0.6:
                    said = rng.choice([x for x in known if x != best])
                others = (1 - probability) / max(1, len(known) - 1)
                session.add(
                    PredictionRecord(
                        created_at=at,
                        model_version=model,
                        label=label,
                        best_label=best,
                        probability=probability,
                        probabilities=[
                            {"label": x, "probability": probability if x == best else others}
                            for x in known
                        ],
                        match_score=round(rng.uniform(*(0.3, 0.5) if weak else (0.5, 0.9)), 4),
                        no_strong_match=weak,
                        faces_found=faces,
                        face_index=0,
                        frames_used=rng.choice([1, 1, 5]),
                        latency_ms=latency,
                        client=rng.choice(["web", "api"]),
                        consent=False,
                        feedback=feedback,
                        feedback_label=said,
                        feedback_at=at + timedelta(seconds=30) if feedback else None,
                    )
                )
                seed.rows.append((day, label, model, faces))
    engine.dispose()
    return settings, seed


def build_single_version_home(root: Path, orl: dict[str, list[Path]]) -> Settings:
    """A registry with one model version (m0001, the champion: nothing to roll back to) and
    the admin account; no predictions."""
    settings = Settings(
        home=root / "home",
        backbone="test",
        secret_key=SECRET,
        rate_limit_per_minute=0,
        retrain_min_new_images=0,
        timezone=TIMEZONE,
    )
    import_images(class_folders(root / "photos", {p: orl[p][:4] for p in FIRST_CLASSES}), settings)
    retrain(settings, strict=False, actor="seed", trigger=Trigger.MANUAL)
    engine = make_engine(settings.effective_database_url)
    init_db(settings.effective_database_url)
    with session_factory(engine)() as session:
        accounts.create_user(session, ADMIN, PASSWORD)
    engine.dispose()
    return settings


# --- the admin pages in the browser (``tests/browser/dashboard/``) ------------------------------

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS


def sign_in(page: Any, base: str, path: str) -> None:
    """Sign in as ``ADMIN`` through the form ``base + path`` redirects to; back on ``path``."""
    from playwright.sync_api import expect

    page.goto(base + path)
    page.fill("#login-name", ADMIN)
    page.fill("#login-password", PASSWORD)
    page.click("#login-submit")
    expect(page).to_have_url(re.compile(re.escape(base + path)))


def wait_loaded(page: Any, root: str, loads: int) -> None:
    """The page finished its ``loads``-th round of requests and drew the answers."""
    from playwright.sync_api import expect

    expect(page.locator(f"{root}[data-loads='{loads}']")).to_have_attribute("data-state", "ready")


def chart(page: Any, chart_id: str) -> dict[str, Any]:
    """What plotly drew in ``#chart-<id>``: traces, points, and whether it is a real plot."""
    result: dict[str, Any] = page.evaluate(
        """(id) => {
            const div = document.getElementById('chart-' + id);
            const traces = div.data || [];
            const points = traces.reduce((n, t) => n + ((t.z || t.y || []).length), 0);
            return {
                plotted: div.classList.contains('js-plotly-plot')
                    && div.querySelector('.plot-container .main-svg') !== null,
                hidden: div.hidden || div.offsetHeight === 0,
                traces: traces.length,
                points: points,
            };
        }""",
        chart_id,
    )
    return result


def axis(page: Any, chart_id: str, name: str = "xaxis") -> dict[str, Any]:
    """How plotly laid out one axis of ``#chart-<id>``: its range (ms for dates), tick step
    and the tick labels it drew."""
    result: dict[str, Any] = page.evaluate(
        """([id, name]) => {
            const div = document.getElementById('chart-' + id);
            const ax = div._fullLayout[name];
            const cls = name.charAt(0) + 'tick';
            return {
                range: ax.range.map(v => ax.r2l(v)),
                dtick: ax.dtick,
                ticks: [...div.querySelectorAll('.' + cls + ' text')].map(t => t.textContent),
            };
        }""",
        [chart_id, name],
    )
    return result
