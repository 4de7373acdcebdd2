"""The public page's answers over a visit, in a real browser (Chromium via Playwright).

A visit of several photos ("Add another photo", "Start over", a refused visit token starting
afresh) and "Can't judge this photo" (why, how to retake it, the visit kept meanwhile).

The server and the strangers' answers come from ``conftest.py``, as for
``test_browser_answer`` (a server of this module's own); screenshots go to ``tests/artifacts/``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from playwright.sync_api import expect
from support.browser import (
    ARTIFACTS,
    HELD_OUT,
    PostBodies,
    form_fields,
    is_prediction_post,
    photo,
    png,
    stranger,
    upload,
    wait_images_loaded,
)

pytestmark = pytest.mark.browser

Orl = dict[str, list[Path]]


# --- helpers ----------------------------------------------------------------------------------


def small_face(orl: Orl) -> bytes:
    """An ORL face shrunk to about 14 px wide on a 200x200 grey photo: too small to judge."""
    with Image.open(orl["s3"][HELD_OUT]) as face:
        shrunk = face.convert("RGB").resize((18, 22))
    canvas = Image.new("RGB", (200, 200), (160, 160, 160))
    canvas.paste(shrunk, (90, 80))
    return png(canvas)


# --- tests ------------------------------------------------------------------------------------


def test_add_another_photo_then_start_over(
    page: Any, server: str, orl: Orl, stranger_answers: dict[str, dict[str, Any]]
) -> None:
    posts = PostBodies(page)
    person = stranger(stranger_answers, tie=False)
    page.goto(server)
    first = upload(page, "one.png", photo(orl, person, 0)).json()
    assert "visit" not in posts.last()
    expect(page.locator("#looks-badge")).to_be_hidden()
    expect(page.locator("#start-over")).to_be_hidden()

    page.click("#add-photo")
    expect(page.locator("#input-card")).to_be_visible()
    expect(page.locator("#result")).to_be_hidden()
    expect(page.locator("#input-title")).to_have_text("Add another photo of you")
    expect(page.locator("#add-note")).to_contain_text("1 earlier photo")
    second = upload(page, "two.png", photo(orl, person, 1))
    assert second.status == 201, second.text()
    assert posts.last()["visit"] == [first["visit"].encode()]
    assert second.json()["answer"]["looks"] == 2
    expect(page.locator("#looks-badge")).to_be_visible()
    expect(page.locator("#looks-badge")).to_have_text("from 2 photos")

    # "Back to my result" leaves the visit as it was
    page.click("#add-photo")
    page.click("#back-to-result")
    expect(page.locator("#looks-badge")).to_have_text("from 2 photos")

    # the token lives in a variable only
    stored = page.evaluate(
        "() => JSON.stringify({...localStorage}) + JSON.stringify({...sessionStorage})"
        " + document.cookie"
    )
    assert first["visit"] not in stored and second.json()["visit"] not in stored

    page.click("#start-over")
    expect(page.locator("#input-card")).to_be_visible()
    expect(page.locator("#input-title")).to_have_text("Your photo")
    expect(page.locator("#add-note")).to_be_hidden()
    third = upload(page, "three.png", photo(orl, person, 2))
    assert "visit" not in posts.last()
    assert third.json()["answer"]["looks"] == 1
    expect(page.locator("#looks-badge")).to_be_hidden()


def test_a_refused_visit_starts_afresh(page: Any, server: str, orl: Orl) -> None:
    page.goto(server)
    first = upload(page, "one.png", photo(orl, "s20", 0)).json()
    token = first["visit"].encode()
    bodies: list[bytes] = []

    def tamper(route: Any, request: Any) -> None:  # the visit comes back altered
        body = request.post_data_buffer or b""
        if request.method == "POST" and token in body:
            body = body.replace(token, token[:-4] + (b"AAAA" if token[-4:] != b"AAAA" else b"BBBB"))
        bodies.append(body)
        route.continue_(post_data=body)

    page.route("**/api/predictions", tamper)
    page.click("#add-photo")
    refused: list[int] = []
    page.on("response", lambda r: refused.append(r.status) if is_prediction_post(r) else None)
    with page.expect_response(lambda r: is_prediction_post(r) and r.status == 201) as info:
        page.set_input_files(
            "#file-input",
            files=[{"name": "two.png", "mimeType": "image/png", "buffer": photo(orl, "s20", 1)}],
        )
    assert refused[0] == 400  # visit.invalid
    sent = [form_fields(b) for b in bodies]
    assert len(sent) == 2 and "visit" in sent[0] and "visit" not in sent[1]
    assert sent[0]["photo"] == sent[1]["photo"]
    assert info.value.json()["answer"]["looks"] == 1
    expect(page.locator("#result")).to_be_visible()
    expect(page.locator("#error")).to_be_hidden()
    expect(page.locator("#looks-badge")).to_be_hidden()
    expect(page.locator("#result-meta")).to_contain_text("this photo alone")


def test_cannot_judge(page: Any, server: str, orl: Orl) -> None:
    page.goto(server)
    blank = png(Image.new("RGB", (200, 200), (128, 128, 128)))
    response = upload(page, "blank.png", blank)
    assert response.status == 422
    error = response.json()["error"]
    assert error["code"] == "face.not_found" and error["details"]["answer"] == "cannot_judge"
    card = page.locator("#cannot")
    expect(card).to_be_visible()
    expect(page.locator("#cannot-title")).to_have_text("Can't judge this photo")
    expect(page.locator("#cannot-message")).to_have_text(error["message"])
    expect(page.locator("#result")).to_be_hidden()
    expect(page.locator("#like")).to_be_hidden()
    expect(page.locator("#dislike")).to_be_hidden()
    expect(page.locator("#error")).to_be_hidden()
    expect(page.locator("#cannot-back")).to_be_hidden()  # there is no earlier answer

    # a face that is there but too small: why, how to retake, and where it was found
    page.click("#cannot-retry")
    expect(page.locator("#input-card")).to_be_visible()
    response = upload(page, "small.png", small_face(orl))
    assert response.status == 422
    error = response.json()["error"]
    assert error["code"] == "face.too_small", error
    expect(page.locator("#cannot-message")).to_have_text(error["message"])
    expect(page.locator("#cannot-message")).to_contain_text("too small")
    expect(page.locator("#cannot-message")).to_contain_text("Come closer")
    wait_images_loaded(page, "#cannot-photo")
    expect(page.locator("#cannot-boxes .face-box.is-judged")).to_have_count(1)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "cannot_judge_too_small.png"), full_page=True)
    expect(page.locator("#like")).to_be_hidden()

    # a photo that can be judged brings the like / dislike buttons back
    page.click("#cannot-retry")
    assert upload(page, "ok.png", photo(orl, "s3", HELD_OUT)).status == 201
    expect(page.locator("#cannot")).to_be_hidden()
    expect(page.locator("#like")).to_be_visible()
    expect(page.locator("#dislike")).to_be_visible()


def test_cannot_judge_an_added_photo_keeps_the_visit(page: Any, server: str, orl: Orl) -> None:
    posts = PostBodies(page)
    page.goto(server)
    first = upload(page, "one.png", photo(orl, "s20", 0)).json()
    page.click("#add-photo")
    assert upload(page, "blank.png", png(Image.new("RGB", (200, 200), "grey"))).status == 422
    expect(page.locator("#cannot")).to_be_visible()
    expect(page.locator("#cannot-back")).to_be_visible()
    page.click("#cannot-retry")
    expect(page.locator("#input-title")).to_have_text("Add another photo of you")
    second = upload(page, "two.png", photo(orl, "s20", 1))
    assert posts.last()["visit"] == [first["visit"].encode()]
    assert second.json()["answer"]["looks"] == 2
