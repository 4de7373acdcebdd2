"""``GET /api/admin/evaluation``: a face model version's evaluation views (admin only), the
photos behind them served by ``/api/admin/dataset/images``, two versions side by side, and
clear errors for versions it cannot show."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from support.api import TestClient, api_settings, assert_error, client_for
from support.names import names_home, register_and_promote, trained_pokemon

from lookalike import accounts
from lookalike.api.state import app_state
from lookalike.artifacts import load_model
from lookalike.config import Settings
from lookalike.data.store import DatasetStore
from lookalike.retrain import retrain

API = "/api/admin/evaluation"


def admin_headers(client: TestClient) -> dict[str, str]:
    with app_state(client.app).sessions() as session, session.begin():
        _, token = accounts.create_token(session, "evaluator")
    return {"Authorization": f"Bearer {token}"}


def test_the_champion_with_the_photos_behind_each_cell(
    client: TestClient, settings: Settings
) -> None:
    assert_error(client.get(API), 401, "auth.required")
    auth = admin_headers(client)
    body = client.get(API, headers=auth).json()
    view = body["version"]
    assert (view["version"], view["alias"]) == ("m0001", "champion")
    assert body["compare"] is None and body["comparison"] is None
    assert [(v["version"], v["alias"]) for v in body["versions"]] == [("m0001", "champion")]
    assert view["test_version"] == view["model_test_version"] == 1
    labels, confusion = view["labels"], view["confusion"]
    assert view["n"] == sum(map(sum, confusion)) > 0
    assert sum(c["count"] for c in view["cells"]) == view["n"]
    assert {c["label"] for c in view["per_class"]} == set(labels)
    catalog = DatasetStore(settings).load().images
    for cell in view["cells"]:
        assert (
            cell["count"] == confusion[labels.index(cell["true"])][labels.index(cell["predicted"])]
        )
        for photo in cell["photos"]:
            assert catalog[photo["sha256"]].label == cell["true"] == photo["true"]
            assert photo["url"] == f"/api/admin/dataset/images/{photo['sha256']}"
    photo = view["cells"][0]["photos"][0]
    image = client.get(photo["url"], headers=auth)
    assert image.status_code == 200 and image.headers["content-type"].startswith("image/")
    assert client.get(photo["url"]).status_code == 401  # the photos are admins' too
    # The aliases name versions too; an alias with no version compares nothing.
    same = client.get(API, params={"version": "m0001", "compare": "challenger"}, headers=auth)
    assert same.status_code == 200 and same.json()["comparison"] is None
    assert same.json()["version"]["cells"] == view["cells"]


def test_versions_it_cannot_show_are_refused_clearly(
    client: TestClient, settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> None:
    auth = admin_headers(client)

    def get(**params: str) -> Any:
        return client.get(API, params=params, headers=auth)

    details = assert_error(get(version="m0042"), 404, "model.not_found")
    assert details["version"] == "m0042"
    assert_error(get(version="m0001", compare="m0042"), 404, "model.not_found")
    assert_error(get(version="../etc"), 404, "model.not_found")
    assert_error(get(version="challenger"), 404, "model.not_found")  # there is none
    assert_error(get(version="m0001", compare="m0001"), 422, "evaluation.same_version")
    assert_error(get(version="m" * 65), 422, "request.invalid")
    assert_error(get(version=""), 422, "request.invalid")

    # A name generator version is in the registry, but it is not a face model.
    template, _, info = trained_pokemon(tmp_path_factory)
    names_home(template, Path(settings.home))
    register_and_promote(settings, info)
    details = assert_error(get(version=info.version), 422, "evaluation.wrong_kind")
    assert details == {"version": info.version, "kind": "names"}
    assert_error(get(compare=info.version), 422, "evaluation.wrong_kind")


@pytest.fixture
def two_versions(trained: Path, tmp_path: Path, database_url: str) -> Settings:
    """A copied data dir (this test trains) with m0001 champion and m0002 trained with the
    other head, so the two answer some photos differently."""
    home = tmp_path / "home"
    shutil.copytree(trained, home, ignore=shutil.ignore_patterns("backbones", "*.sqlite3*"))
    (home / "backbones").symlink_to(trained / "backbones", target_is_directory=True)
    settings = api_settings(home, database_url)
    head = "gallery" if load_model(home, "m0001").info.head != "gallery" else "logistic"
    assert retrain(settings, head=head, strict=False).report.version == "m0002"
    return settings


def test_champion_and_challenger_side_by_side(two_versions: Settings) -> None:
    with client_for(two_versions) as client:
        auth = admin_headers(client)
        body = client.get(API, params={"version": "m0002", "compare": "m0001"}, headers=auth)
        assert body.status_code == 200, body.text
        data = body.json()
    a, b, diff = data["version"], data["compare"], data["comparison"]
    assert (a["version"], b["version"]) == ("m0002", "m0001")
    assert b["alias"] == "champion"
    assert a["test_version"] == b["test_version"] == diff["test_version"]
    assert diff["shared"] == a["n"] == b["n"] > 0
    assert {r["label"] for r in diff["per_class"]} == set(a["labels"]) | set(b["labels"])
    for row in diff["per_class"]:
        mine = next(c for c in a["per_class"] if c["label"] == row["label"])
        theirs = next(c for c in b["per_class"] if c["label"] == row["label"])
        assert (row["recall"], row["compare_recall"]) == (mine["recall"], theirs["recall"])
    # The photos one gets right and the other wrong account for the accuracy difference.
    gained = diff["only_version_right_count"] - diff["only_compare_right_count"]
    assert round((a["accuracy"] - b["accuracy"]) * a["n"]) == gained
    for photo in diff["only_version_right"]:
        assert photo["predicted"] == photo["true"] != photo["compare_predicted"]
    for photo in diff["only_compare_right"]:
        assert photo["compare_predicted"] == photo["true"] != photo["predicted"]
    assert [v["version"] for v in data["versions"]] == ["m0002", "m0001"]
    # Both views were cached in the copied data dir.
    reports = Path(two_versions.home) / "reports"
    assert (reports / "m0001" / f"evaluation-t{a['test_version']}.json").is_file()
    assert (reports / "m0002" / f"evaluation-t{a['test_version']}.json").is_file()


def test_before_any_model_it_says_how_to_make_one(tmp_path: Path, database_url: str) -> None:
    settings = api_settings(tmp_path / "empty", database_url)
    with client_for(settings) as client:
        r = client.get(API, headers=admin_headers(client))
    assert_error(r, 404, "model.not_found")
    assert "lookalike train" in r.json()["error"]["message"]
