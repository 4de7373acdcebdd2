"""POST /api/predictions, feedback and deletion, on a real model (ORL faces, ``face``
backbone) and a real database (SQLite and PostgreSQL)."""

from __future__ import annotations

import base64
import hashlib
import io
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from sqlalchemy import func, select, text
from support.api import (
    PEOPLE,
    TestClient,
    api_settings,
    assert_error,
    client_for,
    encode,
    linked_home,
    objects,
)

from lookalike.api.state import app_state
from lookalike.config import Settings
from lookalike.db import PredictionRecord

Orl = dict[str, list[Path]]


def photo(path: Path, name: str | None = None) -> tuple[str, tuple[str, bytes, str]]:
    # The part's content type is deliberately wrong: decoding decides what the bytes are.
    return ("photo", (name or path.name, path.read_bytes(), "application/octet-stream"))


def rows(client: TestClient) -> list[PredictionRecord]:
    with app_state(client.app).sessions() as session:
        return list(session.scalars(select(PredictionRecord).order_by(PredictionRecord.created_at)))


def test_held_out_photo_is_named_with_every_probability(
    client: TestClient, settings: Settings, orl: Orl
) -> None:
    r = client.post("/api/predictions", files=[photo(orl["s3"][9])])
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["label"] == body["best_label"] == "s3"
    assert body["no_strong_match"] is False
    assert body["match_score"] >= body["threshold"]
    assert sorted(p["label"] for p in body["probabilities"]) == sorted(PEOPLE)
    assert sum(p["probability"] for p in body["probabilities"]) == pytest.approx(1, abs=1e-3)
    assert body["probabilities"][0]["label"] == "s3"
    assert body["faces_found"] == 1 and body["face_index"] == 0 and body["frames_used"] == 1
    assert body["model_version"] == "m0001"
    assert body["consent"] is False and body["deletion_token"] is None
    # Never a file path in the answer.
    assert str(settings.home) not in r.text and "path" not in body
    assert all("sha256" not in n for n in body["nearest"])

    assert body["nearest"][0]["label"] == "s3"
    for n in body["nearest"] + [{"url": body["class_image_url"]}]:
        assert n["url"].startswith("/api/images/")
        image = client.get(n["url"])
        assert image.status_code == 200
        assert image.headers["content-type"] == "image/png"  # ORL's PGM converted
        assert image.headers["x-content-type-options"] == "nosniff"
        assert image.headers["content-security-policy"] == "default-src 'none'"
        assert Image.open(io.BytesIO(image.content)).size == (92, 112)

    prefix = "data:image/jpeg;base64,"
    assert body["face_crop"].startswith(prefix)
    crop = Image.open(io.BytesIO(base64.b64decode(body["face_crop"][len(prefix) :])))
    assert crop.format == "JPEG" and 20 < crop.width <= 92 and 20 < crop.height <= 112

    # Logged in the same request; nothing of the image kept without consent.
    [row] = rows(client)
    assert row.id == body["id"] and row.label == "s3" and row.client == "api"
    assert row.storage_key is None and row.deletion_token_hash is None and not row.consent
    assert [p["label"] for p in row.probabilities] == [p["label"] for p in body["probabilities"]]
    assert objects(settings) == []


def test_webcam_burst_skips_the_frame_without_a_face(
    client: TestClient, orl: Orl, nonfaces: dict[str, np.ndarray]
) -> None:
    frames = [
        photo(orl["s4"][7], "frame-1.jpg"),
        ("photo", ("frame-2.jpg", encode(nonfaces["coffee"]), "image/jpeg")),
        photo(orl["s4"][8], "frame-3.jpg"),
    ]
    r = client.post("/api/predictions", files=frames, data={"client": "web"})
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["label"] == "s4"
    assert body["frames_used"] == 2
    assert [(f["index"], f["code"]) for f in body["skipped_frames"]] == [(1, "face.not_found")]
    assert body["frame_index"] == 0
    [row] = rows(client)
    assert row.frames_used == 2 and row.client == "web"
    # The faces shown come from the first frame that had one.
    faceless_first = [frames[1], frames[2]]
    r = client.post("/api/predictions", files=faceless_first)
    assert r.json()["frame_index"] == 1 and r.json()["faces_found"] == 1


def test_two_faces_then_pick_the_second(client: TestClient, two_faces_png: Path) -> None:
    first = client.post("/api/predictions", files=[photo(two_faces_png)])
    assert first.status_code == 201, first.text
    one = first.json()
    assert one["faces_found"] == 2 and len(one["faces"]) == 2 and one["face_index"] == 0
    second = client.post("/api/predictions", files=[photo(two_faces_png)], data={"face_index": "1"})
    assert second.status_code == 201, second.text
    two = second.json()
    assert two["face_index"] == 1 and two["face_box"] == two["faces"][1]["box"]
    assert {one["label"], two["label"]} == {"s1", "s2"}  # s1 left, s2 right
    assert one["face_crop"] != two["face_crop"]
    # Every face is numbered (largest first) and has its own thumbnail for the picker.
    assert [f["number"] for f in two["faces"]] == [1, 2]
    thumbs = [f["thumbnail"] for f in two["faces"]]
    assert all(t.startswith("data:image/jpeg;base64,") for t in thumbs) and thumbs[0] != thumbs[1]
    assert Image.open(io.BytesIO(base64.b64decode(thumbs[1].split(",", 1)[1]))).size[0] <= 96
    out_of_range = client.post(
        "/api/predictions", files=[photo(two_faces_png)], data={"face_index": "2"}
    )
    details = assert_error(out_of_range, 400, "face.index_out_of_range")
    assert details == {"face_index": 2, "faces_found": 2}
    assert len(rows(client)) == 2


def test_refusals_keep_nothing(
    trained: Path, tmp_path: Path, database_url: str, orl: Orl, nonfaces: dict[str, np.ndarray]
) -> None:
    settings = api_settings(
        linked_home(trained, tmp_path / "home"),
        database_url,
        max_photos_per_request=3,
        max_image_bytes=200_000,
        max_request_bytes=1_000_000,
    )
    face = orl["s2"][9]
    with client_for(settings) as client:
        post = client.post
        text_file = [("photo", ("notes.jpg", b"just some text, not a photo", "image/jpeg"))]
        details = assert_error(
            post("/api/predictions", files=text_file, data={"consent": "true"}),
            422,
            "image.not_an_image",
        )
        assert details["first_bytes"] == b"just som".hex()
        coffee = [("photo", ("coffee.jpg", encode(nonfaces["coffee"]), "image/png"))]
        assert assert_error(post("/api/predictions", files=coffee), 422, "face.not_found") == {
            "faces_found": 0,
            "answer": "cannot_judge",
        }
        assert_error(
            post("/api/predictions", files=[photo(face)] * 4), 413, "request.too_many_photos"
        )
        big = np.random.default_rng(0).integers(0, 255, (400, 400, 3), dtype=np.uint8)
        assert_error(
            post("/api/predictions", files=[("photo", ("big.png", encode(big, "PNG"), "x/y"))]),
            413,
            "image.too_many_bytes",
        )
        huge = b"x" * 1_000_001
        assert_error(
            post("/api/predictions", content=huge, headers={"content-type": "image/jpeg"}),
            413,
            "request.too_large",
        )
        assert_error(
            post("/api/predictions", data={"consent": "true"}, files=[("other", ("a", b"a"))]),
            422,
            "request.invalid",
        )
        details = assert_error(
            post("/api/predictions", files=[photo(face)], data={"face_index": "first"}),
            422,
            "request.invalid",
        )
        assert details["fields"][0]["field"] == "body.face_index"
        assert_error(
            post("/api/predictions", files=[photo(face)], data={"consent": "maybe"}),
            422,
            "request.invalid",
        )
        assert_error(
            post("/api/predictions", content=face.read_bytes(), headers={"content-type": "x/y"}),
            415,
            "request.unsupported_media_type",
        )
        # Only the photo without a face is logged (for the dashboard): no answer, no image.
        [no_face] = rows(client)
        assert (no_face.outcome, no_face.faces_found, no_face.best_label) == ("no_face", 0, None)
        assert no_face.storage_key is None and not no_face.consent
    assert objects(settings) == []


def test_feedback(client: TestClient, orl: Orl) -> None:
    answer = client.post("/api/predictions", files=[photo(orl["s5"][9])], data={"client": "web"})
    pid, token = answer.json()["id"], answer.json()["feedback_token"]
    # Only whoever got the answer can rate it: its feedback token is the proof.
    other = client.post("/api/predictions", files=[photo(orl["s4"][9])]).json()
    for proof in (None, "", other["feedback_token"], token[:-2] + "AA"):
        refused = client.post(
            f"/api/predictions/{pid}/feedback", json={"feedback": "like", "token": proof}
        )
        assert_error(refused, 403, "feedback.bad_token")
    liked = client.post(
        f"/api/predictions/{pid}/feedback", json={"feedback": "like", "token": token}
    )
    assert liked.status_code == 200, liked.text
    assert liked.json()["feedback"] == "like" and liked.json()["feedback_label"] is None
    corrected = client.post(
        f"/api/predictions/{pid}/feedback",
        json={"feedback": "dislike", "label": "s6", "token": token},
    )
    assert corrected.status_code == 200, corrected.text
    summary = corrected.json()
    assert summary["id"] == pid and summary["feedback"] == "dislike"
    assert summary["feedback_label"] == "s6" and summary["feedback_at"] is not None
    assert summary["photo_kept"] is False and summary["client"] == "web"
    row = next(r for r in rows(client) if r.id == pid)
    assert (row.feedback, row.feedback_label) == ("dislike", "s6")
    assert row.feedback_at is not None and row.feedback_at.tzinfo is not None

    details = assert_error(
        client.post(
            f"/api/predictions/{pid}/feedback",
            json={"feedback": "like", "label": "s99", "token": token},
        ),
        422,
        "feedback.unknown_label",
    )
    assert sorted(details["labels"]) == sorted(PEOPLE)
    assert_error(
        client.post(f"/api/predictions/{pid}/feedback", json={"feedback": "meh"}),
        422,
        "request.invalid",
    )
    assert_error(
        client.post("/api/predictions/0123abcd/feedback", json={"feedback": "like"}),
        404,
        "prediction.not_found",
    )
    assert_error(client.delete("/api/predictions/0123abcd?token=x"), 404, "prediction.not_found")


def test_consent_keeps_the_photo_until_deleted(
    client: TestClient, settings: Settings, orl: Orl, nonfaces: dict[str, np.ndarray]
) -> None:
    original = orl["s6"][9].read_bytes()
    r = client.post(
        "/api/predictions",
        files=[("photo", ("me.pgm", original, "image/jpeg"))],
        data={"consent": "true", "client": "web"},
    )
    assert r.status_code == 201, r.text
    body = r.json()
    token, pid = body["deletion_token"], body["id"]
    assert body["consent"] is True and isinstance(token, str) and len(token) >= 32
    key = f"consented/{pid}.pgm"
    assert objects(settings) == [key]
    assert app_state(client.app).store.get(key) == original
    [row] = rows(client)
    assert row.storage_key == key and row.consent
    assert row.deletion_token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert token not in repr(vars(row))  # only its hash is stored

    # A burst keeps the frame the face was found in (here the second), with its extension.
    jpeg = encode(np.asarray(Image.open(orl["s6"][8]).convert("RGB")))
    burst = [
        ("photo", ("a.png", encode(nonfaces["coffee"], "PNG"), "image/png")),
        ("photo", ("b.jpg", jpeg, "image/png")),
    ]
    second = client.post("/api/predictions", files=burst, data={"consent": "true"}).json()
    second_key = f"consented/{second['id']}.jpg"
    assert objects(settings) == sorted([key, second_key])
    assert app_state(client.app).store.get(second_key) == jpeg
    assert second["deletion_token"] != token

    assert_error(client.delete(f"/api/predictions/{pid}"), 403, "prediction.bad_token")
    assert_error(
        client.delete(f"/api/predictions/{pid}", params={"token": second["deletion_token"]}),
        403,
        "prediction.bad_token",
    )
    deleted = client.delete(f"/api/predictions/{pid}", headers={"X-Deletion-Token": token})
    assert deleted.status_code == 204 and deleted.content == b""
    assert objects(settings) == [f"consented/{second['id']}.jpg"]
    row = next(r for r in rows(client) if r.id == pid)
    assert row.storage_key is None and row.label == "s6"  # the answer itself is kept
    assert (row.consent, row.deletion_token_hash, row.feedback) == (False, None, None)
    again = client.delete(f"/api/predictions/{pid}", params={"token": token})
    assert_error(again, 404, "prediction.nothing_kept")
    # The token died with the photo: it proves nothing any more.
    feedback = client.post(
        f"/api/predictions/{pid}/feedback", json={"feedback": "like", "token": token}
    )
    assert_error(feedback, 403, "feedback.bad_token")


def test_failed_database_write_keeps_no_photo(
    trained: Path, tmp_path: Path, database_url: str, orl: Orl
) -> None:
    settings = api_settings(linked_home(trained, tmp_path / "home"), database_url)
    with client_for(settings, raise_errors=False) as client:
        with app_state(client.app).engine.begin() as connection:
            connection.execute(text("DROP TABLE predictions"))
        r = client.post("/api/predictions", files=[photo(orl["s1"][9])], data={"consent": "true"})
        assert_error(r, 500, "internal")
        assert "predictions" not in r.json()["error"]["message"]  # no internals leak
    assert objects(settings) == []


def test_without_a_model_the_service_still_runs(
    tmp_path: Path, database_url: str, orl: Orl
) -> None:
    settings = api_settings(tmp_path / "empty-home", database_url)
    with client_for(settings) as client:
        assert_error(
            client.post("/api/predictions", files=[photo(orl["s1"][9])]), 503, "model.none"
        )
        assert_error(client.get("/api/classes"), 503, "model.none")
        assert_error(client.get("/api/models/current"), 503, "model.none")
        assert_error(client.get(f"/api/images/{'a' * 64}"), 503, "model.none")
        health = client.get("/api/health")
        assert health.status_code == 200
        assert health.json() == {
            "status": "degraded",
            "model": None,
            "champion": None,
            "model_errors": {},
            "database": "ok",
        }
        assert client.get("/").status_code == 200
        with app_state(client.app).sessions() as session:
            assert session.scalar(select(func.count()).select_from(PredictionRecord)) == 0


def test_predictions_run_off_the_event_loop(client: TestClient, orl: Orl) -> None:
    """Concurrent requests are all answered and logged; a slow prediction does not hold up
    other requests (the engine runs in the threadpool, not on the event loop)."""
    predictor = app_state(client.app).predictor
    real = predictor.predict

    def slow(*args: Any, **kwargs: Any) -> Any:
        time.sleep(1.0)
        return real(*args, **kwargs)

    predictor.predict = slow
    people = ["s1", "s2", "s3"]
    with ThreadPoolExecutor(len(people) + 1) as pool:
        answers = [
            pool.submit(client.post, "/api/predictions", files=[photo(orl[p][9])]) for p in people
        ]
        time.sleep(0.3)
        started = time.perf_counter()
        assert client.get("/api/health").status_code == 200
        assert time.perf_counter() - started < 0.6
        labels = [f.result().json()["label"] for f in answers]
    assert labels == people
    assert sorted(str(r.label) for r in rows(client)) == people


def test_a_visit_answers_the_next_photo_with_the_earlier_ones(client: TestClient, orl: Orl) -> None:
    first = client.post("/api/predictions", files=[photo(orl["s30"][0])])
    assert first.status_code == 201, first.text
    one = first.json()
    assert one["answer"]["kind"] == "lookalike" and one["answer"]["looks"] == 1
    assert one["label"] is None and one["best_label"] == one["answer"]["names"][0]
    for x in one["answer"]["lookalikes"]:
        assert x["reference_url"].startswith("/api/images/") and 0 <= x["strength"] <= 1
        assert client.get(x["reference_url"]).status_code == 200
    second = client.post(
        "/api/predictions", files=[photo(orl["s30"][1])], data={"visit": one["visit"]}
    )
    assert second.status_code == 201, second.text
    two = second.json()
    assert two["answer"]["looks"] == 2 and two["visit"] != one["visit"]
    # A webcam burst is one look, whatever its frames.
    burst = client.post(
        "/api/predictions",
        files=[photo(orl["s30"][2]), photo(orl["s30"][3])],
        data={"visit": two["visit"]},
    )
    assert burst.json()["answer"]["looks"] == 3 and burst.json()["frames_used"] == 2
    # An altered or foreign token is refused before anything is analysed or logged.
    before = len(rows(client))
    for bad in (one["visit"][:-3] + "abc", "v1.x.y", "nonsense", "v1.x.é"):
        r = client.post("/api/predictions", files=[photo(orl["s30"][4])], data={"visit": bad})
        details = assert_error(r, 400, "visit.invalid")
        assert details == {"field": "visit"}
    assert len(rows(client)) == before


def test_a_face_too_poor_to_judge_is_refused_and_logged(settings: Settings, orl: Orl) -> None:
    strict = settings.model_copy(update={"judge_min_face_px": 400})
    with client_for(strict) as client:
        r = client.post("/api/predictions", files=[photo(orl["s3"][9])])
        details = assert_error(r, 422, "face.too_small")
        assert details["answer"] == "cannot_judge"
        assert details["quality"]["face_px"] < 400 and len(details["faces"]) == 1
        assert "Come closer" in r.json()["error"]["message"]
        logged = rows(client)
        assert [row.outcome for row in logged] == ["no_face"] and logged[0].label is None
