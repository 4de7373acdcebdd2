"""Contributors become classes at the next retrain, and deleting one reaches every copy:
the object store, the database, the dataset (rows, blobs, embeddings, splits), the answers
of the champion trained on them (at once), and the champion itself (the retrain queued by
the deletion replaces it; the version trained on them can never serve again).

The model knows ORL people s1-s6; the contributor is s7. SQLite and PostgreSQL."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from huey import MemoryHuey
from sqlalchemy import select
from support.api import (
    Orl,
    TestClient,
    api_settings,
    assert_error,
    client_for,
    objects,
    trained_home,
)
from support.s3 import endpoint, s3_server, s3_settings

from lookalike.api.state import app_state
from lookalike.artifacts import load_model
from lookalike.config import Settings
from lookalike.contributions import enrolled_gallery
from lookalike.data.cache import embedding_cache
from lookalike.data.splits import SplitStore
from lookalike.data.store import DatasetStore, image_key
from lookalike.db import Contribution, ModelEvent
from lookalike.errors import InvalidInput
from lookalike.jobs import Jobs
from lookalike.kinds import EventKind, Trigger
from lookalike.registry import Registry
from lookalike.retrain import retrain
from lookalike.storage import ObjectStore


@pytest.fixture
def settings(
    tmp_path_factory: pytest.TempPathFactory, orl: Orl, tmp_path: Path, database_url: str
) -> Settings:
    """A data dir of the test's own (copied: retraining writes into it)."""
    home = tmp_path / "home"
    shutil.copytree(
        trained_home(tmp_path_factory, orl), home, ignore=shutil.ignore_patterns("*.sqlite3*")
    )
    return api_settings(home, database_url)


def use_queue(client: TestClient, settings: Settings, *, immediate: bool) -> Jobs:
    jobs = Jobs(settings, MemoryHuey("test", immediate=immediate))
    app_state(client.app)._jobs = jobs
    return jobs


def ask(client: TestClient, path: Path) -> dict[str, Any]:
    r = client.post("/api/predictions", files={"photo": (path.name, path.read_bytes())})
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()
    return body


def contribution_records(settings: Settings, contribution_id: str) -> list[Any]:
    catalog = DatasetStore(settings).load()
    return [r for r in catalog.images.values() if r.source == f"contribution:{contribution_id}"]


def test_a_contributor_becomes_a_class_and_deletion_reaches_every_copy(
    client: TestClient, settings: Settings, orl: Orl
) -> None:
    use_queue(client, settings, immediate=True)
    files = [("photo", (p.name, p.read_bytes(), "image/x-portable-graymap")) for p in orl["s7"][:8]]
    joined = client.post(
        "/api/contributions", data={"display_name": "Ada", "consent": "true"}, files=files
    ).json()
    assert joined["status"] == "enrolled", joined

    # The next retrain makes them a class: their crops train (never tested), shown as
    # reference photos (they consented to being found).
    first = retrain(settings, actor="test")
    assert first.promoted, first.decision.reason
    assert first.contributors.added == joined["crops"]
    assert "1 contributor class(es) train only, untested" in first.decision.reason
    info = load_model(settings.home, first.version).info
    assert "Ada" in info.labels and info.contributors == {"Ada": joined["id"]}
    assert f"contribution:{joined['id']}" in info.personal_sources
    records = contribution_records(settings, joined["id"])
    assert len(records) == joined["crops"] and {r.label for r in records} == {"Ada"}
    splits = SplitStore(settings).load()
    assert {splits.assignments[r.sha256] for r in records} == {"train"}

    app_state(client.app).predictor.load(wait=True)  # serving the new champion
    asked = ask(client, orl["s7"][9])
    assert asked["model_version"] == first.version
    answer = asked["answer"]  # the model answers for them itself now
    assert (answer["kind"], answer["names"]) == ("same_person", ["Ada"])
    reference = answer["lookalikes"][0]["reference_url"]
    assert reference.startswith("/api/images/")  # one of their crops, in the model's gallery
    assert client.get(reference).status_code == 200
    stranger = ask(client, orl["s9"][0])  # someone else: Ada is among the classes scored
    assert "Ada" in [p["label"] for p in stranger["probabilities"]]

    # Deleting: every copy goes at once; the champion trained on them stops naming them
    # before the retrain that replaces it has run.
    jobs = use_queue(client, settings, immediate=False)
    blobs = [DatasetStore(settings).path_of(r) for r in records]
    cache = embedding_cache(settings.data_dir)
    assert all(p.exists() for p in blobs)
    gone = client.delete(
        f"/api/contributions/{joined['id']}", params={"token": joined["deletion_token"]}
    )
    assert gone.status_code == 204, gone.text
    assert jobs.huey.pending_count() == 1  # the retrain that replaces the champion
    assert contribution_records(settings, joined["id"]) == []
    assert not any(p.exists() for p in blobs)
    assert all(cache.get(info.backbone_key, r.sha256) is None for r in records)
    splits_text = settings.data_dir.splits.read_text()
    assert not any(r.sha256 in splits_text for r in records)
    assert not [o for o in objects(settings) if joined["id"] in o]
    with app_state(client.app).sessions() as session:
        assert session.scalars(select(Contribution)).all() == []
        marked = session.scalars(
            select(ModelEvent.version).where(ModelEvent.kind == EventKind.DATA_DELETED)
        ).all()
    assert marked == [first.version]

    hidden = ask(client, orl["s7"][9])
    assert hidden["model_version"] == first.version  # still the champion, until the retrain
    assert hidden["answer"]["kind"] == "lookalike"
    shown = {x["label"] for x in hidden["answer"]["lookalikes"]}
    shown |= {p["label"] for p in hidden["probabilities"]} | {n["label"] for n in hidden["nearest"]}
    assert "Ada" not in shown
    assert client.get(reference).status_code == 404  # their crop's file is gone

    # The queued retrain replaces the champion; the version trained on them never serves.
    second = retrain(settings, trigger=Trigger.DELETION, actor="test")
    assert second.promoted, second.decision.reason
    assert "1 contributor(s) deleted by their owners" in second.decision.reason
    assert second.decision.figures["withdrawn_contributors"] == 1
    assert "Ada" not in load_model(settings.home, second.version).info.labels
    with Registry(settings) as registry:
        assert registry.champion() == second.version
        with pytest.raises(InvalidInput) as refused:
            registry.promote(first.version, reason="test", actor="test")
        assert refused.value.code == "model.trained_on_deleted_data"
    promote = client.post(f"/api/models/{first.version}/promote")
    assert promote.status_code in (401, 403)  # admins only; the registry refuses anyway


def test_held_contributors_wait_and_names_never_collide(
    client: TestClient, settings: Settings, orl: Orl
) -> None:
    use_queue(client, settings, immediate=True)

    def join(person: str, name: str) -> dict[str, Any]:
        files = [
            ("photo", (p.name, p.read_bytes(), "image/x-portable-graymap")) for p in orl[person][:7]
        ]
        r = client.post(
            "/api/contributions", data={"display_name": name, "consent": "true"}, files=files
        )
        body: dict[str, Any] = r.json()
        assert body["status"] == "enrolled", body
        return body

    operator_name = join("s7", "s1")  # an operator's class has this name already
    held = join("s7", "Someone Else")  # the same face under another name: held for review
    assert held["approved"] is False
    # One gallery serves the worker's jobs: the second read only the first one's crops.
    assert enrolled_gallery(settings).embeddings_read == 1
    result = retrain(settings, actor="test")
    info = load_model(settings.home, result.version).info
    assert info.contributors == {"s1 (2)": operator_name["id"]}  # the held one is not a class
    assert "Someone Else" not in info.labels
    assert_error(
        client.get(f"/api/contributions/{held['id']}/faces/0"), 404, "contribution.face_not_found"
    )


def test_an_expired_contributor_leaves_the_champion_too(
    client: TestClient, settings: Settings, orl: Orl
) -> None:
    from datetime import timedelta

    from lookalike.db import utcnow
    from lookalike.jobs import run_retention

    use_queue(client, settings, immediate=True)
    files = [("photo", (p.name, p.read_bytes(), "image/x-portable-graymap")) for p in orl["s7"][:7]]
    joined = client.post(
        "/api/contributions", data={"display_name": "Ada", "consent": "true"}, files=files
    ).json()
    trained = retrain(settings, actor="test")
    assert "Ada" in load_model(settings.home, trained.version).info.labels
    assert run_retention(settings) == {"contributions": 0, "photos": 0}  # nothing old yet
    with app_state(client.app).sessions() as session, session.begin():
        row = session.get(Contribution, joined["id"])
        assert row is not None
        row.created_at = utcnow() - timedelta(days=settings.retention_days + 1)
    outcome = run_retention(settings)  # the daily job: the retrain runs in it
    assert outcome["contributions"] == 1 and outcome["retrain"]["promoted"], outcome
    with Registry(settings) as registry:
        champion = registry.champion()
    assert champion == outcome["retrain"]["version"] != trained.version
    assert "Ada" not in load_model(settings.home, champion).info.labels
    assert contribution_records(settings, joined["id"]) == []


def test_with_a_bucket_their_reference_photos_leave_it_at_once(
    settings: Settings, orl: Orl, tmp_path: Path
) -> None:
    """Their crops, published to the bucket as the champion's reference photos, leave it
    when they delete themselves on a machine that never had the dataset."""
    with s3_server() as s3:
        shared = s3_settings(settings, endpoint(s3), "contributors", "service")
        with client_for(shared) as client:
            use_queue(client, shared, immediate=True)
            files = [
                ("photo", (p.name, p.read_bytes(), "image/x-portable-graymap"))
                for p in orl["s7"][:7]
            ]
            joined = client.post(
                "/api/contributions", data={"display_name": "Ada", "consent": "true"}, files=files
            ).json()
            assert retrain(shared, actor="test").promoted
        store = ObjectStore(shared)
        keys = {image_key(r.sha256, r.ext) for r in contribution_records(shared, joined["id"])}
        assert keys and all(store.exists(key) for key in keys)  # published as references

        elsewhere = shared.model_copy(update={"home": tmp_path / "elsewhere"})
        with client_for(elsewhere) as client:
            use_queue(client, elsewhere, immediate=False)
            gone = client.delete(
                f"/api/contributions/{joined['id']}", params={"token": joined["deletion_token"]}
            )
            assert gone.status_code == 204, gone.text
        assert not any(store.exists(key) for key in keys)
        assert not list(store.iter_keys(f"contributions/{joined['id']}/"))
