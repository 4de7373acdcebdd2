"""The admin dashboard and models pages in a real browser (Debian's Chromium via Playwright)
against the real server, on a seeded data dir (``dashboard_support``): every chart drawn with
data, the date filter changing the numbers, the CSV export, the empty state, the registry
table and its gate figures, promote / roll back / retrain through the confirmation dialog.

One server per module (with the job worker in threads, as ``lookalike serve`` runs it).
Screenshots are kept in ``tests/artifacts/``. The pages run under their real
Content-Security-Policy: any violation fails the test.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from browser_support import ARTIFACTS, checked_page, launched_chromium, running_server
from dashboard_support import ADMIN, CUT_DAYS_AGO, DAYS, GAP_DAYS, PASSWORD, TIMEZONE, Seed

from lookalike.api.auth import admin_routes
from lookalike.config import Settings

pytestmark = pytest.mark.browser

sync_api = pytest.importorskip("playwright.sync_api", reason="pip install 'lookalike[dev]'")
expect = sync_api.expect

CHARTS = [
    "classes",
    "classes-by-model",
    "accuracy",
    "volume",
    "heatmap",
    "latency",
    "latency-class",
    "confidence",
    "feedback",
    "drift",
]
CARDS = ["classes", "accuracy", "volume", "heatmap", "latency", "confidence", "feedback", "drift"]


@pytest.fixture(scope="module")
def seeded(
    tmp_path_factory: pytest.TempPathFactory, orl: dict[str, list[Path]]
) -> tuple[Settings, Seed]:
    from dashboard_support import build_dashboard_home

    return build_dashboard_home(tmp_path_factory.mktemp("browser_dashboard"), orl)


@pytest.fixture(scope="module")
def app(seeded: tuple[Settings, Seed]) -> Any:
    from lookalike.api import create_app

    settings, _ = seeded
    return create_app(settings)


@pytest.fixture(scope="module")
def server(seeded: tuple[Settings, Seed], app: Any) -> Iterator[str]:
    from lookalike.jobs import Jobs

    settings, _ = seeded
    consumer = Jobs(settings).start_in_background()  # "Retrain now" needs a worker
    try:
        with running_server(app) as base:
            yield base
    finally:
        consumer.stop(graceful=False)


@pytest.fixture(scope="module")
def seed(seeded: tuple[Settings, Seed]) -> Seed:
    return seeded[1]


@pytest.fixture
def analytics(app: Any) -> None:
    """Skip until the /api/analytics endpoints the dashboard draws are in the app."""
    paths = {path for path, _ in admin_routes(app)}
    if not {"/api/analytics/classes", "/api/analytics/export.csv"} <= paths:
        pytest.skip("the /api/analytics/... endpoints are not in the app yet")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with launched_chromium() as browser:
        yield browser


@pytest.fixture
def page(browser: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    yield from checked_page(
        browser,
        request.node.name,
        csp_errors=True,
        viewport={"width": 1280, "height": 900},
        accept_downloads=True,
        timezone_id=TIMEZONE,
    )


def sign_in(page: Any, base: str, path: str) -> None:
    page.goto(base + path)
    page.fill("#login-name", ADMIN)
    page.fill("#login-password", PASSWORD)
    page.click("#login-submit")
    expect(page).to_have_url(re.compile(re.escape(base + path)))


def wait_loaded(page: Any, root: str, loads: int) -> None:
    """The page finished its ``loads``-th round of requests and drew the answers."""
    expect(page.locator(f"{root}[data-loads='{loads}']")).to_have_attribute("data-state", "ready")


def chart(page: Any, chart_id: str) -> dict[str, Any]:
    """What plotly drew in ``#chart-<id>``: traces, points, and whether it is a real plot."""
    result: dict[str, Any] = page.evaluate(
        """(id) => {
            const div = document.getElementById('chart-' + id);
            const traces = div.data || [];
            const points = traces.reduce((n, t) => n + ((t.z || t.y || []).length), 0);
            return {
                plotted: div.classList.contains('js-plotly-plot')
                    && div.querySelector('.plot-container .main-svg') !== null,
                hidden: div.hidden || div.offsetHeight === 0,
                traces: traces.length,
                points: points,
            };
        }""",
        chart_id,
    )
    return result


def volume_total(page: Any) -> int:
    return int(
        page.evaluate(
            """() => document.getElementById('chart-volume').data
                .reduce((n, t) => n + t.y.reduce((a, b) => a + b, 0), 0)"""
        )
    )


def set_date(page: Any, selector: str, day: date) -> None:
    page.fill(selector, day.isoformat())  # fires input + change: the page reloads


# --- access --------------------------------------------------------------------------------------


def test_anonymous_admin_pages_are_refused(page: Any, server: str, app: Any) -> None:
    for path, quoted in [("/admin", "%2Fadmin"), ("/admin/models", "%2Fadmin%2Fmodels")]:
        page.goto(server + path)
        expect(page).to_have_url(re.compile(rf"/admin/login\?next={quoted}$"))
        expect(page.locator("#login-form")).to_be_visible()
    asset = page.request.get(server + "/admin/assets/plotly.min.js", max_redirects=0)
    assert asset.status == 303
    routes = {path for path, _ in admin_routes(app)}
    api = ["/api/models/jobs/x", "/api/analytics/classes", "/api/analytics/export.csv"]
    for path in [p for p in api if p in routes or p.startswith("/api/models")]:
        answer = page.request.get(server + path, max_redirects=0)
        assert answer.status == 401, (path, answer.status)
        assert answer.json()["error"]["code"] == "auth.required"


def test_plotly_comes_from_the_app(page: Any, server: str) -> None:
    sign_in(page, server, "/admin/models")
    wait_loaded(page, "#models-page", 1)
    sources = page.evaluate(
        "[...document.querySelectorAll('script[src], link[rel=stylesheet]')]"
        ".map(e => e.src || e.href)"
    )
    assert sources and all(s.startswith(server + "/") for s in sources), sources
    (plotly,) = [s for s in sources if "plotly" in s]
    assert re.search(r"/admin/assets/plotly\.min\.js\?v=[0-9a-f]{20}$", plotly)
    js = page.request.get(plotly)
    assert js.status == 200 and "javascript" in js.headers["content-type"]
    assert "immutable" in js.headers["cache-control"] and js.headers["etag"]
    assert js.text().startswith("/**\n* plotly.js v")
    again = page.request.get(plotly, headers={"If-None-Match": js.headers["etag"]})
    assert again.status == 304
    assert page.evaluate("typeof window.Plotly.react") == "function"


# --- the dashboard -------------------------------------------------------------------------------


def test_dashboard_charts_filters_and_csv(
    page: Any, server: str, seed: Seed, analytics: None, tmp_path: Path
) -> None:
    sign_in(page, server, "/admin")
    wait_loaded(page, "#dashboard", 1)
    # The default range: the last 30 days, today included.
    assert page.input_value("#filter-end") == seed.today.isoformat()
    assert page.input_value("#filter-start") == seed.day(29).isoformat()
    last_30 = seed.count(seed.day(29), answered=True)
    expect(page.locator("#total-predictions")).to_have_text(str(last_30))
    expect(page.locator("#total-requests")).to_have_text(str(seed.count(seed.day(29))))

    # Everything seeded: every chart is drawn, with data, and its figures are shown.
    set_date(page, "#filter-start", seed.day(DAYS))
    wait_loaded(page, "#dashboard", 2)
    everything = seed.count(answered=True)  # photos with a face: answered
    assert everything != last_30
    expect(page.locator("#total-predictions")).to_have_text(str(everything))
    expect(page.locator("#total-requests")).to_have_text(str(len(seed.rows)))
    for chart_id in CHARTS:
        drawn = chart(page, chart_id)
        assert drawn["plotted"] and not drawn["hidden"], (chart_id, drawn)
        assert drawn["traces"] > 0 and drawn["points"] > 0, (chart_id, drawn)
    assert volume_total(page) == everything
    assert page.locator(".chart-card .error:visible").count() == 0
    assert page.locator(".chart-card .empty:visible").count() == 0
    # Offline: no "share to Plotly Cloud" in the charts' toolbars.
    assert page.locator('.modebar-btn[data-title="Share chart..."]').count() == 0
    expect(page.locator("#summary-classes")).to_contain_text(f"{everything} predictions")
    expect(page.locator("#latency-p50")).to_have_text(re.compile(r"^\d[\d,]* ms$"))
    expect(page.locator("#latency-p95")).to_have_text(re.compile(r"^\d[\d,]* ms$"))
    for share in ["#share-no-strong-match", "#share-no-face", "#share-several-faces"]:
        expect(page.locator(share)).to_have_text(re.compile(r"^\d+\.\d%$"))
    expect(page.locator("#champion-version")).to_have_text("m0002")
    expect(page.locator("#summary-drift")).to_contain_text("threshold")
    assert page.locator("#confusion-table tbody tr").count() > 0
    accuracy = page.evaluate("document.getElementById('chart-accuracy').data.map(t => t.name)")
    assert {"Test accuracy", "Macro-F1", "Champion", "Promotion", "Rollback"} <= set(accuracy)

    # A later start date: the numbers follow (the gap days make the cut exact in any zone).
    cut = seed.day(CUT_DAYS_AGO)
    set_date(page, "#filter-start", cut)
    wait_loaded(page, "#dashboard", 3)
    after = seed.count(cut, answered=True)
    assert after not in (everything, last_30)
    expect(page.locator("#total-predictions")).to_have_text(str(after))
    expect(page.locator("#total-requests")).to_have_text(str(seed.count(cut)))
    assert volume_total(page) == after
    assert f"start={cut.isoformat()}" in page.url  # the view can be bookmarked
    page.select_option("#filter-bucket", "week")  # the same predictions, other buckets
    wait_loaded(page, "#dashboard", 4)
    assert volume_total(page) == after
    expect(page.locator("#summary-volume")).to_contain_text(" week")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)

    # The CSV export carries the same filters: one row per logged request since the cut.
    href = page.get_attribute("#export-csv", "href")
    assert f"start={cut.isoformat()}" in href
    with page.expect_download() as info:
        page.click("#export-csv")
    saved = tmp_path / "predictions.csv"
    info.value.save_as(saved)
    with saved.open(newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    header = rows[0]
    assert {"id", "created_at", "model_version", "label"} <= set(header), header
    assert len(rows) - 1 == seed.count(cut)
    with page.expect_download() as info:
        page.click("#export-json")
    assert info.value.suggested_filename.endswith(".json")


def test_dashboard_empty_range(page: Any, server: str, seed: Seed, analytics: None) -> None:
    gap = seed.day(GAP_DAYS[1])
    sign_in(page, server, f"/admin?start={gap.isoformat()}&to={gap.isoformat()}")
    wait_loaded(page, "#dashboard", 1)
    expect(page.locator("#total-predictions")).to_have_text("0")
    expect(page.locator("#total-requests")).to_have_text("0")
    for name in CARDS:  # a message, never an empty frame
        card = page.locator(f'[data-chart="{name}"]')
        expect(card.locator(".empty")).to_be_visible()
        expect(card.locator(".chart").first).to_be_hidden()
        expect(card.locator(".error")).to_be_hidden()
    expect(page.locator("#champion-version")).to_have_text("m0002")


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
