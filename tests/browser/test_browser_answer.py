"""The public page's answer card in a real browser (Debian's Chromium via Playwright).

"This is X" for a gallery person, "You look like X" / "Between X and Y" with strengths and
reference photos for a stranger; the face picker, "Save my result" and the phone layout.
(A visit of several photos and "Can't judge this photo": ``test_browser_visit``.)

One server per module: the 8-person ORL model of ``support.browser.build_home`` (s1-s8; every
other ORL person is a stranger to it), served by uvicorn in a thread (``conftest.py``). Every
test leaves a screenshot in ``tests/artifacts/``.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from playwright.sync_api import expect
from support.browser import (
    ARTIFACTS,
    HELD_OUT,
    PEOPLE,
    PHONE,
    PostBodies,
    form_fields,
    is_prediction_post,
    photo,
    png,
    stranger,
    upload,
    wait_images_loaded,
)
from support.browser import phone_page as phone_context
from support.media import two_face_image

pytestmark = pytest.mark.browser

Orl = dict[str, list[Path]]


# --- fixtures ---------------------------------------------------------------------------------


@pytest.fixture
def phone_page(browser: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    yield from phone_context(browser, request.node.name)


# --- helpers ----------------------------------------------------------------------------------


def shown_lookalikes(page: Any) -> list[dict[str, Any]]:
    """What each lookalike row shows: label, strength text, meter width, images."""
    return page.eval_on_selector_all(
        "#lookalikes > li",
        """items => items.map(li => ({
            label: li.dataset.label,
            named: li.classList.contains('is-named'),
            strength: li.querySelector('.strength').textContent,
            meter: parseFloat(li.querySelector('.meter-fill').style.width),
            you: li.querySelector('img.visitor-face')?.naturalWidth || 0,
            reference: li.querySelector('img.reference')?.getAttribute('src') || null,
            referenceWidth: li.querySelector('img.reference')?.naturalWidth || 0,
        }))""",
    )


def page_bottom(page: Any, selector: str) -> float:
    """Bottom of ``selector`` in page coordinates (CSS px from the top of the page)."""
    return page.locator(selector).evaluate("e => e.getBoundingClientRect().bottom + window.scrollY")


# --- tests ------------------------------------------------------------------------------------


def test_stranger_gets_lookalikes(
    page: Any, server: str, orl: Orl, stranger_answers: dict[str, dict[str, Any]]
) -> None:
    person = stranger(stranger_answers, tie=False)
    page.goto(server)
    response = upload(page, "stranger.png", photo(orl, person))
    assert response.status == 201, response.text()
    answer = response.json()["answer"]
    assert answer["kind"] == "lookalike" and not answer["tie"]
    top = answer["lookalikes"][0]
    assert answer["names"] == [top["label"]] and top["label"] in PEOPLE

    expect(page.locator("#answer-headline")).to_have_text(f"You look like {top['label']}")
    expect(page.locator("#answer-kind")).to_have_text(re.compile("lookalike", re.IGNORECASE))
    # the top row says how strong (the line under the headline would only repeat it)
    expect(page.locator("#answer-detail")).to_have_text("")
    expect(page.locator("#answer")).to_have_attribute("aria-live", "polite")

    wait_images_loaded(page, "#lookalikes img")
    rows = shown_lookalikes(page)
    assert [r["label"] for r in rows] == [x["label"] for x in answer["lookalikes"]]
    assert len(rows) == 3
    assert [r["named"] for r in rows] == [True, False, False]
    for row, item in zip(rows, answer["lookalikes"], strict=True):
        assert row["reference"] == item["reference_url"]
        assert row["referenceWidth"] > 0 and row["you"] > 0  # both photos really loaded
        assert row["strength"].startswith(item["strength_words"].capitalize() + " resemblance")
        pct = round(item["strength"] * 100)
        if 0 < pct < 100:
            assert f"stronger than {pct}% of people's best match here" in row["strength"]
        assert row["meter"] == pytest.approx(max(2, pct), abs=0.5)
    assert rows[0]["meter"] >= rows[1]["meter"] >= rows[2]["meter"]
    expect(page.locator("#lookalikes img.reference").first).to_have_attribute(
        "alt", f"Photo of {top['label']}"
    )

    # no verdict of "no match", and no probability bars up front
    body = page.locator("body").inner_text()
    assert "no strong match" not in body.lower()
    expect(page.locator("#probabilities")).to_be_hidden()
    expect(page.locator("#all-classes")).not_to_have_attribute("open", "")
    expect(page.locator("#like")).to_be_visible()
    expect(page.locator("#face-picker-box")).to_be_hidden()


def test_tie_names_two(
    page: Any, server: str, orl: Orl, stranger_answers: dict[str, dict[str, Any]]
) -> None:
    person = stranger(stranger_answers, tie=True)
    page.goto(server)
    answer = upload(page, "stranger.png", photo(orl, person)).json()["answer"]
    first, second = answer["names"]
    expect(page.locator("#answer-headline")).to_have_text(f"Between {first} and {second}")
    expect(page.locator("#answer-detail")).to_contain_text("about equally")
    named = page.locator("#lookalikes > li.is-named")
    expect(named).to_have_count(2)
    assert named.evaluate_all("ls => ls.map(l => l.dataset.label)") == [first, second]


def test_gallery_person_is_named(page: Any, server: str, orl: Orl) -> None:
    page.goto(server)
    response = upload(page, "visitor.png", photo(orl, "s6", HELD_OUT))
    assert response.status == 201, response.text()
    assert response.json()["answer"]["kind"] == "same_person"
    expect(page.locator("#answer-headline")).to_have_text("This is s6")
    expect(page.locator("#answer-kind")).to_have_text("Recognised")
    first = page.locator("#lookalikes > li").first
    expect(first).to_have_attribute("data-label", "s6")
    expect(first.locator(".strength")).to_have_text(re.compile("^Same person"))
    expect(page.locator("#lookalikes > li.is-named")).to_have_count(1)
    wait_images_loaded(page, "#lookalikes img")
    expect(page.locator("#feedback-question")).to_have_text("Did we get it right?")


def test_pick_the_other_face_on_the_photo(page: Any, server: str, orl: Orl) -> None:
    posts = PostBodies(page)
    page.goto(server)
    two = png(Image.fromarray(two_face_image(orl["s1"][HELD_OUT], orl["s2"][HELD_OUT])))
    first = upload(page, "two.png", two)
    assert first.status == 201, first.text()
    answer = first.json()
    assert [f["number"] for f in answer["faces"]] == [1, 2] and answer["face_index"] == 0

    thumbs = page.locator("#face-picker .face-thumb")
    expect(thumbs).to_have_count(2)
    expect(thumbs.nth(0)).to_have_text("1")
    expect(thumbs.nth(1)).to_have_text("2")
    wait_images_loaded(page, "#face-picker .face-thumb img")
    expect(thumbs.nth(0)).to_have_attribute("aria-pressed", "true")
    expect(thumbs.nth(1)).to_have_attribute("aria-pressed", "false")

    # numbered boxes drawn on the photo, where the faces are
    wait_images_loaded(page, "#photo-preview")
    boxes = page.locator("#face-boxes .face-box")
    expect(boxes).to_have_count(2)
    expect(page.locator("#face-boxes")).to_be_visible()
    preview = page.locator("#photo-preview").bounding_box()
    scale = preview["width"] / 328  # two_face_image of two 92 px photos: 328 px wide
    for box, face in zip((boxes.nth(0), boxes.nth(1)), answer["faces"], strict=True):
        drawn = box.bounding_box()
        x, y, w, h = face["box"]
        assert drawn["x"] - preview["x"] == pytest.approx(x * scale, abs=3)
        assert drawn["y"] - preview["y"] == pytest.approx(y * scale, abs=3)
        assert drawn["width"] == pytest.approx(w * scale, abs=3)
        assert drawn["height"] == pytest.approx(h * scale, abs=3)
    expect(boxes.nth(1)).to_have_text("2")
    headline = page.locator("#answer-headline")
    expect(headline).to_have_text(f"This is {answer['answer']['names'][0]}")

    with page.expect_response(is_prediction_post) as info:
        boxes.nth(1).click()
    second = info.value
    assert second.status == 201, second.text()
    sent = posts.last()
    assert sent["face_index"] == [b"1"]
    assert sent["photo"] == form_fields(posts.bodies[0])["photo"]  # the same photo again
    assert "visit" not in sent  # the first answer's visit is not this photo's past
    assert second.json()["face_index"] == 1
    assert second.json()["answer"]["looks"] == 1
    expect(thumbs.nth(1)).to_have_attribute("aria-pressed", "true")
    expect(thumbs.nth(0)).to_have_attribute("aria-pressed", "false")
    expect(boxes.nth(1)).to_have_attribute("aria-pressed", "true")
    expect(headline).to_have_text(f"This is {second.json()['answer']['names'][0]}")
    assert headline.inner_text() != f"This is {answer['answer']['names'][0]}"
    # the visitor's face shown is now the second one
    crop = page.locator("#lookalikes img.visitor-face").first.get_attribute("src")
    assert crop == second.json()["face_crop"] != answer["face_crop"]


def cover(image: Image.Image, size: int) -> Image.Image:
    """``image`` scaled to cover a ``size`` square, centre-cropped (as the page draws it)."""
    scale = max(size / image.width, size / image.height)
    w, h = round(image.width * scale), round(image.height * scale)
    left, top = (w - size) // 2, (h - size) // 2
    return image.resize((w, h)).crop((left, top, left + size, top + size))


def test_save_my_result(page: Any, server: str, orl: Orl, tmp_path: Path) -> None:
    import base64
    import urllib.request

    from PIL import ImageChops, ImageStat

    page.goto(server)
    answer = upload(page, "visitor.png", photo(orl, "s20")).json()
    wait_images_loaded(page, "#lookalikes img")
    with page.expect_download() as info:
        page.click("#save-result")
    download = info.value
    assert download.suggested_filename == "lookalike-result.png"
    assert download.url.startswith("blob:")
    path = tmp_path / "card.png"
    download.save_as(path)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    download.save_as(ARTIFACTS / "saved_result_card.png")

    crop_bytes = base64.b64decode(answer["face_crop"].split(",", 1)[1])
    reference_url = server + answer["answer"]["lookalikes"][0]["reference_url"]
    with urllib.request.urlopen(reference_url, timeout=10) as response:
        reference_bytes = response.read()
    with Image.open(path) as card:
        assert card.format == "PNG"
        assert card.size == (1200, 630)
        drawn = card.convert("L")
    # the visitor's face and the top lookalike's reference photo, side by side
    inner = (20, 20, 230, 230)  # away from the rounded corners
    for left, source in ((80, crop_bytes), (354, reference_bytes)):
        with Image.open(io.BytesIO(source)) as img:
            expected = cover(img.convert("L"), 250).crop(inner)
        square = drawn.crop((left, 150, left + 250, 400)).crop(inner)
        diff = ImageStat.Stat(ImageChops.difference(square, expected)).mean[0]
        assert diff < 12, f"the photo at x={left} is not the expected one (mean diff {diff:.1f})"
    # the answer is written on the right
    text = drawn.crop((680, 150, 1120, 450))
    assert len(text.getcolors(1 << 16) or ()) > 2
    expect(page.locator("#save-status")).to_contain_text("lookalike-result.png")


def test_phone_layout(
    phone_page: Any, server: str, orl: Orl, stranger_answers: dict[str, dict[str, Any]]
) -> None:
    page = phone_page
    page.goto(server)
    width = "() => document.scrollingElement.scrollWidth"
    assert page.evaluate(width) <= PHONE["width"]
    person = stranger(stranger_answers, tie=False)
    assert upload(page, "stranger.png", photo(orl, person)).status == 201
    wait_images_loaded(page, "#lookalikes img")
    expect(page.locator("#lookalikes > li")).to_have_count(3)
    assert page.evaluate(width) <= PHONE["width"]
    # the answer on the first screen, the top lookalikes within the first two
    assert page_bottom(page, "#answer-headline") <= PHONE["height"]
    bottom = page_bottom(page, "#lookalikes")
    assert bottom <= 2 * PHONE["height"], f"the top lookalikes end at {bottom} px"
    # the way to another photo is on the first screen too
    assert page_bottom(page, "#try-another") <= PHONE["height"]
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.evaluate("() => window.scrollTo(0, 0)")
    page.screenshot(path=str(ARTIFACTS / "phone_answer_screen1.png"))
    page.evaluate(f"() => window.scrollTo(0, {PHONE['height']})")
    page.screenshot(path=str(ARTIFACTS / "phone_answer_screen2.png"))
    page.screenshot(path=str(ARTIFACTS / "phone_answer_full.png"), full_page=True)

    # the same in the dark
    page.emulate_media(color_scheme="dark")
    page.evaluate("() => window.scrollTo(0, 0)")
    page.screenshot(path=str(ARTIFACTS / "phone_answer_dark.png"))
    page.emulate_media(color_scheme="light")

    # a tie shows two lookalikes in full: still within two screens
    page.click("#try-another")
    assert upload(page, "tie.png", photo(orl, stranger(stranger_answers, tie=True))).status == 201
    expect(page.locator("#lookalikes > li.is-named")).to_have_count(2)
    wait_images_loaded(page, "#lookalikes img")
    bottom = page_bottom(page, "#lookalikes")
    assert bottom <= 2 * PHONE["height"], f"the tied lookalikes end at {bottom} px"
    page.screenshot(path=str(ARTIFACTS / "phone_tie_full.png"), full_page=True)

    # two faces: the picker fits the width as well
    two = png(Image.fromarray(two_face_image(orl["s1"][0], orl["s2"][0])))
    page.click("#try-another")
    assert upload(page, "two.png", two).status == 201
    expect(page.locator("#face-picker .face-thumb")).to_have_count(2)
    wait_images_loaded(page, "#photo-preview")
    assert page.evaluate(width) <= PHONE["width"]
    page.locator("#face-picker-box").screenshot(path=str(ARTIFACTS / "phone_face_picker.png"))

    # can't judge: the card and its way out on the first screen
    page.click("#try-another")
    response = upload(page, "blank.png", png(Image.new("RGB", (200, 200), "grey")))
    assert response.status == 422
    expect(page.locator("#cannot")).to_be_visible()
    assert page_bottom(page, "#cannot-retry") <= PHONE["height"]
    page.screenshot(path=str(ARTIFACTS / "phone_cannot_judge.png"))
