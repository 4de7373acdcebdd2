"""The public page uploads a photo straight to S3 with a presigned URL, in a real browser.

The app keeps its objects on an S3-compatible server on loopback (``support.s3``: moto in
server mode, checking presigned URLs as S3 does) whose bucket allows the page's origin to PUT
(CORS). Choosing a photo: ``POST /api/uploads`` -> a cross-origin PUT of the bytes to the
bucket -> ``POST /api/predictions {"upload_key"}`` -> the answer on the page. The same page
code also sends a photo to this server's own signed URL (local storage).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import expect
from support.browser import HELD_OUT, png_bytes, running_server, upload
from support.s3 import CheckedMotoServer, allow_browser_uploads, endpoint, s3_server, s3_settings

from lookalike.config import Settings
from lookalike.storage import ObjectStore

pytestmark = pytest.mark.browser

Orl = dict[str, list[Path]]
BUCKET = "lookalike-browser"


@pytest.fixture(scope="module")
def s3() -> Iterator[CheckedMotoServer]:
    with s3_server() as server:
        yield server


@pytest.fixture(scope="module")
def s3_app(trained: Settings, s3: CheckedMotoServer) -> Iterator[tuple[str, Settings]]:
    """The real app with its objects on S3: its URL and settings."""
    from lookalike.api import create_app

    settings = s3_settings(trained, endpoint(s3), BUCKET, "site")
    with running_server(create_app(settings)) as base:
        allow_browser_uploads(endpoint(s3), BUCKET, base)  # the page is on another origin
        yield base, settings


def exchanges(page: Any) -> list[tuple[str, str, int, str]]:
    """(method, url, status, request content type) of every response the page gets."""
    seen: list[tuple[str, str, int, str]] = []
    page.on(
        "response",
        lambda r: seen.append(
            (r.request.method, r.url, r.status, r.request.headers.get("content-type", ""))
        ),
    )
    return seen


def test_the_page_uploads_straight_to_s3(
    page: Any, s3_app: tuple[str, Settings], s3: CheckedMotoServer, orl: Orl
) -> None:
    base, settings = s3_app
    seen = exchanges(page)
    page.goto(base)
    expect(page.locator("body")).to_have_attribute("data-direct-uploads", "true")
    page.locator("#consent").check()

    photo = png_bytes(orl["s3"][HELD_OUT])
    response = upload(page, "visitor.png", photo)
    assert response.status == 201, response.text()
    expect(page.locator("#result")).to_be_visible()
    expect(page.locator("#answer-headline")).to_have_text("This is s3")

    puts = [(url, status, kind) for method, url, status, kind in seen if method == "PUT"]
    assert len(puts) == 1, seen
    url, status, kind = puts[0]
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}" == endpoint(s3) and "X-Amz-Signature=" in url
    assert (status, kind) == (200, "image/png")
    assert s3.check is not None and s3.check.refused == []
    posts = [m for m, u, _, _ in seen if m == "POST" and u.endswith("/api/predictions")]
    assert len(posts) == 1
    # The upload was used once and deleted; only the consented copy stays, in the bucket.
    answer = response.json()
    assert list(ObjectStore(settings).iter_keys()) == [f"consented/{answer['id']}.png"]


def test_the_same_page_code_sends_to_this_servers_signed_url(
    page: Any, server: str, orl: Orl
) -> None:
    seen = exchanges(page)
    page.goto(server)
    expect(page.locator("body")).not_to_have_attribute("data-direct-uploads", "true")
    page.evaluate("document.body.setAttribute('data-direct-uploads', 'true')")

    response = upload(page, "visitor.png", png_bytes(orl["s5"][HELD_OUT]))
    assert response.status == 201, response.text()
    expect(page.locator("#answer-headline")).to_have_text("This is s5")
    [(url, status, kind)] = [(u, s, k) for m, u, s, k in seen if m == "PUT"]
    assert url.startswith(f"{server}/api/uploads/") and "signature=" in url
    assert (status, kind) == (200, "image/png")


def test_a_put_refused_by_s3_is_an_error_on_the_page(
    page: Any, s3_app: tuple[str, Settings], s3: CheckedMotoServer, orl: Orl
) -> None:
    base, settings = s3_app
    seen = exchanges(page)

    def tamper(route: Any) -> None:  # the signature no longer matches what was signed
        route.continue_(url=route.request.url.replace("X-Amz-Signature=", "X-Amz-Signature=0"))

    page.route(f"{endpoint(s3)}/**", tamper)
    page.goto(base)
    page.set_input_files(
        "#file-input",
        files=[{"name": "me.png", "mimeType": "image/png", "buffer": png_bytes(orl["s2"][0])}],
    )
    expect(page.locator("#error")).to_contain_text("upload")
    expect(page.locator("#result")).to_be_hidden()
    assert s3.check is not None and s3.check.refused[-1] == "SignatureDoesNotMatch"
    assert not [u for m, u, _, _ in seen if m == "POST" and u.endswith("/api/predictions")]
    assert not [k for k in ObjectStore(settings).iter_keys() if k.startswith("uploads/")]
