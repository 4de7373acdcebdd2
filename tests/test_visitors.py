"""Visitors' photos in the training set: only with consent and a confirmed label, training
the head but never shown as reference photos, and gone (photo, record, embeddings) when the
visitor deletes them. Real API, real faces, SQLite and PostgreSQL."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from support.api import Orl, api_settings, client_for, trained_home

from lookalike.artifacts import load_model
from lookalike.config import Settings
from lookalike.data.cache import EmbeddingCache
from lookalike.data.splits import SplitStore
from lookalike.data.store import DatasetStore
from lookalike.errors import InvalidInput
from lookalike.jobs import Jobs
from lookalike.registry import Registry
from lookalike.retrain import retrain


@pytest.fixture
def settings(tmp_path_factory: pytest.TempPathFactory, orl: Orl, tmp_path: Path,
             database_url: str) -> Settings:  # fmt: skip
    home = tmp_path / "home"
    shutil.copytree(
        trained_home(tmp_path_factory, orl), home, ignore=shutil.ignore_patterns("*.sqlite3*")
    )
    return api_settings(home, database_url)


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with client_for(settings) as client:
        yield client


def _ask(client: TestClient, photo: Path, consent: bool) -> dict[str, Any]:
    response = client.post(
        "/api/predictions",
        files={"photo": (photo.name, photo.read_bytes(), "image/x-portable-graymap")},
        data={"consent": "true" if consent else "false"},
    )
    assert response.status_code == 201, response.text[:300]
    body: dict[str, Any] = response.json()
    return body


def _visitor_records(settings: Settings) -> dict[str, Any]:
    return {
        r.source: r for r in DatasetStore(settings).load().images.values()
        if r.source.startswith("visitor:")
    }  # fmt: skip


def test_only_consented_confirmed_photos_train_and_deletion_is_real(
    client: TestClient, settings: Settings, orl: Orl
) -> None:
    liked = _ask(client, orl["s2"][9], consent=True)  # the 10th photo: never imported
    assert liked["label"] == "s2"
    client.post(
        f"/api/predictions/{liked['id']}/feedback",
        json={"feedback": "like", "token": liked["feedback_token"]},
    )
    named = _ask(client, orl["s3"][9], consent=True)
    client.post(
        f"/api/predictions/{named['id']}/feedback",
        json={"feedback": "dislike", "label": "s4", "token": named["feedback_token"]},
    )
    no_consent = _ask(client, orl["s5"][9], consent=False)
    client.post(
        f"/api/predictions/{no_consent['id']}/feedback",
        json={"feedback": "like", "token": no_consent["feedback_token"]},
    )
    unconfirmed = _ask(client, orl["s6"][9], consent=True)  # no feedback: no label
    assert unconfirmed["deletion_token"]

    result = retrain(settings, actor="test")
    assert (result.visitors.added, result.visitors.forgotten) == (2, 0)
    records = _visitor_records(settings)
    assert {s: r.label for s, r in records.items()} == {
        f"visitor:{liked['id']}": "s2",
        f"visitor:{named['id']}": "s4",  # what the visitor said they look like
    }
    splits = SplitStore(settings).load()
    assert {splits.assignments[r.sha256] for r in records.values()} == {"train"}
    model = load_model(settings.home, result.version)
    gallery = set(model.gallery_hashes.tolist())
    assert not gallery & {r.sha256 for r in records.values()}  # never shown to others
    # ... but they train the head: one more s4 training photo than s4 reference photos.
    s4 = model.info.labels.index("s4")
    assert model.info.counts["train"]["s4"] == int((model.gallery_labels == s4).sum()) + 1
    assert model.info.personal_sources == sorted(records)
    with Registry(settings) as registry:  # the operator puts it in service
        if registry.champion() != result.version:
            registry.promote(result.version, reason="test", actor="test")

    # The visitor deletes: the photo, the dataset record, its blob and embeddings go.
    record = records[f"visitor:{liked['id']}"]
    blob = DatasetStore(settings).path_of(record)
    cache = EmbeddingCache(Path(settings.home) / "cache" / "embeddings.sqlite")
    assert blob.exists() and cache.get(model.info.backbone_key, record.sha256) is not None
    gone = client.delete(
        f"/api/predictions/{liked['id']}", params={"token": liked["deletion_token"]}
    )
    assert gone.status_code == 204
    assert f"visitor:{liked['id']}" not in _visitor_records(settings)
    assert not blob.exists()
    assert cache.get(model.info.backbone_key, record.sha256) is None
    assert record.sha256 not in SplitStore(settings).load().assignments  # not even its hash
    assert record.sha256 not in settings.data_dir.splits.read_text()
    assert Jobs(settings).training.pending_count() == 1  # the champion trained on it: retrain

    # The next retrain replaces the champion trained on it, whatever the figures say.
    after_delete = retrain(settings, actor="test")
    assert after_delete.promoted, after_delete.decision.reason
    assert "trained on 1 visitor photo(s) deleted by their owners" in after_delete.decision.reason
    assert after_delete.decision.figures["withdrawn_visitor_photos"] == 1
    new_champion = load_model(settings.home, after_delete.version).info
    assert new_champion.personal_sources == [f"visitor:{named['id']}"]
    # The version trained on the deleted photo never serves again, by hand or by rollback.
    with Registry(settings) as registry:
        with pytest.raises(InvalidInput) as refused:
            registry.promote(result.version, reason="test", actor="test")
        assert refused.value.code == "model.trained_on_deleted_data"
        assert refused.value.status == 409
        with pytest.raises(InvalidInput) as back:
            registry.rollback(reason="test", actor="test", to=result.version)
        assert back.value.code == "model.trained_on_deleted_data"
        assert registry.champion() == after_delete.version

    # Withdrawing the label (a plain dislike) takes the other one out at the next retrain.
    client.post(
        f"/api/predictions/{named['id']}/feedback",
        json={"feedback": "dislike", "token": named["feedback_token"]},
    )
    again = retrain(settings, actor="test")
    assert (again.visitors.added, again.visitors.forgotten) == (0, 1)
    assert _visitor_records(settings) == {}
    assert again.promoted and load_model(settings.home, again.version).info.personal_sources == []
    with Registry(settings) as registry:
        assert registry.champion() == again.version
