"""The registry over HTTP on SQLite and PostgreSQL: list and history, admin-only promote,
rollback and retrain (a real job run by a real huey consumer), and predictions that follow
the champion without a restart."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from support.api import (
    Orl,
    api_settings,
    assert_error,
)

from lookalike import accounts
from lookalike.artifacts import load_model
from lookalike.config import Settings
from lookalike.db import make_engine, session_factory
from lookalike.jobs import Jobs
from lookalike.registry import Registry
from lookalike.training.train import train


@pytest.fixture
def settings(trained: Path, tmp_path: Path, database_url: str) -> Settings:
    """A data dir of its own (models copied, not linked: this test trains more)."""
    import shutil

    home = tmp_path / "home"
    shutil.copytree(trained, home, ignore=shutil.ignore_patterns("lookalike.sqlite3*"))
    return api_settings(home, database_url)


@pytest.fixture
def token(settings: Settings) -> str:
    engine = make_engine(settings.effective_database_url)
    try:
        with session_factory(engine)() as session:
            _, plaintext = accounts.create_token(session, "ci")
    finally:
        engine.dispose()
    return plaintext


def _second_model(settings: Settings) -> str:
    """Train a second model (gallery head) and register it as the challenger."""
    report = train(settings, head="gallery")
    with Registry(settings) as registry:
        registry.register_model(load_model(settings.home, report.version).info, "test")
    return report.version


def test_list_and_show(client: TestClient, settings: Settings) -> None:
    second = _second_model(settings)
    body = client.get("/api/models").json()
    assert body["count"] == 2
    assert (body["champion"], body["challenger"]) == ("m0001", second)
    first = next(v for v in body["data"] if v["version"] == "m0001")
    assert first["alias"] == "champion" and first["metrics"]["accuracy"] >= 0.9
    assert [e["kind"] for e in body["events"]] == ["promote"]
    detail = client.get(f"/api/models/{second}").json()
    assert detail["alias"] == "challenger" and detail["head"] == "gallery"
    assert [e["kind"] for e in detail["events"]] == ["register"]
    assert_error(client.get("/api/models/m0099"), 404, "model.not_found")


def test_promote_and_rollback_need_an_admin(client: TestClient, settings: Settings) -> None:
    second = _second_model(settings)
    assert_error(client.post(f"/api/models/{second}/promote"), 401, "auth.required")
    assert_error(client.post("/api/models/rollback"), 401, "auth.required")
    assert_error(client.post("/api/models/retrain"), 401, "auth.required")
    bad = {"Authorization": "Bearer lka_not-a-token"}
    assert client.post(f"/api/models/{second}/promote", headers=bad).status_code == 401
    with Registry(settings) as registry:
        assert registry.champion() == "m0001"


def test_promote_then_rollback_switch_the_answers(
    client: TestClient, settings: Settings, token: str, orl: Orl
) -> None:
    second = _second_model(settings)
    auth = {"Authorization": f"Bearer {token}"}
    photo = {"photo": ("face.pgm", orl["s2"][9].read_bytes(), "image/x-portable-graymap")}

    def answer() -> str:
        response = client.post("/api/predictions", files=photo)
        assert response.status_code == 201, response.text[:300]
        version: str = response.json()["model_version"]
        return version

    assert answer() == "m0001"
    done = client.post(f"/api/models/{second}/promote", json={"reason": "try it"}, headers=auth)
    assert done.status_code == 200, done.text
    assert done.json() == {"champion": second, "previous": "m0001", "serving": second}
    assert answer() == second  # this process switched before answering the promotion
    assert client.get("/api/models/current").json()["version"] == second
    assert client.get("/api/health").json()["model"] == second

    back = client.post("/api/models/rollback", json={"reason": "worse"}, headers=auth)
    assert back.status_code == 200, back.text
    assert back.json() == {"champion": "m0001", "previous": second, "serving": "m0001"}
    assert answer() == "m0001"
    events = client.get("/api/models", headers=auth).json()["events"]
    assert [(e["kind"], e["version"], e["reason"]) for e in events[:2]] == [
        ("rollback", "m0001", "worse"),
        ("promote", second, "try it"),
    ]
    assert events[0]["actor"].startswith("admin ")

    assert_error(
        client.post("/api/models/rollback", json={"to": "m0042"}, headers=auth),
        404,
        "model.not_found",
    )
    assert_error(
        client.post("/api/models/m0001/promote", json={"reason": ""}, headers=auth),
        422,
        "request.invalid",
    )


def test_retrain_job_runs_in_the_worker(client: TestClient, settings: Settings, token: str) -> None:
    auth = {"Authorization": f"Bearer {token}"}
    queued = client.post("/api/models/retrain", headers=auth)
    assert queued.status_code == 202, queued.text
    job = queued.json()["id"]
    assert queued.json()["done"] is False and queued.json()["joined"] is False
    # Asked again while it is queued: the same job, not a pile of retrains.
    again = client.post("/api/models/retrain", headers=auth)
    assert again.status_code == 202 and again.json() == {**queued.json(), "joined": True}
    consumer = Jobs(settings).start_in_background()
    try:
        deadline = time.monotonic() + 120
        while not (status := client.get(f"/api/models/jobs/{job}", headers=auth).json())["done"]:
            assert time.monotonic() < deadline, status
            time.sleep(0.2)
    finally:
        consumer.stop(graceful=True)
    result = status["result"]
    assert result["ok"] and result["trigger"] == "api"
    assert result["version"] == "m0002"
    assert result["promoted"] is False  # the same data again: a tie keeps the champion
    assert "ties keep the champion" in result["reason"]
    body = client.get("/api/models").json()
    assert body["champion"] == "m0001" and body["challenger"] == "m0002"
    refused = next(v for v in body["data"] if v["version"] == "m0002")
    # Who made it is for admins: the public view never names an admin or a token.
    assert refused["decision"] == "refused" and refused["created_by"] is None
    assert "admin " not in client.get("/api/models").text
    assert "admin " not in client.get("/api/models/m0002").text
    seen = client.get("/api/models", headers=auth).json()
    mine = next(v for v in seen["data"] if v["version"] == "m0002")
    assert mine["created_by"].startswith("admin ")
    detail = client.get("/api/models/m0002", headers=auth).json()
    assert detail["created_by"].startswith("admin ")
    assert_error(client.get(f"/api/models/jobs/{job}"), 401, "auth.required")


def test_a_damaged_champion_keeps_the_old_one_serving(
    client: TestClient, settings: Settings, orl: Orl
) -> None:
    second = _second_model(settings)
    photo = {"photo": ("face.pgm", orl["s2"][9].read_bytes(), "image/x-portable-graymap")}
    assert client.post("/api/predictions", files=photo).json()["model_version"] == "m0001"
    with Registry(settings) as registry:
        registry.promote(second, reason="test", actor="test")
    npz = settings.home / "models" / second / "arrays.npz"
    npz.write_bytes(b"damaged after the promotion")
    deadline = time.monotonic() + 30
    while not (health := client.get("/api/health").json())["model_errors"]:
        assert time.monotonic() < deadline, health
        client.post("/api/predictions", files=photo)  # requests notice the new champion
        time.sleep(0.05)
    assert health["status"] == "degraded"
    assert (health["model"], health["champion"]) == ("m0001", second)
    assert "damaged" in health["model_errors"][second]
    answer = client.post("/api/predictions", files=photo)
    assert answer.status_code == 201 and answer.json()["model_version"] == "m0001"
