"""Classes, the current model, health, reference images, metrics, the page, ``lookalike serve``."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from support.api import (
    PEOPLE,
    TestClient,
    api_settings,
    assert_error,
)
from typer.testing import CliRunner

from lookalike import cli
from lookalike.api import create_app
from lookalike.api.state import app_state
from lookalike.artifacts import load_model
from lookalike.config import Settings

Orl = dict[str, list[Path]]


def test_classes_model_and_health(client: TestClient, settings: Settings) -> None:
    model = load_model(settings.home, "m0001")
    classes = client.get("/api/classes").json()
    assert classes["count"] == len(PEOPLE) == len(classes["data"])
    assert [c["name"] for c in classes["data"]] == model.info.labels
    assert sum(c["images"] for c in classes["data"]) == len(model.gallery_hashes)
    for c in classes["data"]:
        assert c["images"] >= 3
        image = client.get(c["image_url"])
        assert image.status_code == 200 and image.headers["content-type"] == "image/png"

    current = client.get("/api/models/current").json()
    assert current["version"] == "m0001" and current["backbone"] == "face"
    assert current["classes"] == len(PEOPLE) and current["labels"] == model.info.labels
    assert current["metrics"]["accuracy"] == model.info.metrics["accuracy"]
    assert current["metrics"]["macro_f1"] == model.info.metrics["macro_f1"]
    assert current["threshold"] == round(model.info.threshold, 4)
    assert current["test_version"] == model.info.test_version
    assert str(settings.home) not in json.dumps(current)

    assert client.get("/api/health").json() == {
        "status": "ok",
        "model": "m0001",
        "champion": "m0001",
        "model_errors": {},
        "database": "ok",
    }


def test_only_the_current_gallery_is_served(client: TestClient, settings: Settings) -> None:
    model = load_model(settings.home, "m0001")
    gallery = {str(h) for h in model.gallery_hashes}
    catalog = json.loads((Path(settings.home) / "dataset.json").read_text())
    outside = sorted(set(catalog["images"]) - gallery)  # imported, but test/val photos
    assert outside
    assert_error(client.get(f"/api/images/{outside[0]}"), 404, "image.not_found")
    assert_error(client.get(f"/api/images/{'0' * 64}"), 404, "image.not_found")
    assert client.get("/api/images/..%2f..%2fdataset.json").status_code == 404
    sha = sorted(gallery)[0]
    r = client.get(f"/api/images/{sha}")
    assert r.status_code == 200 and r.headers["etag"] == f'"{sha}"'
    assert "max-age" in r.headers["cache-control"]
    assert (
        client.get(f"/api/images/{sha}", headers={"if-none-match": f'"{sha}"'}).status_code == 304
    )


def test_admins_see_any_dataset_photo(client: TestClient, settings: Settings) -> None:
    from lookalike import accounts
    from lookalike.api.state import app_state

    catalog = json.loads((Path(settings.home) / "dataset.json").read_text())
    test_photo = sorted(catalog["images"])[0]  # a test or val photo: not in the gallery
    url = f"/api/admin/dataset/images/{test_photo}"
    assert_error(client.get(url), 401, "auth.required")
    with app_state(client.app).sessions() as session, session.begin():
        _, token = accounts.create_token(session, "reviewer")
    auth = {"Authorization": f"Bearer {token}"}
    r = client.get(url, headers=auth)
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"  # ORL's PGM
    assert r.content.startswith(b"\x89PNG") and "private" in r.headers["cache-control"]
    missing = client.get(f"/api/admin/dataset/images/{'0' * 64}", headers=auth)
    assert_error(missing, 404, "image.not_found")
    assert client.get("/api/admin/dataset/images/..%2fx", headers=auth).status_code == 404


def test_metrics(client: TestClient, orl: Orl) -> None:
    photo = ("photo", ("a.pgm", orl["s1"][9].read_bytes(), "image/jpeg"))
    assert client.post("/api/predictions", files=[photo]).status_code == 201
    no_face = ("photo", ("b.jpg", b"not a photo", "image/jpeg"))
    assert client.post("/api/predictions", files=[no_face]).status_code == 422
    client.get("/api/definitely/not/here")
    r = client.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    text = r.text
    assert 'lookalike_predictions_total{label="s1"} 1.0' in text
    assert "lookalike_predictions_no_strong_match_total 0.0" in text
    assert 'lookalike_prediction_refusals_total{code="image.not_an_image"} 1.0' in text
    assert (
        'lookalike_http_requests_total{method="POST",route="/api/predictions",status="201"} 1.0'
        in text
    )
    assert 'route="unmatched",status="404"' in text and "/api/definitely" not in text
    assert 'lookalike_http_request_duration_seconds_count{method="POST"' in text


def test_each_app_has_its_own_metrics(tmp_path: Path, database_url: str) -> None:
    settings = api_settings(tmp_path / "home", database_url)
    apps = [create_app(settings), create_app(settings)]  # no duplicate-registration error
    assert app_state(apps[0]).metrics.registry is not app_state(apps[1]).metrics.registry
    with TestClient(apps[0]) as one, TestClient(apps[1]) as two:
        one.get("/api/health")
        assert 'route="/api/health"' in one.get("/metrics").text
        assert 'route="/api/health"' not in two.get("/metrics").text


def test_page_static_and_openapi(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    for element in ('id="file-input"', 'id="consent"', 'id="result"', "/static/app.js"):
        assert element in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["x-content-type-options"] == "nosniff"
    script = client.get("/static/app.js")
    assert script.status_code == 200 and "javascript" in script.headers["content-type"]
    assert client.get("/static/app.css").headers["content-type"].startswith("text/css")
    spec = client.get("/api/openapi.json").json()
    assert {"/api/predictions", "/api/uploads", "/api/classes", "/api/health"} <= set(spec["paths"])
    assert (
        "multipart/form-data" in spec["paths"]["/api/predictions"]["post"]["requestBody"]["content"]
    )


def test_serve_and_demo_commands(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import socket

    import uvicorn

    calls: list[tuple[Any, list[socket.socket]]] = []

    def run(server: uvicorn.Server, sockets: list[socket.socket] | None = None) -> None:
        assert sockets is not None
        calls.append((server.config, [(s.getsockname(), s.fileno() >= 0) for s in sockets]))

    monkeypatch.setattr(uvicorn.Server, "run", run)
    home = tmp_path / "home"
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = CliRunner().invoke(
        cli.app, ["serve", "--host", "0.0.0.0", "--port", str(port), "--home", str(home)]
    )
    assert result.exit_code == 0, result.output
    assert f"Serving on http://0.0.0.0:{port}/" in result.output
    [(config, bound)] = calls
    assert app_state(config.app).settings.home == home
    assert bound == [(("0.0.0.0", port), True)]  # bound before uvicorn runs on it
    assert (config.workers, config.log_level, config.proxy_headers) == (1, "info", False)
    helped = CliRunner().invoke(cli.app, ["demo", "--help"], env={"COLUMNS": "200"})
    assert "--no-serve" in helped.output


def test_deletion_tokens_are_not_guessable_from_the_hash(client: TestClient, orl: Orl) -> None:
    r = client.post(
        "/api/predictions",
        files=[("photo", ("a.pgm", orl["s2"][8].read_bytes(), "image/jpeg"))],
        data={"consent": "on"},
    )
    token = r.json()["deletion_token"]
    hashed = hashlib.sha256(token.encode()).hexdigest()
    # The hash itself is not a token.
    pid = r.json()["id"]
    assert client.delete(f"/api/predictions/{pid}", params={"token": hashed}).status_code == 403
    assert client.delete(f"/api/predictions/{pid}", params={"token": token}).status_code == 204
