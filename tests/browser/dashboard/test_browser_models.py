"""The admin models page in a real browser (Debian's Chromium via Playwright) against the real
server, on a seeded data dir (``support.dashboard``): the registry table and its gate figures,
promote / roll back / retrain through the confirmation dialog, roll back offered only when there
is an earlier champion (and the API's refusal shown when it comes anyway).

The seeded server comes from ``conftest.py``, as for ``test_browser_dashboard`` (one of this
module's own); the same screenshots and Content-Security-Policy checks apply.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect
from support.browser import ARTIFACTS, running_server
from support.dashboard import (
    DAY_MS,
    HOUR_MS,
    axis,
    chart,
    sign_in,
    wait_loaded,
)

pytestmark = pytest.mark.browser


# --- the models page -----------------------------------------------------------------------------


def open_models(page: Any, server: str) -> None:
    sign_in(page, server, "/admin/models")
    wait_loaded(page, "#models-page", 1)


def confirm(page: Any, reason: str | None = None) -> None:
    dialog = page.locator("#confirm-dialog")
    expect(dialog).to_be_visible()
    if reason is not None:
        page.fill("#confirm-reason", reason)
    page.click("#confirm-ok")
    expect(dialog).to_be_hidden()


def test_models_table_details_promote_and_roll_back(page: Any, server: str) -> None:
    open_models(page, server)
    rows = page.locator("#models-table tbody tr[data-version]")
    expect(rows).to_have_count(3)
    assert [rows.nth(i).get_attribute("data-version") for i in range(3)] == [
        "m0003",
        "m0002",
        "m0001",
    ]
    expect(page.locator("#champion")).to_have_text("m0002")
    expect(page.locator("tr[data-version=m0002] .alias")).to_have_text("champion")
    expect(page.locator("tr[data-version=m0003] .decision")).to_have_text("refused")
    timeline = chart(page, "timeline")
    assert timeline["plotted"] and timeline["points"] > 0
    expect(page.locator("#history li")).to_have_count(4)

    # The gate's decision on m0002, with its figures.
    figures = next(
        e["figures"]
        for e in page.request.get(server + "/api/models/m0002").json()["events"]
        if e["kind"] == "decision"
    )
    page.click("tr[data-version=m0002] button[data-action=details]")
    details = page.locator("tr[data-details-for=m0002]")
    expect(details).to_have_attribute("data-loaded", "true")
    decision = details.locator(".event[data-kind=decision]")
    expect(decision).to_contain_text("Gate decision: promoted")
    expect(decision.locator("[data-figure=champion_accuracy] dd")).to_have_text(
        f"{figures['champion_accuracy']:.3f}"
    )
    expect(decision.locator("[data-figure=challenger_accuracy] dd")).to_have_text(
        f"{figures['challenger_accuracy']:.3f}"
    )
    expect(decision.locator("[data-figure=mcnemar_p]")).to_be_visible()
    expect(decision.locator("[data-figure=classes_added] dd")).to_have_text("s5")
    expect(decision.locator(".recall-table")).to_contain_text("new")
    page.click("tr[data-version=m0002] button[data-action=details]")  # folds again
    expect(details).to_have_count(0)

    # Cancelling changes nothing; an error from the server is shown as it came.
    page.click("tr[data-version=m0001] button[data-action=promote]")
    expect(page.locator("#confirm-title")).to_have_text("Promote m0001?")
    page.click("#confirm-cancel")
    expect(page.locator("#confirm-dialog")).to_be_hidden()
    expect(page.locator("#champion")).to_have_text("m0002")
    token = page.get_attribute('meta[name="csrf-token"]', "content")
    page.evaluate("document.querySelector('meta[name=\"csrf-token\"]').content = 'stale'")
    page.click("tr[data-version=m0001] button[data-action=promote]")
    confirm(page)
    expect(page.locator("#models-error")).to_contain_text("CSRF token")
    expect(page.locator("#champion")).to_have_text("m0002")
    page.evaluate(f"document.querySelector('meta[name=\"csrf-token\"]').content = '{token}'")

    # Promote m0003 ...
    page.click("tr[data-version=m0003] button[data-action=promote]")
    confirm(page, "the browser test says so")
    expect(page.locator("#models-status")).to_have_text("m0003 is now the champion (was m0002).")
    expect(page.locator("#models-error")).to_be_hidden()
    expect(page.locator("#champion")).to_have_text("m0003")
    expect(page.locator("tr[data-version=m0003] .alias")).to_have_text("champion")
    expect(page.locator("tr[data-version=m0002] .alias")).to_have_text("")
    expect(page.locator("tr[data-version=m0003] button[data-action=promote]")).to_have_count(0)
    expect(page.locator("#history li").first).to_contain_text("Promoted m0003")
    expect(page.locator("#history li").first).to_contain_text("the browser test says so")
    assert page.request.get(server + "/api/models").json()["champion"] == "m0003"

    # ... and roll back to m0002.
    expect(page.locator("#rollback")).to_have_text("Roll back to m0002")
    page.click("#rollback")
    expect(page.locator("#confirm-title")).to_have_text("Roll back from m0003?")
    confirm(page)
    expect(page.locator("#models-status")).to_have_text(
        "Rolled back: m0002 is the champion again (was m0003)."
    )
    expect(page.locator("#champion")).to_have_text("m0002")
    expect(page.locator("tr[data-version=m0002] .alias")).to_have_text("champion")
    expect(page.locator("#history li").first).to_contain_text("Rolled back to m0002")
    assert page.request.get(server + "/api/health").json()["model"] == "m0002"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.click("tr[data-version=m0002] button[data-action=details]")
    expect(page.locator("tr[data-details-for=m0002]")).to_have_attribute("data-loaded", "true")
    page.screenshot(path=str(ARTIFACTS / "models.png"), full_page=True)


def csrf_headers(page: Any) -> dict[str, str]:
    return {"X-CSRF-Token": page.get_attribute('meta[name="csrf-token"]', "content") or ""}


def test_rollback_refused_by_the_api_is_explained(page: Any, server: str) -> None:
    """The page offers to roll back to the version the API would pick; when the registry
    changed meanwhile and the API refuses, its message is shown and the page catches up."""
    open_models(page, server)
    expect(page.locator("#champion")).to_have_text("m0002")
    rollback = page.locator("#rollback")
    expect(rollback).to_be_enabled()
    expect(rollback).to_have_text("Roll back to m0001")  # m0003 was rolled back from: skipped
    expect(page.locator("#rollback-note")).to_be_hidden()
    headers = csrf_headers(page)
    try:
        # Another admin rolls back first: the API goes where this page said.
        answer = page.request.post(
            server + "/api/models/rollback", headers=headers, data={"reason": "elsewhere"}
        )
        assert answer.ok and answer.json()["champion"] == "m0001", answer.text()
        rollback.click()
        confirm(page)
        error = page.locator("#models-error")
        expect(error).to_be_visible()
        expect(error).to_contain_text("Could not roll back: m0001 has no earlier champion")
        expect(page.locator("#models-status")).to_have_text("")
        expect(page.locator("#champion")).to_have_text("m0001")  # the page caught up
        expect(rollback).to_be_disabled()
        expect(rollback).to_have_text("Roll back")
        expect(page.locator("#rollback-note")).to_contain_text("no earlier champion")
    finally:
        page.request.post(
            server + "/api/models/m0002/promote", headers=headers, data={"reason": "restored"}
        )
    assert page.request.get(server + "/api/models").json()["champion"] == "m0002"


@pytest.fixture(scope="module")
def single_server(
    tmp_path_factory: pytest.TempPathFactory, orl: dict[str, list[Path]]
) -> Iterator[str]:
    """A second server whose registry holds one version (no earlier champion)."""
    from support.dashboard import build_single_version_home

    from lookalike.api import create_app

    settings = build_single_version_home(tmp_path_factory.mktemp("single_version"), orl)
    with running_server(create_app(settings)) as base:
        yield base


def test_one_version_cannot_be_rolled_back(page: Any, single_server: str) -> None:
    open_models(page, single_server)
    expect(page.locator("#champion")).to_have_text("m0001")
    expect(page.locator("#rollback")).to_be_disabled()
    expect(page.locator("#rollback-note")).to_be_visible()
    expect(page.locator("#rollback-note")).to_contain_text(
        "m0001 has no earlier champion (it is the only version)"
    )
    refused = page.request.post(
        single_server + "/api/models/rollback", headers=csrf_headers(page), data={}
    )
    assert refused.status == 409 and refused.json()["error"]["code"] == "model.no_previous"
    # The timeline of one version: the day around it in hours, accuracy on 0-1.
    x = axis(page, "timeline")
    assert x["range"][1] - x["range"][0] >= DAY_MS and x["dtick"] >= HOUR_MS, x
    assert x["ticks"] and not any(re.search(r"\d:\d\d:\d|\d\.\d", t) for t in x["ticks"]), x
    assert axis(page, "timeline", "yaxis")["range"] == [0, 1]
    page.screenshot(path=str(ARTIFACTS / "models_one_version.png"), full_page=True)


def test_retrain_now(page: Any, server: str) -> None:
    open_models(page, server)
    page.click("#retrain")
    expect(page.locator("#confirm-reason")).to_be_hidden()  # nothing to explain
    confirm(page)
    status = page.locator("#models-status")
    expect(status).to_contain_text("Retrain finished: m0004", timeout=60_000)
    expect(page.locator("tr[data-version=m0004]")).to_be_visible()
    decision = page.locator("tr[data-version=m0004] .decision")
    expect(decision).to_have_text(re.compile(r"^(promoted|refused)$"))
    promoted = decision.inner_text() == "promoted"
    expect(status).to_contain_text("was promoted" if promoted else "was not promoted")
    assert page.locator("#retrain").is_enabled()
