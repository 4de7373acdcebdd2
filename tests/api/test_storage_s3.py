"""Object storage on S3 (``storage_url=s3://bucket/prefix``), against a real S3-compatible
server on loopback (``support.s3``: moto in server mode): the object store's contract, and
the service keeping, serving and deleting a visitor's photo and a contributor's files there."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from huey import MemoryHuey
from support.api import Orl, api_settings, assert_error, client_for, linked_home
from support.s3 import endpoint, s3_server, s3_settings

from lookalike.api.state import app_state
from lookalike.config import Settings
from lookalike.errors import InvalidInput, NotFound
from lookalike.jobs import Jobs
from lookalike.storage import ObjectStore

BUCKET = "lookalike-test"


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    with s3_server() as server:
        yield endpoint(server)


def keys_in_bucket(settings: Settings) -> list[str]:
    return list(ObjectStore(settings).iter_keys())


def test_the_object_store_contract_holds_on_s3(
    s3_endpoint: str, tmp_path: Path, request: Any
) -> None:
    settings = s3_settings(Settings(home=tmp_path / "home"), s3_endpoint, BUCKET, request.node.name)
    store = ObjectStore(settings)
    assert not store._local and store.root == f"{BUCKET}/{request.node.name}"
    store.put("consented/a.jpg", b"one", "image/jpeg")
    store.put("consented/b.png", b"two", "image/png")
    store.put("uploads/x", b"three")
    store.put("consented/a.jpg", b"one again", "image/jpeg")  # replaced whole
    assert store.get("consented/a.jpg") == b"one again" and store.exists("uploads/x")
    assert list(store.iter_keys("consented/")) == ["consented/a.jpg", "consented/b.png"]
    assert list(store.iter_keys()) == ["consented/a.jpg", "consented/b.png", "uploads/x"]
    assert store.mtime("uploads/x").tzinfo is not None
    head = store.fs.info(store.path("consented/b.png"))
    assert head.get("ContentType") == "image/png"  # kept for whoever serves it
    assert store.delete("uploads/x") and not store.delete("uploads/x")
    with pytest.raises(NotFound):
        store.get("uploads/x")
    assert list(ObjectStore(settings).iter_keys("uploads/")) == []  # another instance agrees
    with pytest.raises(InvalidInput) as bad:
        ObjectStore(settings.model_copy(update={"storage_url": "ftp://x"}))
    assert bad.value.code == "storage.bad_url"


def test_the_service_keeps_and_deletes_personal_files_on_s3(
    s3_endpoint: str, trained: Path, tmp_path: Path, orl: Orl
) -> None:
    base = api_settings(linked_home(trained, tmp_path / "home"), f"sqlite:///{tmp_path}/db.sqlite3")
    settings = s3_settings(base, s3_endpoint, BUCKET, "service")
    with client_for(settings) as client:
        app_state(client.app)._jobs = Jobs(settings, MemoryHuey("s3", immediate=True))
        kept = client.post(
            "/api/predictions",
            files={"photo": ("me.pgm", orl["s1"][8].read_bytes())},
            data={"consent": "true"},
        ).json()
        assert keys_in_bucket(settings) == [f"consented/{kept['id']}.pgm"]
        assert not (settings.data_dir.objects / "consented").exists()  # nothing local
        files = [("photo", (p.name, p.read_bytes())) for p in orl["s7"][:6]]
        joined = client.post(
            "/api/contributions", data={"display_name": "Ada", "consent": "true"}, files=files
        ).json()
        assert joined["status"] == "enrolled", joined
        crops = [k for k in keys_in_bucket(settings) if k.startswith("contributions/")]
        assert len(crops) == joined["crops"] and all("/face-" in k for k in crops)
        face = client.get(f"/api/contributions/{joined['id']}/faces/0")
        assert face.status_code == 200 and face.content.startswith(b"\xff\xd8")

        gone = client.delete(joined["status_url"], params={"token": joined["deletion_token"]})
        assert gone.status_code == 204
        deleted = client.delete(
            f"/api/predictions/{kept['id']}", params={"token": kept["deletion_token"]}
        )
        assert deleted.status_code == 204
        assert keys_in_bucket(settings) == []  # not one file of either person is left
        assert_error(
            client.get(f"/api/contributions/{joined['id']}/faces/0"), 404, "contribution.not_found"
        )


def test_an_unreachable_store_is_a_clean_503_and_leaves_no_row(
    trained: Path, tmp_path: Path, orl: Orl
) -> None:
    from sqlalchemy import func, select

    from lookalike.db import PredictionRecord

    base = api_settings(linked_home(trained, tmp_path / "home"), f"sqlite:///{tmp_path}/db.sqlite3")
    with s3_server() as server:  # its own: this test stops it
        settings = s3_settings(base, endpoint(server), BUCKET, "outage")
        with client_for(settings, raise_errors=False) as client:
            photo = {"photo": ("me.pgm", orl["s1"][8].read_bytes())}
            first = client.post("/api/predictions", files=photo, data={"consent": "true"})
            assert first.status_code == 201
            server.stop()  # S3 goes away
            # Deleting the kept photo cannot be done now: a clean 503, and the row still
            # names the photo, so the visitor's retry deletes it (never "deleted" while the
            # object stays in the bucket).
            refused = client.delete(
                f"/api/predictions/{first.json()['id']}",
                params={"token": first.json()["deletion_token"]},
            )
            assert assert_error(refused, 503, "storage.unavailable")["reason"] == "unreachable"
            with app_state(client.app).sessions() as session:
                row = session.get(PredictionRecord, first.json()["id"])
                assert row is not None and row.storage_key is not None and row.consent
            started = time.perf_counter()
            kept = client.post("/api/predictions", files=photo, data={"consent": "true"})
            details = assert_error(kept, 503, "storage.unavailable")
            assert time.perf_counter() - started < 30 and details["reason"] == "unreachable"
            assert "nothing was kept" in kept.json()["error"]["message"]
            plain = client.post("/api/predictions", files=photo)  # no photo to keep: answered
            assert plain.status_code == 201
            with app_state(client.app).sessions() as session:
                rows = session.scalar(select(func.count()).select_from(PredictionRecord))
                stored = session.scalar(
                    select(func.count()).where(PredictionRecord.storage_key.is_not(None))
                )
            assert (rows, stored) == (2, 1)  # the refused one left no row and no half record
