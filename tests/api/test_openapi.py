"""The OpenAPI schema describes the API: schemathesis runs every check in-process against the
real app (a trained model, SQLite, an admin token), with bounded examples."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.api import TestClient, api_settings, client_for, linked_home

from lookalike import accounts
from lookalike.api.state import app_state
from lookalike.config import Settings
from lookalike.names.service import ensure_name_generator

schemathesis = pytest.importorskip("schemathesis", reason="pip install 'lookalike[dev]'")
hypothesis = pytest.importorskip("hypothesis")

Orl = dict[str, list[Path]]


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory, trained: Path) -> Settings:
    root = tmp_path_factory.mktemp("oas")
    home = linked_home(trained, root / "home")
    database = f"sqlite:///{root / 'log.sqlite3'}"  # its own: the trained one is shared
    return api_settings(home, database, max_request_bytes=2_000_000, max_image_bytes=500_000)


@pytest.fixture(scope="module")
def client(settings: Settings) -> Iterator[TestClient]:
    ensure_name_generator(settings)  # /api/names answers (503 names.no_model otherwise)
    with client_for(settings) as c:
        yield c


@pytest.fixture(scope="module")
def token(client: TestClient) -> str:
    with app_state(client.app).sessions() as session, session.begin():
        _, plaintext = accounts.create_token(session, "schemathesis")
    return plaintext


# A schema-valid request may still meet the service's state (rolling back with no earlier
# champion is a 409 conflict); a too-large request is refused with 413, a wrong media type
# with 415.
ACCEPTED = ["2xx", 401, 403, 404, 409]
REFUSED = [400, 401, 403, 404, 406, 413, 415, 422, 428]


def semantic(path: str, method: str, why: str, also: tuple[int, ...] = ()) -> dict[str, Any]:
    """Operations whose valid requests can still be refused with 422 (and ``also``) for
    what a schema cannot say (``why``)."""
    statuses = [*ACCEPTED, 422, *also]
    return {
        "include-path": path,
        "include-method": method,
        "checks": {"positive_data_acceptance": {"expected-statuses": statuses}},
    }


ANALYTICS = (
    "classes", "accuracy", "volume", "heatmap", "latency", "confidence", "feedback", "drift",
    "export.csv", "export.json",
)  # fmt: skip


CONFIG = {
    "checks": {
        "positive_data_acceptance": {"expected-statuses": ACCEPTED},
        "negative_data_rejection": {"expected-statuses": REFUSED},
    },
    "operations": [
        semantic(
            "/api/predictions",
            "POST",
            "the bytes must be a photo with a judgeable face; a visit token one we made",
            also=(400,),
        ),
        semantic("/api/uploads/{key}", "PUT", "the bytes must be a photo"),
        *(semantic(f"/api/analytics/{n}", "GET", "end must come after start") for n in ANALYTICS),
    ],
}


@pytest.fixture(scope="module")
def api_schema(client: TestClient) -> Any:
    config = schemathesis.Config.from_dict(CONFIG)
    return schemathesis.openapi.from_asgi("/api/openapi.json", client.app, config=config)


schema = schemathesis.pytest.from_fixture("api_schema")


@pytest.mark.slow
@schema.parametrize()
@hypothesis.settings(
    max_examples=12,
    deadline=None,
    derandomize=True,
    suppress_health_check=list(hypothesis.HealthCheck),
)
def test_every_operation_conforms_to_the_schema(case: Any, token: str) -> None:
    from schemathesis.checks import CHECKS, load_all_checks

    load_all_checks()
    case.call_and_validate(headers={"Authorization": f"Bearer {token}"}, checks=CHECKS.get_all())


def test_the_schema_says_what_the_review_found_missing(
    client: TestClient, settings: Settings
) -> None:
    schema = client.get("/api/openapi.json").json()
    paths, components = schema["paths"], schema["components"]["schemas"]
    assert "PredictionFromUpload" in components  # referenced by the predictions body
    predictions = paths["/api/predictions"]["post"]["responses"]
    assert {"403", "404", "409", "413", "415", "422", "429", "503"} <= set(predictions)
    assert predictions["422"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ErrorPublic"
    }
    assert {"401", "403", "503"} <= set(paths["/api/models/retrain"]["post"]["responses"])
    end = next(
        p for p in paths["/api/analytics/classes"]["get"]["parameters"] if p["name"] == "end"
    )
    assert {"date", "date-time"} <= {s.get("format") for s in end["schema"]["anyOf"]}
    names = {p["name"]: p["schema"] for p in paths["/api/names"]["get"]["parameters"]}
    assert names["max_length"]["minimum"] == 2
    assert names["max_length"]["maximum"] == settings.names_max_length
    assert names["count"]["maximum"] == settings.names_max_count
    csv = paths["/api/analytics/export.csv"]["get"]["responses"]["200"]["content"]
    assert "text/csv" in csv


def test_each_app_has_its_own_limits_in_its_schema(tmp_path: Path) -> None:
    from lookalike.api import create_app

    def photo_limit(app: Any) -> int:
        body = app.openapi()["paths"]["/api/predictions"]["post"]["requestBody"]["content"]
        return int(body["multipart/form-data"]["schema"]["properties"]["photo"]["maxItems"])

    three = create_app(Settings(home=tmp_path / "a", max_photos_per_request=3))
    seven = create_app(Settings(home=tmp_path / "b", max_photos_per_request=7))
    assert (photo_limit(three), photo_limit(seven)) == (3, 7)
