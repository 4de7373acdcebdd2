"""Presigned uploads on S3: ``POST /api/uploads`` hands out a presigned S3 PUT URL, the photo
goes straight to the bucket, ``POST /api/predictions {"upload_key"}`` checks the object and
answers from it, once. Against an S3-compatible server on loopback (``support.s3``: moto in
server mode, checking presigned URLs as S3 does)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from sqlalchemy import select, update
from support.api import Orl, TestClient, api_settings, assert_error, client_for, linked_home
from support.s3 import CheckedMotoServer, endpoint, s3_server, s3_settings

from lookalike.api.state import app_state
from lookalike.config import Settings
from lookalike.db import Upload, utcnow
from lookalike.services.uploads import sweep_uploads
from lookalike.storage import ObjectStore

BUCKET = "lookalike-uploads"


@pytest.fixture(scope="module")
def s3() -> Iterator[CheckedMotoServer]:
    with s3_server() as server:
        yield server


@pytest.fixture
def settings(s3: CheckedMotoServer, trained: Path, tmp_path: Path, request: Any) -> Settings:
    base = api_settings(linked_home(trained, tmp_path / "home"), f"sqlite:///{tmp_path}/db.sqlite3")
    return s3_settings(base, endpoint(s3), BUCKET, request.node.name)


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with client_for(settings) as c:
        yield c


def ask(client: TestClient, size: int, content_type: str = "image/jpeg") -> dict[str, Any]:
    r = client.post("/api/uploads", json={"content_type": content_type, "size": size})
    assert r.status_code == 201, r.text
    return dict(r.json())


def put(grant: dict[str, Any], data: bytes, **headers: str) -> httpx.Response:
    """PUT ``data`` to the grant's URL with its headers (``headers`` replace some)."""
    sent = {**grant["headers"], **{k.replace("_", "-"): v for k, v in headers.items()}}
    return httpx.put(grant["url"], content=data, headers=sent, timeout=10)


def bucket(settings: Settings) -> list[str]:
    return list(ObjectStore(settings).iter_keys())


def rows(client: TestClient) -> list[Upload]:
    with app_state(client.app).sessions() as session:
        return list(session.scalars(select(Upload)))


def expire(client: TestClient) -> None:
    """Every upload's time is up (as if upload_ttl_seconds had passed)."""
    with app_state(client.app).sessions() as session, session.begin():
        session.execute(update(Upload).values(expires_at=utcnow() - timedelta(seconds=1)))


def sweep(client: TestClient) -> int:
    state = app_state(client.app)
    return sweep_uploads(state.sessions, state.store, state.settings)


def test_a_presigned_upload_goes_straight_to_s3_and_is_used_once(
    client: TestClient, settings: Settings, s3: CheckedMotoServer, orl: Orl
) -> None:
    data = orl["s2"][9].read_bytes()
    grant = ask(client, len(data))
    url = urlsplit(grant["url"])
    assert f"{url.scheme}://{url.netloc}" == endpoint(s3)  # not this server
    assert url.path == f"/{BUCKET}/{settings.storage_url.split('/', 3)[3]}/uploads/{grant['key']}"
    query = parse_qs(url.query)
    assert query["X-Amz-SignedHeaders"] == ["content-length;content-type;host"]
    assert grant["headers"] == {"Content-Type": "image/jpeg"} and grant["method"] == "PUT"
    assert grant["max_bytes"] == len(data) and rows(client)[0].received_at is None

    assert put(grant, data).status_code == 200
    assert bucket(settings) == [f"uploads/{grant['key']}"]
    r = client.post("/api/predictions", json={"upload_key": grant["key"]})
    assert r.status_code == 201, r.text
    assert r.json()["label"] == "s2" and r.json()["deletion_token"] is None
    assert bucket(settings) == []  # without consent nothing is kept, not even the upload
    [row] = rows(client)
    assert row.received_at is not None and row.consumed_at is not None and row.size == len(data)

    assert_error(
        client.post("/api/predictions", json={"upload_key": grant["key"]}), 409, "upload.used"
    )
    # S3 cannot make a URL single-use: a second PUT lands, but is never used, and goes with
    # the upload's row when it expires.
    assert put(grant, data).status_code == 200
    assert_error(
        client.post("/api/predictions", json={"upload_key": grant["key"]}), 409, "upload.used"
    )
    expire(client)
    assert sweep(client) == 1
    assert bucket(settings) == [] and rows(client) == []


def test_s3_refuses_a_put_that_is_not_what_was_signed(
    client: TestClient, settings: Settings, s3: CheckedMotoServer, orl: Orl
) -> None:
    data = orl["s1"][9].read_bytes()
    grant = ask(client, len(data))
    assert s3.check is not None
    refused_before = len(s3.check.refused)
    signature = parse_qs(urlsplit(grant["url"]).query)["X-Amz-Signature"][0]
    tampered = {**grant, "url": grant["url"].replace(signature, signature[::-1])}
    attempts = [
        put(grant, data, Content_Type="image/png"),  # another type
        put(grant, data + b"\0"),  # one byte more
        put(grant, data[:-1]),  # one byte less
        put(tampered, data),
        httpx.put(grant["url"], content=data, timeout=10),  # no Content-Type at all
    ]
    assert [a.status_code for a in attempts] == [403] * 5
    assert [b"SignatureDoesNotMatch" in a.content for a in attempts] == [True] * 5
    assert s3.check.refused[refused_before:] == ["SignatureDoesNotMatch"] * 5
    assert bucket(settings) == []
    # Nothing arrived: nothing to predict from, and the row goes when its time is up.
    assert_error(
        client.post("/api/predictions", json={"upload_key": grant["key"]}),
        409,
        "upload.not_received",
    )
    expire(client)
    assert_error(
        client.post("/api/predictions", json={"upload_key": grant["key"]}), 410, "upload.expired"
    )
    sweep(client)
    assert rows(client) == [] and bucket(settings) == []


def test_an_expired_presigned_url_is_refused_by_s3(
    s3: CheckedMotoServer, trained: Path, tmp_path: Path, orl: Orl
) -> None:
    base = api_settings(
        linked_home(trained, tmp_path / "home"),
        f"sqlite:///{tmp_path}/db.sqlite3",
        upload_ttl_seconds=1,
    )
    settings = s3_settings(base, endpoint(s3), BUCKET, "expired-url")
    data = orl["s1"][9].read_bytes()
    with client_for(settings) as client:
        grant = ask(client, len(data))
        time.sleep(2.2)
        late = put(grant, data)
        assert late.status_code == 403 and b"AccessDenied" in late.content
        assert bucket(settings) == []
        ask(client, 10, "image/png")  # asking for a URL sweeps the expired upload's row
        assert [row.key for row in rows(client)] != [grant["key"]] and len(rows(client)) == 1


def test_the_server_checks_the_object_itself(
    client: TestClient, settings: Settings, orl: Orl
) -> None:
    """What S3 would have refused, had the server not checked (an S3-compatible server that
    ignores signed headers, a bucket written by someone else): refused before it is used."""
    store = app_state(client.app).store
    data = orl["s3"][9].read_bytes()

    def planted(body: bytes, content_type: str, declared: int | None = None) -> str:
        grant = ask(client, declared or len(body))
        store.put(f"uploads/{grant['key']}", body, content_type)  # no signature checked
        return str(grant["key"])

    cases = [
        (planted(data, "text/html"), 415, "upload.wrong_content_type"),
        (planted(data, "image/jpeg", declared=len(data) - 1), 413, "upload.too_large"),
        (planted(data, "image/jpeg", declared=len(data) + 1), 422, "upload.wrong_size"),
    ]
    for key, status, code in cases:
        assert_error(client.post("/api/predictions", json={"upload_key": key}), status, code)
    assert bucket(settings) == []  # the wrong objects were deleted; their rows wait to expire
    assert all(row.consumed_at is None for row in rows(client))

    # The right size and type, but not a photo: decoding refuses it cleanly, once.
    key = planted(b"<html>" + b"x" * 200, "image/jpeg")
    refused = client.post("/api/predictions", json={"upload_key": key})
    assert refused.status_code == 422 and refused.json()["error"]["code"].startswith("image.")
    assert_error(client.post("/api/predictions", json={"upload_key": key}), 409, "upload.used")
    assert bucket(settings) == []


def test_with_presigned_uploads_off_the_bytes_go_through_the_server(
    s3: CheckedMotoServer, trained: Path, tmp_path: Path, orl: Orl
) -> None:
    base = api_settings(linked_home(trained, tmp_path / "home"), f"sqlite:///{tmp_path}/db.sqlite3")
    settings = s3_settings(base, endpoint(s3), BUCKET, "via-server", s3_presigned_uploads=False)
    data = orl["s4"][9].read_bytes()
    with client_for(settings) as client:
        grant = ask(client, len(data))
        assert grant["url"].startswith(f"/api/uploads/{grant['key']}?expires=")
        sent = client.put(grant["url"], content=data, headers=grant["headers"])
        assert sent.status_code == 200, sent.text
        assert bucket(settings) == [f"uploads/{grant['key']}"]
        r = client.post("/api/predictions", json={"upload_key": grant["key"]})
        assert r.status_code == 201 and r.json()["label"] == "s4"
        assert bucket(settings) == []


def test_a_url_that_cannot_be_signed_leaves_no_row(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    class NoCredentials:
        def generate_presigned_url(self, *args: Any, **kwargs: Any) -> str:
            raise RuntimeError("Unable to locate credentials")

    store = app_state(client.app).store
    monkeypatch.setattr(store, "_signer", NoCredentials())
    details = assert_error(
        client.post("/api/uploads", json={"content_type": "image/png", "size": 10}),
        503,
        "storage.unavailable",
    )
    assert details["reason"] == "cannot_sign" and rows(client) == []


def test_the_page_may_connect_to_the_public_endpoint_it_puts_to(
    s3: CheckedMotoServer, trained: Path, tmp_path: Path, orl: Orl
) -> None:
    """Browsers reach S3 under another name than the service does (s3_public_endpoint_url):
    the URL is signed for that name, and the page's CSP lets it connect there."""
    public = endpoint(s3).replace("127.0.0.1", "localhost")
    base = api_settings(linked_home(trained, tmp_path / "home"), f"sqlite:///{tmp_path}/db.sqlite3")
    settings = s3_settings(base, endpoint(s3), BUCKET, "public", s3_public_endpoint_url=public)
    data = orl["s6"][9].read_bytes()
    with client_for(settings) as client:
        grant = ask(client, len(data))
        assert grant["url"].startswith(f"{public}/{BUCKET}/public/uploads/")
        assert put(grant, data).status_code == 200
        r = client.post("/api/predictions", json={"upload_key": grant["key"]})
        assert r.status_code == 201 and r.json()["label"] == "s6"
        page = client.get("/")
        assert f"connect-src 'self' {public}" in page.headers["content-security-policy"]
        assert 'data-direct-uploads="true"' in page.text
