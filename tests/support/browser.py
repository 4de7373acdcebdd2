"""Helpers for the browser tests: a trained data dir, the real server in a thread, Chromium.

The browser is Debian's Chromium (``/usr/bin/chromium``, or ``$LOOKALIKE_CHROMIUM``) driven by
the ``playwright`` package; Playwright's own browser download is never used. Its fake camera
plays a ``.y4m`` file, so the webcam path runs end to end without a camera.
"""

from __future__ import annotations

import io
import os
import re
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from PIL import Image

from lookalike.config import Settings
from lookalike.data.importers import import_images
from lookalike.retrain import retrain
from lookalike.training.train import TrainReport
from support.server import free_port
from support.training import class_folders

CHROMIUM = Path(os.environ.get("LOOKALIKE_CHROMIUM", "/usr/bin/chromium"))

PEOPLE = [f"s{i}" for i in range(1, 9)]  # the classes the browser tests' model knows
IMPORTED = slice(0, 8)  # photos 1-8 are imported; 9 and 10 are held out
HELD_OUT = 9  # index of a photo the model never saw (ORL photo 10)
STRANGERS = [f"s{i}" for i in range(9, 41)]  # ORL people the model has never seen


ARTIFACTS = Path(__file__).parents[1] / "artifacts"  # tests/artifacts: a screenshot per test


def chromium_args(y4m: Path | None = None) -> list[str]:
    """Headless Chromium flags; with ``y4m``, a fake camera playing that video."""
    args = [
        "--no-sandbox",
        "--headless=new",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
    ]
    if y4m is not None:
        args += [
            "--use-fake-ui-for-media-stream",
            "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-video-capture={y4m}",
        ]
    return args


@contextmanager
def launched_chromium(args: list[str] | None = None) -> Iterator[Any]:
    """Debian's Chromium under Playwright (the test is skipped when it is not installed)."""
    import pytest
    from playwright import sync_api

    if not CHROMIUM.is_file():
        pytest.skip(f"no Chromium at {CHROMIUM}: apt-get install chromium")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=args or chromium_args())
        try:
            yield browser
        finally:
            browser.close()


PHONE = {"width": 375, "height": 667}


def phone_page(browser: Any, test_name: str, **context_options: Any) -> Iterator[Any]:
    """``checked_page`` as a phone shows it (375 x 667, touch, 2x pixels, CSP checked)."""
    options = {"viewport": PHONE, "device_scale_factor": 2, "is_mobile": True, "has_touch": True}
    yield from checked_page(browser, test_name, csp_errors=True, **{**options, **context_options})


def checked_page(
    browser: Any, test_name: str, *, csp_errors: bool = False, **context_options: Any
) -> Iterator[Any]:
    """A fresh context + page for one test (use with ``yield from`` in a fixture). It leaves
    a screenshot named after the test and fails the test on uncaught page errors (and, with
    ``csp_errors``, on Content-Security-Policy violations logged to the console)."""
    context = browser.new_context(**context_options)
    context.set_default_timeout(20_000)
    page = context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda exc: problems.append(str(exc)))
    if csp_errors:
        page.on(
            "console",
            lambda msg: (
                problems.append(msg.text)
                if msg.type == "error" and "Content Security Policy" in msg.text
                else None
            ),
        )
    yield page
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    try:
        page.screenshot(path=str(ARTIFACTS / f"{test_name}.png"), full_page=True)
    finally:
        context.close()
    assert not problems, f"uncaught errors or CSP violations in the page: {problems}"


def build_home(root: Path, orl: dict[str, list[Path]]) -> tuple[Settings, TrainReport]:
    """Import ``PEOPLE`` x 8 ORL photos with the face backbone into ``root/home`` and train."""
    source = class_folders(root / "source", {p: orl[p][IMPORTED] for p in PEOPLE})
    settings = Settings(
        home=root / "home",
        backbone="face",
        rate_limit_per_minute=0,  # a test run fires many requests from one client
        contributions_per_hour=0,
        secret_key="browser-test-secret-0123456789abcdef",
    )
    import_images(source, settings)
    return settings, retrain(settings, strict=False).report


def png_bytes(path: Path) -> bytes:
    """Any image file (e.g. an ORL PGM) as PNG bytes, as a browser would upload it."""
    with Image.open(path) as img:
        buf = io.BytesIO()
        img.convert("RGB").save(buf, "PNG")
        return buf.getvalue()


def png(image: Image.Image) -> bytes:
    """A PIL image as PNG bytes."""
    buf = io.BytesIO()
    image.save(buf, "PNG")
    return buf.getvalue()


def photo(orl: dict[str, list[Path]], person: str, index: int = 0) -> bytes:
    """ORL photo ``index`` of ``person`` as PNG bytes."""
    return png_bytes(orl[person][index])


def stranger(answers: dict[str, dict[str, Any]], *, tie: bool) -> str:
    """A stranger whose photo 1 gets a one-name (or, with ``tie``, a two-name) answer
    (``answers``: the ``stranger_answers`` fixture)."""
    found = [p for p, a in answers.items() if a["tie"] is tie]
    assert found, f"no stranger's photo is answered with tie={tie}: {answers}"
    return found[0]


def get_json(url: str, timeout: float = 5.0) -> Any:
    import json

    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.loads(response.read())


@contextmanager
def running_server(app: Any, startup_timeout: float = 60.0) -> Iterator[str]:
    """Serve ``app`` with uvicorn on a free port in a daemon thread; yields the base URL.

    Returns once ``GET /api/health`` answers 200; stops the server on exit.
    """
    import uvicorn

    port = free_port()
    config = uvicorn.Config(
        app=app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="uvicorn-browser-tests", daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + startup_timeout
    last: Exception | None = None
    try:
        while True:
            if not thread.is_alive():
                raise RuntimeError(f"the test server stopped during startup (last error: {last})")
            try:
                with urllib.request.urlopen(base + "/api/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError, TimeoutError) as exc:
                last = exc
            if time.monotonic() > deadline:
                raise RuntimeError(f"the test server did not answer /api/health: {last}")
            time.sleep(0.1)
        yield base
    finally:
        server.should_exit = True
        thread.join(timeout=15)


# --- the public page: requests and waits shared by the browser test modules -------------------


def is_prediction_post(response: Any) -> bool:
    return response.request.method == "POST" and response.url.endswith("/api/predictions")


def form_fields(body: bytes) -> dict[str, list[bytes]]:
    """``{name: [values]}`` of a multipart body (file parts: their bytes)."""
    boundary = body.split(b"\r\n", 1)[0]
    fields: dict[str, list[bytes]] = {}
    for part in body.split(boundary)[1:-1]:
        head, _, value = part.strip(b"\r\n").partition(b"\r\n\r\n")
        match = re.search(rb'name="([^"]+)"', head)
        if match:
            fields.setdefault(match.group(1).decode(), []).append(value)
    return fields


class PostBodies:
    """Records the bodies of ``POST /api/predictions`` requests (routed, so Chromium hands
    over blob-backed multipart bodies, which ``response.request.post_data_buffer`` lacks)."""

    def __init__(self, page: Any) -> None:
        self.bodies: list[bytes] = []
        page.route("**/api/predictions", self._record)

    def _record(self, route: Any, request: Any) -> None:
        if request.method == "POST":
            self.bodies.append(request.post_data_buffer or b"")
        route.continue_()

    def last(self) -> dict[str, list[bytes]]:
        assert self.bodies, "no POST /api/predictions was sent"
        return form_fields(self.bodies[-1])


def upload(page: Any, name: str, data: bytes, mime: str = "image/png") -> Any:
    """Choose a file in ``#file-input``; returns the ``POST /api/predictions`` response."""
    with page.expect_response(is_prediction_post) as info:
        page.set_input_files(
            "#file-input", files=[{"name": name, "mimeType": mime, "buffer": data}]
        )
    return info.value


def wait_images_loaded(page: Any, selector: str) -> None:
    """Wait until every ``selector`` image (at least one) has loaded with real pixels."""
    page.wait_for_function(
        """sel => {
            const imgs = [...document.querySelectorAll(sel)];
            return imgs.length > 0 && imgs.every(i => i.complete && i.naturalWidth > 0);
        }""",
        arg=selector,
    )
