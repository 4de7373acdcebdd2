"""Signed, single-use upload URLs: POST /api/uploads, PUT the bytes, predict with the key."""

from __future__ import annotations

import hashlib
import hmac
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from sqlalchemy import select
from support.api import (
    SECRET,
    TestClient,
    api_settings,
    assert_error,
    client_for,
    linked_home,
    objects,
)

from lookalike.api.state import app_state
from lookalike.config import Settings
from lookalike.db import PredictionRecord, Upload

Orl = dict[str, list[Path]]


def ask(client: TestClient, size: int, content_type: str = "image/jpeg") -> dict:
    r = client.post("/api/uploads", json={"content_type": content_type, "size": size})
    assert r.status_code == 201, r.text
    return dict(r.json())


def upload(client: TestClient, data: bytes, content_type: str = "image/jpeg") -> dict:
    """Ask for a URL and PUT ``data`` there; returns the grant."""
    grant = ask(client, len(data), content_type)
    r = client.put(grant["url"], content=data, headers={"content-type": content_type})
    assert r.status_code == 200, r.text
    assert r.json()["size"] == len(data)
    return grant


def upload_rows(client: TestClient) -> list[Upload]:
    with app_state(client.app).sessions() as session:
        return list(session.scalars(select(Upload)))


def test_upload_then_predict(client: TestClient, settings: Settings, orl: Orl) -> None:
    # ORL photos are PGM, which is not an upload type: send the photo as JPEG-labelled bytes
    # (the content type is a contract for the PUT; decoding decides what the bytes are).
    data = orl["s2"][9].read_bytes()
    grant = ask(client, len(data), "image/jpeg")
    assert grant["method"] == "PUT" and grant["max_bytes"] == len(data)
    assert grant["headers"] == {"Content-Type": "image/jpeg"}  # what the PUT must send
    query = parse_qs(urlsplit(grant["url"]).query)
    assert urlsplit(grant["url"]).path == f"/api/uploads/{grant['key']}"
    assert set(query) == {"expires", "signature"}
    assert len(grant["key"]) >= 32

    put = client.put(grant["url"], content=data, headers={"content-type": "image/jpeg"})
    assert put.status_code == 200, put.text
    assert objects(settings) == [f"uploads/{grant['key']}"]

    r = client.post("/api/predictions", json={"upload_key": grant["key"]})
    assert r.status_code == 201, r.text
    assert r.json()["label"] == "s2" and r.json()["deletion_token"] is None
    # Without consent nothing of the photo is kept, not even the upload.
    assert objects(settings) == []
    [row] = upload_rows(client)
    assert row.received_at is not None and row.consumed_at is not None and row.size == len(data)

    assert_error(
        client.post("/api/predictions", json={"upload_key": grant["key"]}), 409, "upload.used"
    )
    assert_error(
        client.put(grant["url"], content=data, headers={"content-type": "image/jpeg"}),
        409,
        "upload.used",
    )


def test_upload_with_consent_keeps_only_the_consented_copy(
    client: TestClient, settings: Settings, orl: Orl
) -> None:
    data = orl["s5"][9].read_bytes()
    grant = upload(client, data)
    r = client.post(
        "/api/predictions",
        json={"upload_key": grant["key"], "consent": True, "client": "web", "face_index": 0},
    )
    assert r.status_code == 201, r.text
    body = r.json()
    assert objects(settings) == [f"consented/{body['id']}.pgm"]
    with app_state(client.app).sessions() as session:
        row = session.get(PredictionRecord, body["id"])
        assert row is not None and row.client == "web" and row.storage_key is not None


def test_put_refusals(client: TestClient, settings: Settings, orl: Orl) -> None:
    data = orl["s1"][9].read_bytes()
    grant = ask(client, len(data), "image/jpeg")
    url = grant["url"]
    path = urlsplit(url).path
    query = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
    jpeg = {"content-type": "image/jpeg"}

    assert_error(client.put(path, content=data, headers=jpeg), 403, "upload.unsigned")
    assert_error(
        client.put(path, params={"expires": query["expires"]}, content=data, headers=jpeg),
        403,
        "upload.unsigned",
    )
    bad = query["signature"][:-1] + ("0" if query["signature"][-1] != "0" else "1")
    assert_error(
        client.put(path, params={**query, "signature": bad}, content=data, headers=jpeg),
        403,
        "upload.bad_signature",
    )
    later = str(int(query["expires"]) + 3600)  # a longer life is not what was signed
    assert_error(
        client.put(path, params={**query, "expires": later}, content=data, headers=jpeg),
        403,
        "upload.bad_signature",
    )
    # Signed for another size: the size is part of the signature.
    bigger = {**query, "signature": _sign(grant["key"], query["expires"], "image/jpeg", 10**6)}
    assert_error(
        client.put(path, params=bigger, content=data, headers=jpeg), 403, "upload.bad_signature"
    )
    # A correctly signed URL whose time is up.
    past = str(int(time.time()) - 5)
    expired = {"expires": past, "signature": _sign(grant["key"], past, "image/jpeg", len(data))}
    assert_error(
        client.put(path, params=expired, content=data, headers=jpeg), 410, "upload.expired"
    )
    assert_error(
        client.put(url, content=data, headers={"content-type": "text/html"}),
        415,
        "upload.wrong_content_type",
    )
    assert_error(client.put(url, content=data), 415, "upload.wrong_content_type")
    details = assert_error(
        client.put(url, content=data + b"\0", headers=jpeg), 413, "upload.too_large"
    )
    assert details["max_bytes"] == len(data)
    chunked = client.put(url, content=iter([data, b"more"]), headers=jpeg)  # no Content-Length
    assert_error(chunked, 413, "upload.too_large")
    other = f"/api/uploads/{'A' * 32}"
    assert_error(
        client.put(other, params=query, content=data, headers=jpeg), 404, "upload.not_found"
    )
    assert objects(settings) == []
    # The URL still works once, with exactly what was signed; then never again.
    assert client.put(url, content=data, headers=jpeg).status_code == 200
    assert_error(client.put(url, content=data, headers=jpeg), 409, "upload.used")
    assert objects(settings) == [f"uploads/{grant['key']}"]


def _sign(key: str, expires: str, content_type: str, max_bytes: int) -> str:
    message = f"{key}:{expires}:{content_type}:{max_bytes}".encode()
    return hmac.new(SECRET.encode(), message, hashlib.sha256).hexdigest()


def test_asking_for_an_upload_is_validated(client: TestClient, settings: Settings) -> None:
    assert_error(
        client.post("/api/uploads", json={"content_type": "text/html", "size": 10}),
        415,
        "upload.unsupported_type",
    )
    assert_error(
        client.post("/api/uploads", json={"content_type": "image/png", "size": 10**9}),
        413,
        "upload.too_large",
    )
    details = assert_error(
        client.post("/api/uploads", json={"content_type": "image/png", "size": 0, "x": 1}),
        422,
        "request.invalid",
    )
    assert {f["field"] for f in details["fields"]} == {"body.size", "body.x"}
    assert upload_rows(client) == []


def test_predicting_from_an_upload_that_is_not_ready(client: TestClient) -> None:
    assert_error(
        client.post("/api/predictions", json={"upload_key": "nope"}), 404, "upload.not_found"
    )
    grant = ask(client, 100, "image/png")
    assert_error(
        client.post("/api/predictions", json={"upload_key": grant["key"]}),
        409,
        "upload.not_received",
    )
    details = assert_error(
        client.post("/api/predictions", json={"upload_key": "../../etc/passwd"}),
        422,
        "request.invalid",
    )
    assert details["fields"][0]["field"] == "body.upload_key"
    assert_error(
        client.post(
            "/api/predictions", content=b"{not json", headers={"content-type": "application/json"}
        ),
        422,
        "request.invalid",
    )


def test_unused_uploads_are_swept_after_their_ttl(
    trained: Path, tmp_path: Path, database_url: str, orl: Orl
) -> None:
    # Long enough that asking for the second URL (which sweeps) never finds the first one
    # expired on a busy machine; short enough to wait out.
    ttl = 3
    settings = api_settings(
        linked_home(trained, tmp_path / "home"), database_url, upload_ttl_seconds=ttl
    )
    data = orl["s3"][9].read_bytes()
    with client_for(settings) as client:
        kept = upload(client, data)  # received, never used
        late = ask(client, len(data), "image/jpeg")  # never received
        stray = "uploads/orphan-object"  # bytes without a row (e.g. a crash after storing)
        app_state(client.app).store.put(stray, b"x")
        assert objects(settings) == sorted([f"uploads/{kept['key']}", stray])
        time.sleep(ttl + 0.2)
        assert_error(
            client.put(late["url"], content=data, headers={"content-type": "image/jpeg"}),
            410,
            "upload.expired",
        )
        assert_error(
            client.post("/api/predictions", json={"upload_key": kept["key"]}),
            410,
            "upload.expired",
        )
        fresh = ask(client, 10, "image/png")  # asking for a URL sweeps the expired ones
        assert objects(settings) == []
        assert [row.key for row in upload_rows(client)] == [fresh["key"]]
        assert_error(
            client.post("/api/predictions", json={"upload_key": kept["key"]}),
            404,
            "upload.not_found",
        )
