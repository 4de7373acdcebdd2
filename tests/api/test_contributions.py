"""Joining the gallery over HTTP: a contribution of photos is processed by the job queue
(immediate here), the contributor is then answered "this is X" at once, without a retrain,
and deleting it with its token removes every copy. Refusals say why.

The model knows ORL people s1-s6; the contributors are s7 and s8, whom it has never seen.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from huey import MemoryHuey
from sqlalchemy import select
from support.api import TestClient, assert_error, objects

from lookalike.api.state import app_state
from lookalike.config import Settings
from lookalike.db import Contribution
from lookalike.jobs import Jobs

Orl = dict[str, list[Path]]


@pytest.fixture
def client(client: TestClient, settings: Settings) -> TestClient:
    """The app with a job queue that runs each job as it is queued."""
    app_state(client.app)._jobs = Jobs(settings, MemoryHuey("test", immediate=True))
    return client


def photo_files(paths: list[Path]) -> list[tuple[str, tuple[str, bytes, str]]]:
    return [("photo", (p.name, p.read_bytes(), "image/x-portable-graymap")) for p in paths]


def join(client: TestClient, paths: list[Path], name: str = "Ada", **form: Any) -> Any:
    data = {"display_name": name, "consent": "true", **form}
    return client.post("/api/contributions", data=data, files=photo_files(paths))


def predict(client: TestClient, path: Path) -> dict[str, Any]:
    r = client.post("/api/predictions", files={"photo": (path.name, path.read_bytes())})
    assert r.status_code == 201, r.text
    answer: dict[str, Any] = r.json()["answer"]
    return answer


def test_photos_enrol_at_once_and_deletion_removes_every_copy(
    client: TestClient, settings: Settings, orl: Orl
) -> None:
    before = predict(client, orl["s7"][9])  # a stranger to the model: lookalikes only
    assert before["kind"] == "lookalike" and "Ada" not in before["names"]

    r = join(client, orl["s7"][:8])
    assert r.status_code == 202, r.text
    body = r.json()
    assert body["status"] == "enrolled" and body["progress"] == 1.0, body
    assert settings.contribution_min_crops <= body["crops"] <= 8
    assert body["status_url"] == f"/api/contributions/{body['id']}" and body["deletion_token"]
    status = client.get(body["status_url"]).json()
    assert (status["status"], status["display_name"], status["approved"]) == (
        "enrolled",
        "Ada",
        True,
    )
    assert "deletion_token" not in status
    kept = [o for o in objects(settings) if o.startswith(f"contributions/{body['id']}/")]
    assert len([o for o in kept if "/face-" in o]) == body["crops"]
    assert not [o for o in kept if "/photo-" in o]  # the sources go once processed

    after = predict(client, orl["s7"][9])  # a held-out photo of the contributor
    assert (after["kind"], after["names"]) == ("same_person", ["Ada"])
    assert after["message"] == "This is Ada."
    face_url = after["lookalikes"][0]["reference_url"]  # their crop closest to the photo
    assert face_url.startswith(f"/api/contributions/{body['id']}/faces/")
    face = client.get(face_url)
    assert face.status_code == 200 and face.content.startswith(b"\xff\xd8")  # a JPEG
    assert face.headers["content-type"] == "image/jpeg"
    assert face.headers["content-security-policy"] == "default-src 'none'"
    missing = client.get(f"/api/contributions/{body['id']}/faces/{body['crops']}")
    assert_error(missing, 404, "contribution.face_not_found")
    other = predict(client, orl["s2"][9])  # people of the model are still themselves
    assert (other["kind"], other["names"]) == ("same_person", ["s2"])

    wrong = client.delete(body["status_url"], params={"token": "not-it"})
    assert_error(wrong, 403, "contribution.bad_token")
    gone = client.delete(body["status_url"], headers={"X-Deletion-Token": body["deletion_token"]})
    assert gone.status_code == 204, gone.text
    assert not [o for o in objects(settings) if o.startswith("contributions/")]
    assert not (settings.data_dir.objects / "contributions" / body["id"]).exists()
    with app_state(client.app).sessions() as session:
        assert session.scalars(select(Contribution)).all() == []
    assert_error(client.get(body["status_url"]), 404, "contribution.not_found")
    forgotten = predict(client, orl["s7"][9])
    assert forgotten["kind"] == "lookalike" and "Ada" not in forgotten["names"]
    assert_error(client.get(face_url), 404, "contribution.not_found")


def test_the_same_face_under_another_name_waits_for_an_admin(client: TestClient, orl: Orl) -> None:
    first = join(client, orl["s7"][:6], name="Ada").json()
    assert (first["status"], first["approved"]) == ("enrolled", True)
    second = join(client, orl["s7"][2:9], name="Bob").json()
    assert (second["status"], second["approved"]) == ("enrolled", False)
    assert second["reason_code"] == "contribution.review"
    assert predict(client, orl["s7"][9])["names"] == ["Ada"]  # Bob is not matched meanwhile
    again = join(client, orl["s7"][3:9], name="Ada").json()  # the same name: no review
    assert (again["status"], again["approved"]) == ("enrolled", True)

    # An admin sees Bob first in the review list and decides.
    from lookalike import accounts

    with app_state(client.app).sessions() as session, session.begin():
        _, token = accounts.create_token(session, "reviewer")
    auth = {"Authorization": f"Bearer {token}"}
    assert_error(client.get("/api/admin/contributions"), 401, "auth.required")
    held = client.get("/api/admin/contributions", params={"held": "true"}, headers=auth).json()
    assert [c["id"] for c in held["data"]] == [second["id"]]
    listed = client.get("/api/admin/contributions", headers=auth).json()
    assert listed["count"] == 3 and listed["data"][0]["id"] == second["id"]
    ok = client.post(f"/api/admin/contributions/{second['id']}/approve", headers=auth)
    assert ok.status_code == 200 and ok.json()["approved"] is True, ok.text
    removed = client.delete(f"/api/admin/contributions/{first['id']}", headers=auth)
    assert removed.status_code == 204
    gone = client.delete(f"/api/admin/contributions/{again['id']}", headers=auth)
    assert gone.status_code == 204
    assert predict(client, orl["s7"][9])["names"] == ["Bob"]  # approved: now matched


def test_nothing_is_stored_without_consent(
    client: TestClient, settings: Settings, orl: Orl
) -> None:
    r = join(client, orl["s7"][:5], consent="false")
    assert_error(r, 422, "contribution.consent_required")
    r = client.post(
        "/api/contributions", data={"display_name": "Ada"}, files=photo_files(orl["s7"][:5])
    )
    assert_error(r, 422, "contribution.consent_required")
    assert not [o for o in objects(settings) if o.startswith("contributions/")]
    with app_state(client.app).sessions() as session:
        assert session.scalars(select(Contribution)).all() == []


def test_two_people_are_refused_and_nothing_of_them_is_kept(
    client: TestClient, settings: Settings, orl: Orl
) -> None:
    r = join(client, orl["s7"][:4] + orl["s8"][:4], name="Two")
    assert r.status_code == 202, r.text
    body = r.json()
    assert (body["status"], body["reason_code"]) == ("refused", "contribution.several_people")
    assert "more than one person" in body["reason"]
    assert not [o for o in objects(settings) if o.startswith("contributions/")]
    answer = predict(client, orl["s7"][9])
    assert "Two" not in answer["names"]


def test_photos_without_a_face_are_refused_with_the_reason(
    client: TestClient, settings: Settings, nonfaces: dict[str, Any]
) -> None:
    import io

    from PIL import Image

    files = []
    for name in ("coffee", "chelsea", "rocket"):
        buf = io.BytesIO()
        Image.fromarray(nonfaces[name]).save(buf, "JPEG")
        files.append(("photo", (f"{name}.jpg", buf.getvalue(), "image/jpeg")))
    r = client.post(
        "/api/contributions", data={"display_name": "Cat", "consent": "true"}, files=files
    )
    body = r.json()
    assert (body["status"], body["reason_code"]) == ("refused", "contribution.too_few_faces")
    assert body["reason"].startswith("Only 0 usable photos")
    assert "keep your face in the frame" in body["reason"]


@pytest.mark.parametrize(
    ("form", "files", "status", "code"),
    [
        ({"display_name": "", "consent": "true"}, 5, 422, "contribution.display_name"),
        ({"display_name": "x" * 65, "consent": "true"}, 5, 422, "contribution.display_name"),
        ({"display_name": "Ada", "consent": "true"}, 2, 422, "contribution.photo_count"),
        # no file at all: a plain form, not multipart
        ({"display_name": "Ada", "consent": "true"}, 0, 415, "request.unsupported_media_type"),
        ({"display_name": "Ada", "consent": "maybe"}, 5, 422, "request.invalid"),
    ],
)
def test_bad_contributions_are_refused_clearly(
    client: TestClient,
    settings: Settings,
    orl: Orl,
    form: dict[str, str],
    files: int,
    status: int,
    code: str,
) -> None:
    r = client.post("/api/contributions", data=form, files=photo_files(orl["s9"][:files]) or None)
    assert_error(r, status, code)
    assert not [o for o in objects(settings) if o.startswith("contributions/")]


def test_a_wrong_method_names_every_allowed_one(client: TestClient) -> None:
    r = client.request("OPTIONS", f"/api/contributions/{'0' * 32}")
    assert_error(r, 405, "http.method_not_allowed")
    assert r.headers["allow"] == "DELETE, GET"


def test_a_video_and_photos_together_are_refused(
    client: TestClient, settings: Settings, orl: Orl
) -> None:
    files = [*photo_files(orl["s9"][:3]), ("video", ("v.mp4", b"\0\0\0\x18ftypmp42", "video/mp4"))]
    r = client.post(
        "/api/contributions", data={"display_name": "Ada", "consent": "true"}, files=files
    )
    assert_error(r, 422, "contribution.media")


def test_a_video_that_is_not_one_is_refused(client: TestClient, settings: Settings) -> None:
    r = client.post(
        "/api/contributions",
        data={"display_name": "Ada", "consent": "true"},
        files={"video": ("notes.mp4", b"these are my notes, not a video\n" * 10, "video/mp4")},
    )
    assert_error(r, 422, "video.unreadable")
    assert not [o for o in objects(settings) if o.startswith("contributions/")]


def test_the_retention_period_deletes_contributions_and_kept_photos(
    client: TestClient, settings: Settings, orl: Orl
) -> None:
    from datetime import timedelta

    from lookalike.db import PredictionRecord, utcnow
    from lookalike.retention import expire

    joined = join(client, orl["s7"][:6]).json()
    kept = client.post(
        "/api/predictions",
        files={"photo": ("me.pgm", orl["s2"][9].read_bytes())},
        data={"consent": "true"},
    ).json()
    state = app_state(client.app)
    never = settings.model_copy(update={"retention_days": 0})
    assert expire(never, state.engine) == expire(settings, state.engine)  # nothing is old yet
    assert expire(settings, state.engine).photos == 0
    with state.sessions() as session, session.begin():  # a year and a day later
        long_ago = utcnow() - timedelta(days=settings.retention_days + 1)
        session.get(Contribution, joined["id"]).created_at = long_ago  # type: ignore[union-attr]
        session.get(PredictionRecord, kept["id"]).created_at = long_ago  # type: ignore[union-attr]
    expired = expire(settings, state.engine)
    assert (expired.contributions, expired.photos) == (1, 1)
    assert not [o for o in objects(settings) if o.startswith(("contributions/", "consented/"))]
    with state.sessions() as session:
        assert session.get(Contribution, joined["id"]) is None
        row = session.get(PredictionRecord, kept["id"])
        assert row is not None and row.best_label == "s2"  # the answer stays
        assert (row.storage_key, row.deletion_token_hash, row.consent) == (None, None, False)
    assert predict(client, orl["s7"][9])["names"] != ["Ada"]


def test_contributions_are_limited_per_client_and_hour(settings: Settings, orl: Orl) -> None:
    from support.api import client_for

    limited = settings.model_copy(update={"contributions_per_hour": 1})
    with client_for(limited) as client:
        app_state(client.app)._jobs = Jobs(limited, MemoryHuey("test", immediate=True))
        assert join(client, orl["s7"][:5]).status_code == 202
        again = join(client, orl["s8"][:5], name="Bob")
        details = assert_error(again, 429, "rate_limited")
        assert details["limit_per_hour"] == 1 and int(again.headers["retry-after"]) > 3000
        assert "an hour" in again.json()["error"]["message"]


def test_a_large_gallery_is_searched_with_the_index_the_same_way(
    settings: Settings, orl: Orl
) -> None:
    """From ``enrolled_index_min_size`` crops on, the enrolled gallery is a faiss IVF index,
    kept up to date incrementally: enrolled, matched, deleted, never matched again."""
    from support.api import client_for

    from lookalike.scoring.index import IvfIndex

    indexed = settings.model_copy(update={"enrolled_index_min_size": 1})
    with client_for(indexed) as client:
        app_state(client.app)._jobs = Jobs(indexed, MemoryHuey("test", immediate=True))
        ada = join(client, orl["s7"][:8]).json()
        bob = join(client, orl["s8"][:8], name="Bob").json()
        assert predict(client, orl["s7"][9])["names"] == ["Ada"]
        assert predict(client, orl["s8"][9])["names"] == ["Bob"]
        enrolled = app_state(client.app).enrolled
        assert all(isinstance(s.index, IvfIndex) for s in enrolled._spaces.values())
        gone = client.delete(ada["status_url"], params={"token": ada["deletion_token"]})
        assert gone.status_code == 204
        assert "Ada" not in predict(client, orl["s7"][9])["names"]  # left the index at once
        assert predict(client, orl["s8"][9])["names"] == ["Bob"]
        assert bob["status"] == "enrolled"
