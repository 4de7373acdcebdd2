"""The review queue's API (/api/admin/review): the queue with filters, decisions, undo, the
audit trail and visitors' kept photos; every refusal in the one error shape. SQLite and
PostgreSQL."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import get_args

import pytest
from support.api import Orl, TestClient, api_settings, assert_error, client_for
from support.review import kept_photo

from lookalike import accounts
from lookalike.api.routes.review_queue import QueueKind
from lookalike.api.state import app_state
from lookalike.config import Settings
from lookalike.data.apply_decisions import apply_review_decisions
from lookalike.data.decisions import KINDS
from lookalike.data.store import DatasetStore

API = "/api/admin/review"


@pytest.fixture
def settings(trained: Path, tmp_path: Path, database_url: str) -> Settings:
    """A copy of the trained data dir (decisions change it) with a dataset check report
    flagging two of s1's photos and one of s2's."""
    home = tmp_path / "home"
    shutil.copytree(trained, home, ignore=shutil.ignore_patterns("*.sqlite3*"))
    settings = api_settings(home, database_url, review_low_confidence_rate=1.0)
    by_label = DatasetStore(settings).load().by_label()
    flags = [
        ("outlier", by_label["s1"][0], 4.5, None),
        ("outlier", by_label["s1"][1], 3.6, None),
        ("outlier", by_label["s2"][0], 5.0, None),
        ("closer_to_another_class", by_label["s1"][2], 0.05, "s3"),
    ]
    report = {
        "images": 36,
        "classes": 6,
        "backbone": "face",
        "flags": [
            {
                "kind": kind,
                "label": record.label,
                "score": score,
                "reason": f"planted {kind}",
                "sha256": record.sha256,
                "source": record.source,
                "suggested_label": suggested,
            }
            for kind, record, score, suggested in flags
        ],
    }
    settings.data_dir.reports.mkdir(parents=True, exist_ok=True)
    (settings.data_dir.dataset_check).write_text(json.dumps(report))
    return settings


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with client_for(settings) as c:
        yield c


@pytest.fixture
def auth(client: TestClient) -> dict[str, str]:
    with app_state(client.app).sessions() as session, session.begin():
        _, token = accounts.create_token(session, "reviewer")
    return {"Authorization": f"Bearer {token}"}


def test_queue_decide_undo_and_audit(
    client: TestClient, settings: Settings, auth: dict[str, str]
) -> None:
    assert_error(client.get(API), 401, "auth.required")
    assert_error(client.post(f"{API}/decisions", json={}), 401, "auth.required")
    queue = client.get(API, headers=auth).json()
    items = queue["data"]
    # By kind (closer_to_another_class first), then the group with the worst photo first.
    assert [(i["kind"], i["label"], i["score"]) for i in items] == [
        ("closer_to_another_class", "s1", 0.05),
        ("outlier", "s2", 5.0),
        ("outlier", "s1", 4.5),
        ("outlier", "s1", 3.6),
    ]
    assert queue["count"] == queue["total"] == 4 and queue["kinds"]["outlier"] == 3
    assert queue["classes"] == ["s1", "s2", "s3", "s4", "s5", "s6"]
    assert items[0]["suggested_label"] == "s3" and items[0]["pending"] is None
    photo = client.get(items[0]["image_url"], headers=auth)
    assert photo.status_code == 200 and photo.headers["content-type"].startswith("image/")

    relabel = client.post(
        f"{API}/decisions",
        json={"item": items[2]["id"], "action": "relabel", "label": "New Person"},
        headers=auth,
    )
    assert relabel.status_code == 201, relabel.text
    decision = relabel.json()
    assert (decision["state"], decision["actor"]) == ("pending", "token:reviewer")
    assert (decision["label_before"], decision["label_after"]) == ("s1", "New Person")
    filtered = client.get(API, params={"kind": "outlier", "label": "s1"}, headers=auth).json()
    assert filtered["count"] == 2 and filtered["total"] == 4
    assert filtered["data"][0]["pending"]["id"] == decision["id"]  # persists across filters

    one = items[1]["id"]
    bad = [
        ({"item": "outlier:" + "0" * 64, "action": "keep"}, 404, "review.item_not_found"),
        ({"item": one, "action": "burn"}, 422, "request.invalid"),
        ({"item": one, "action": "relabel", "label": " "}, 422, "review.bad_label"),
        ({"item": one, "action": "relabel"}, 422, "review.bad_label"),
        ({"item": one, "action": "relabel", "label": "x" * 101}, 422, "review.bad_label"),
        ({"item": one, "action": "relabel", "label": "x" * 256}, 422, "request.invalid"),
        ({"item": one, "action": "relabel", "label": "s2"}, 422, "review.same_label"),
        ({"item": one, "action": "label", "label": "s3"}, 422, "review.bad_action"),
    ]  # fmt: skip
    for body, status, code in bad:
        assert_error(client.post(f"{API}/decisions", json=body, headers=auth), status, code)
    assert_error(client.get(API, params={"kind": "nope"}, headers=auth), 422, "request.invalid")
    assert set(get_args(QueueKind)) == set(KINDS)  # the schema names every kind
    assert client.get(f"{API}/decisions", headers=auth).json()["count"] == 1  # nothing written

    undone = client.post(f"{API}/decisions/{decision['id']}/undo", headers=auth)
    assert undone.status_code == 200 and undone.json()["state"] == "undone"
    again = client.post(f"{API}/decisions/{decision['id']}/undo", headers=auth)
    assert_error(again, 409, "review.already_undone")
    assert_error(
        client.post(f"{API}/decisions/99999/undo", headers=auth), 404, "review.decision_not_found"
    )
    assert_error(
        client.post(f"{API}/decisions/0/undo", headers=auth), 404, "review.decision_not_found"
    )

    delete = client.post(
        f"{API}/decisions", json={"item": items[1]["id"], "action": "delete"}, headers=auth
    ).json()
    report = apply_review_decisions(settings, app_state(client.app).engine)
    assert report.removed == 1
    assert items[1]["sha256"] not in DatasetStore(settings).load().images
    applied = client.post(f"{API}/decisions/{delete['id']}/undo", headers=auth)
    assert_error(applied, 409, "review.already_applied")
    trail = client.get(f"{API}/decisions", headers=auth).json()
    assert [(d["action"], d["state"]) for d in trail["data"]] == [
        ("delete", "applied"),
        ("relabel", "undone"),
    ]
    assert trail["data"][0]["result"] == "removed from the dataset"
    assert items[1]["id"] not in {i["id"] for i in client.get(API, headers=auth).json()["data"]}


def test_visitor_photos_are_in_the_queue_and_served_to_admins_only(
    client: TestClient, settings: Settings, auth: dict[str, str], orl: Orl
) -> None:
    engine = app_state(client.app).engine
    said = kept_photo(
        settings, engine, orl["s4"][8], best_label="s3", probability=0.7, feedback_label="s4"
    )
    unsure = kept_photo(settings, engine, orl["s5"][9], best_label="s1", probability=0.2)
    queue = client.get(API, headers=auth).json()
    visitors = [(i["kind"], i["prediction_id"]) for i in queue["data"] if i["prediction_id"]]
    assert visitors == [("visitor_feedback", said), ("low_confidence", unsure)]
    url = next(i["image_url"] for i in queue["data"] if i["prediction_id"] == said)
    assert url == f"{API}/photos/{said}"
    photo = client.get(url, headers=auth)
    assert photo.status_code == 200 and photo.headers["content-type"] == "image/png"
    assert photo.content.startswith(b"\x89PNG")
    assert_error(client.get(url), 401, "auth.required")
    for unknown in ("0" * 32, "not-an-id", said.upper()):
        missing = client.get(f"{API}/photos/{unknown}", headers=auth)
        assert_error(missing, 404, "review.photo_not_found")
    labelled = client.post(
        f"{API}/decisions",
        json={"item": f"low_confidence:{unsure}", "action": "label", "label": "s5"},
        headers=auth,
    )
    assert labelled.status_code == 201 and labelled.json()["prediction_id"] == unsure
