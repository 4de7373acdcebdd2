"""The public page in a real browser (Debian's Chromium via Playwright) against the real app.

One server per module (``conftest.py``): a small face model trained on 8 ORL people, the
FastAPI app served by uvicorn in a thread, SQLite in the data dir. The webcam is Chromium's fake
camera playing a face video. Every test leaves a screenshot in ``tests/artifacts/``.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect
from support.browser import (
    HELD_OUT,
    PEOPLE,
    PostBodies,
    chromium_args,
    form_fields,
    get_json,
    is_prediction_post,
    launched_chromium,
    png_bytes,
    upload,
    wait_images_loaded,
)
from support.browser import phone_page as phone_context
from support.media import video_to_y4m

from lookalike.config import Settings

pytestmark = pytest.mark.browser

Orl = dict[str, list[Path]]


# --- fixtures ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def class_count(server: str) -> int:
    return int(get_json(server + "/api/classes")["count"])


@pytest.fixture(scope="module")
def y4m(tmp_path_factory: pytest.TempPathFactory, pyfeat: dict[str, Path]) -> Path:
    return video_to_y4m(pyfeat["single_face.mp4"], tmp_path_factory.mktemp("webcam") / "face.y4m")


@pytest.fixture(scope="module")
def browser(y4m: Path) -> Iterator[Any]:
    with launched_chromium(chromium_args(y4m)) as browser:
        yield browser


@pytest.fixture
def page_options() -> dict[str, Any]:
    return {"permissions": ["camera"], "viewport": {"width": 1280, "height": 900}}


@pytest.fixture
def phone_page(browser: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    yield from phone_context(browser, request.node.name, permissions=["camera"])


# --- helpers ----------------------------------------------------------------------------------


def drop(page: Any, name: str, data: bytes, mime: str = "image/png") -> Any:
    """Drop a file on ``#drop-zone``; returns the ``POST /api/predictions`` response."""
    transfer = page.evaluate_handle(
        """([name, b64, mime]) => {
            const bytes = Uint8Array.from(atob(b64), c => c.charCodeAt(0));
            const transfer = new DataTransfer();
            transfer.items.add(new File([bytes], name, {type: mime}));
            return transfer;
        }""",
        [name, base64.b64encode(data).decode("ascii"), mime],
    )
    page.dispatch_event("#drop-zone", "dragenter", {"dataTransfer": transfer})
    page.dispatch_event("#drop-zone", "dragover", {"dataTransfer": transfer})
    expect(page.locator("#drop-zone")).to_have_class(re.compile(r"\bis-over\b"))
    with page.expect_response(is_prediction_post) as info:
        page.dispatch_event("#drop-zone", "drop", {"dataTransfer": transfer})
    return info.value


def held_out(orl: Orl, person: str) -> bytes:
    return png_bytes(orl[person][HELD_OUT])


def db_prediction(settings: Settings, prediction_id: str) -> Any:
    from lookalike.db import PredictionRecord, make_engine, session_factory

    engine = make_engine(settings.effective_database_url)
    try:
        with session_factory(engine)() as session:
            row = session.get(PredictionRecord, prediction_id)
            assert row is not None, f"prediction {prediction_id} is not in the database"
            session.expunge(row)
            return row
    finally:
        engine.dispose()


# --- tests ------------------------------------------------------------------------------------


def headline_for(answer: dict[str, Any]) -> str:
    """The headline the page shows for a 201 answer's ``answer`` object."""
    names = answer["names"]
    if answer["kind"] == "same_person":
        return f"This is {names[0]}"
    if answer["tie"]:
        return f"Between {names[0]} and {names[1]}"
    return f"You look like {names[0]}"


def test_webcam_burst(page: Any, server: str, class_count: int) -> None:
    posts = PostBodies(page)
    page.goto(server)
    expect(page.locator("#webcam-capture")).to_be_disabled()
    page.click("#webcam-start")
    camera_playing = """() => {
        const v = document.getElementById('video');
        return v.readyState >= 2 && !v.paused && v.videoWidth > 0;
    }"""
    page.wait_for_function(camera_playing)
    expect(page.locator("#webcam-capture")).to_be_enabled()
    with page.expect_response(is_prediction_post, timeout=30_000) as info:
        page.click("#webcam-capture")
    response = info.value
    fields = posts.last()
    assert len(fields["photo"]) == 5
    assert all(p.startswith(b"\xff\xd8\xff") for p in fields["photo"])  # JPEG frames
    assert fields["client"] == [b"web"]
    assert fields["consent"] == [b"false"]
    assert "face_index" not in fields and "visit" not in fields
    assert response.status == 201, response.text()
    answer = response.json()
    assert answer["frames_used"] >= 1

    expect(page.locator("#result")).to_be_visible()
    expect(page.locator("#error")).to_be_hidden()
    expect(page.locator("#answer-headline")).to_have_text(headline_for(answer["answer"]))
    expect(page.locator("#probabilities .prob-row")).to_have_count(class_count)
    wait_images_loaded(page, "#lookalikes img.visitor-face")
    # the controls (and the camera) are put away while the answer is shown
    expect(page.locator("#input-card")).to_be_hidden()
    assert page.evaluate("() => document.getElementById('video').srcObject") is None

    # another burst of the same visitor: the camera comes back, the visit goes along
    page.click("#add-photo")
    expect(page.locator("#input-title")).to_have_text("Add another photo of you")
    page.wait_for_function(camera_playing)
    with page.expect_response(is_prediction_post, timeout=30_000) as info:
        page.click("#webcam-capture")
    assert info.value.status == 201, info.value.text()
    fields = posts.last()
    assert len(fields["photo"]) == 5
    assert fields["visit"] == [answer["visit"].encode()]
    assert info.value.json()["answer"]["looks"] == 2
    expect(page.locator("#looks-badge")).to_have_text("from 2 photos")


def test_upload_known_person(page: Any, server: str, orl: Orl, class_count: int) -> None:
    posts = PostBodies(page)
    page.goto(server)
    response = upload(page, "visitor.png", held_out(orl, "s3"))
    assert response.status == 201, response.text()
    fields = posts.last()
    assert len(fields["photo"]) == 1 and fields["client"] == [b"web"]
    answer = response.json()["answer"]
    assert answer["kind"] == "same_person"

    expect(page.locator("#result")).to_be_visible()
    expect(page.locator("#answer-headline")).to_have_text("This is s3")
    first = page.locator("#lookalikes li").first
    expect(first).to_have_attribute("data-label", "s3")
    expect(first).to_have_class(re.compile(r"\bis-named\b"))
    expect(first.locator(".strength")).to_contain_text("Same person")
    expect(page.locator("#lookalikes li")).to_have_count(len(answer["lookalikes"]))
    wait_images_loaded(page, "#lookalikes img")

    # every class's probability: there, but folded away
    rows = page.locator("#probabilities .prob-row")
    expect(rows).to_have_count(class_count)
    expect(rows.first).to_be_hidden()
    page.click("#all-classes summary")
    expect(rows.first).to_be_visible()
    labels = rows.evaluate_all("rows => rows.map(r => r.dataset.label)")
    assert sorted(labels) == sorted(PEOPLE) and labels[0] == "s3"
    widths = page.eval_on_selector_all(
        "#probabilities .prob-bar", "bars => bars.map(b => parseFloat(b.style.width))"
    )
    assert widths == sorted(widths, reverse=True) and widths[0] > 50
    assert abs(sum(widths) - 100) < 1.5
    expect(rows.first.locator(".prob-value")).to_have_text(re.compile(r"^\d+\.\d%$"))

    expect(page.locator("#face-picker-box")).to_be_hidden()
    expect(page.locator("#deletion")).to_be_hidden()
    expect(page.locator("#like")).to_be_visible()


def test_face_picker(page: Any, server: str, two_faces_png: Path) -> None:
    posts = PostBodies(page)
    page.goto(server)
    first = upload(page, "two.png", two_faces_png.read_bytes())
    assert first.status == 201, first.text()
    assert first.json()["faces_found"] == 2
    buttons = page.locator("#face-picker button[data-face-index]")
    expect(buttons).to_have_count(2)
    expect(buttons.nth(0)).to_have_text("1")
    expect(buttons.nth(0)).to_have_accessible_name(re.compile(r"^Face 1"))
    chosen = first.json()["face_index"]
    expect(buttons.nth(chosen)).to_have_attribute("aria-pressed", "true")
    headline = page.locator("#answer-headline")
    expect(headline).to_have_text(headline_for(first.json()["answer"]))
    name_before = headline.inner_text()

    other = 1 - chosen
    with page.expect_response(is_prediction_post) as info:
        buttons.nth(other).click()
    second = info.value
    assert second.status == 201, second.text()
    assert posts.last()["face_index"] == [str(other).encode()]
    assert form_fields(posts.bodies[0])["photo"] == posts.last()["photo"]  # same photo again
    assert second.json()["face_index"] == other
    expect(buttons.nth(other)).to_have_attribute("aria-pressed", "true")
    expect(buttons.nth(chosen)).to_have_attribute("aria-pressed", "false")
    expect(headline).to_have_text(headline_for(second.json()["answer"]))
    assert headline.inner_text() != name_before


def test_not_an_image(page: Any, server: str, orl: Orl, trained: Settings) -> None:
    page.goto(server)
    assert drop(page, "visitor.png", held_out(orl, "s2")).status == 201
    expect(page.locator("#result")).to_be_visible()
    expect(page.locator("#answer-headline")).to_have_text("This is s2")

    page.click("#try-another")
    expect(page.locator("#input-card")).to_be_visible()
    response = upload(page, "photo.jpg", b"hello, I am a text file\n" * 10, "image/jpeg")
    assert response.status == 422
    message = response.json()["error"]["message"]
    error = page.locator("#error")
    expect(error).to_be_visible()
    expect(error).to_have_text(message)
    expect(error).to_contain_text(re.compile("not an image", re.IGNORECASE))
    expect(page.locator("#result")).to_be_hidden()
    expect(page.locator("#cannot")).to_be_hidden()  # not a face problem: a bad file
    expect(page.locator("#input-card")).to_be_visible()

    # too large: refused in the page, before sending anything
    sent: list[str] = []
    page.on("request", lambda r: sent.append(r.url) if r.method == "POST" else None)
    huge = page.evaluate_handle(  # made in the page: sending 15 MB over CDP takes seconds
        """size => {
            const transfer = new DataTransfer();
            transfer.items.add(new File([new Uint8Array(size)], "huge.jpg", {type: "image/jpeg"}));
            return transfer;
        }""",
        trained.max_image_bytes + 1,
    )
    page.dispatch_event("#drop-zone", "drop", {"dataTransfer": huge})
    expect(error).to_contain_text("at most 15.0 MB")
    assert sent == []


def test_like(page: Any, server: str, orl: Orl, trained: Settings) -> None:
    page.goto(server)
    response = upload(page, "visitor.png", held_out(orl, "s5"))
    prediction_id, token = response.json()["id"], response.json()["feedback_token"]
    with page.expect_response(lambda r: r.url.endswith(f"/{prediction_id}/feedback")) as info:
        page.click("#like")
    assert info.value.status == 200, info.value.text()
    assert info.value.request.post_data_json == {"feedback": "like", "token": token}
    expect(page.locator("#feedback-status")).to_contain_text("Thanks")
    expect(page.locator("#like")).to_have_attribute("aria-pressed", "true")

    row = db_prediction(trained, prediction_id)
    assert row.feedback == "like"
    assert row.client == "web" and row.consent is False and row.storage_key is None

    # changing one's mind: dislike, then name who it should have been
    page.click("#dislike")
    expect(page.locator("#correction")).to_be_visible()
    page.select_option("#correction-label", "s1")
    with page.expect_response(lambda r: r.url.endswith(f"/{prediction_id}/feedback")) as info:
        page.click("#send-correction")
    assert info.value.request.post_data_json == {
        "feedback": "dislike",
        "label": "s1",
        "token": token,
    }
    expect(page.locator("#feedback-status")).to_contain_text("s1")
    row = db_prediction(trained, prediction_id)
    assert (row.feedback, row.feedback_label) == ("dislike", "s1")


def test_consent_and_delete(page: Any, server: str, orl: Orl, trained: Settings) -> None:
    from lookalike.storage import ObjectStore

    posts = PostBodies(page)
    page.goto(server)
    consent = page.locator("#consent")
    expect(consent).not_to_be_checked()
    consent.check()
    response = upload(page, "visitor.png", held_out(orl, "s6"))
    assert response.status == 201, response.text()
    assert posts.last()["consent"] == [b"true"]
    answer = response.json()
    token = answer["deletion_token"]
    assert token
    expect(page.locator("#deletion-token")).to_have_text(answer["deletion_code"])
    assert answer["deletion_code"] == f"p.{answer['id']}.{token}"
    expect(page.locator("#delete-photo")).to_be_visible()

    row = db_prediction(trained, answer["id"])
    assert row.consent is True and row.storage_key
    store = ObjectStore(trained)
    assert store.exists(row.storage_key)

    is_delete: Callable[[Any], bool] = lambda r: r.request.method == "DELETE"  # noqa: E731
    with page.expect_response(is_delete) as info:
        page.click("#delete-photo")
    assert info.value.status == 204, info.value.text()
    assert info.value.request.headers["x-deletion-token"] == token
    expect(page.locator("#deletion-status")).to_contain_text("deleted")
    expect(page.locator("#delete-photo")).to_be_hidden()
    assert db_prediction(trained, answer["id"]).storage_key is None
    assert not store.exists(row.storage_key)


def test_phone_width(phone_page: Any, server: str, orl: Orl) -> None:
    page = phone_page
    page.goto(server)
    no_scroll = "() => document.scrollingElement.scrollWidth"
    assert page.evaluate(no_scroll) <= 375
    assert upload(page, "visitor.png", held_out(orl, "s4")).status == 201
    expect(page.locator("#answer-headline")).to_have_text("This is s4")
    wait_images_loaded(page, "#lookalikes img")
    assert page.evaluate(no_scroll) <= 375
    # every control has an accessible name
    for selector in (
        "#file-input",
        "#consent",
        "#webcam-start",
        "#like",
        "#dislike",
        "#try-another",
        "#add-photo",
        "#save-result",
    ):
        name = page.locator(selector).evaluate(
            "e => (e.labels && e.labels.length ? e.labels[0].textContent : e.textContent).trim()"
        )
        assert name, selector
