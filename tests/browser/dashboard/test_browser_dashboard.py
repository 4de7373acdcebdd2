"""The admin dashboard and models pages in a real browser (Debian's Chromium via Playwright)
against the real server, on a seeded data dir (``dashboard_support``): every chart drawn with
data, the date filter changing the numbers, the CSV export, the empty state, one denominator
for every share, readable axes with a single data point, the registry table and its gate
figures, promote / roll back / retrain through the confirmation dialog, roll back offered only
when there is an earlier champion (and the API's refusal shown when it comes anyway).

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
from browser_support import ARTIFACTS, checked_page, running_server
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
COUNT_CHARTS = ["classes", "classes-by-model", "volume", "confidence", "feedback"]  # y: counts
HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
SINGLE_DAY_AGO = 12  # m0003 was made that day (09:00): one version, one day of predictions


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


def axis(page: Any, chart_id: str, name: str = "xaxis") -> dict[str, Any]:
    """How plotly laid out one axis of ``#chart-<id>``: its range (ms for dates), tick step
    and the tick labels it drew."""
    result: dict[str, Any] = page.evaluate(
        """([id, name]) => {
            const div = document.getElementById('chart-' + id);
            const ax = div._fullLayout[name];
            const cls = name.charAt(0) + 'tick';
            return {
                range: ax.range.map(v => ax.r2l(v)),
                dtick: ax.dtick,
                ticks: [...div.querySelectorAll('.' + cls + ' text')].map(t => t.textContent),
            };
        }""",
        [chart_id, name],
    )
    return result


def colorbar_ticks(page: Any, chart_id: str) -> list[str]:
    return list(
        page.evaluate(
            """(id) => [...document.querySelectorAll('#chart-' + id + ' .colorbar .cbaxis text')]
                .map(t => t.textContent)""",
            chart_id,
        )
    )


def assert_whole_ticks(ticks: list[str], where: str) -> None:
    """Count axes tick in whole numbers: no "0.5" predictions."""
    assert ticks, f"{where}: no tick labels"
    assert all(re.fullmatch(r"\d[\d,]*", t) for t in ticks), (where, ticks)


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
    for share in ["#share-no-strong-match", "#share-several-faces"]:
        expect(page.locator(share)).to_have_text(re.compile(r"^\d+\.\d%$"))
    expect(page.locator("#count-no-face")).to_have_text(str(len(seed.rows) - everything))
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
    expect(page.locator("#share-no-strong-match")).to_have_text("\u2013")  # no "0 %" of nothing
    expect(page.locator("#share-note")).to_contain_text("No predictions in this range")
    for name in CARDS:  # a message, never an empty frame
        card = page.locator(f'[data-chart="{name}"]')
        expect(card.locator(".empty")).to_be_visible()
        expect(card.locator(".chart").first).to_be_hidden()
        expect(card.locator(".error")).to_be_hidden()
    expect(page.locator("#champion-version")).to_have_text("m0002")


def test_every_share_is_of_the_predictions(
    page: Any, server: str, seed: Seed, analytics: None
) -> None:
    """One denominator, the predictions (photos with a face, answered), for every % on the
    page: the lookalike share is the same in the key figures, the class chart and the
    confidence card, and the page says what it is a share of."""
    sign_in(page, server, f"/admin?start={seed.day(DAYS).isoformat()}")
    wait_loaded(page, "#dashboard", 1)
    predictions = seed.count(answered=True)
    requests = len(seed.rows)
    assert requests > predictions  # requests with no face: a different denominator
    shown = page.locator("#share-no-strong-match").inner_text()
    bar = page.evaluate(
        """() => {
            const t = document.getElementById('chart-classes').data[0];
            return t.text[t.x.indexOf('Lookalike answers')];
        }"""
    )
    assert bar == shown
    expect(page.locator("#confidence-no-strong-match")).to_have_text(shown)
    assert float(shown.rstrip("%")) == pytest.approx(
        100 * seed.lookalikes() / predictions, abs=0.05
    )
    several = page.locator("#share-several-faces").inner_text()
    assert float(several.rstrip("%")) == pytest.approx(
        100 * seed.several_faces() / predictions, abs=0.05
    )
    expect(page.locator("#confidence-predictions")).to_have_text(str(predictions))
    expect(page.locator("#count-no-face")).to_have_text(str(requests - predictions))
    expect(page.locator("#share-note")).to_contain_text(
        f"Every % on this page is a share of the {predictions} predictions"
    )
    expect(page.locator("#confidence-share-note")).to_have_text(
        f"% of the {predictions} predictions."
    )
    # Every "%" on the page (text and charts) is k of the predictions, for a whole k.
    text = page.evaluate("document.body.innerText") + " ".join(
        page.evaluate(
            "[...document.querySelectorAll('.js-plotly-plot text')].map(t => t.textContent)"
        )
    )
    shares = [float(v) for v in re.findall(r"(\d+(?:\.\d+)?)%", text)]
    assert len(shares) >= 3, text
    for value in shares:
        k = value * predictions / 100
        assert abs(k - round(k)) <= 0.05 * predictions / 100 + 1e-9, (value, predictions)


def test_one_day_axes(page: Any, server: str, seed: Seed, analytics: None) -> None:
    """A single day: one model version, one point a day. Time axes span a day or more and
    tick in hours or days (no "09:00:00.0005"); accuracy stays 0-1; counts tick in whole
    numbers."""
    day = seed.day(SINGLE_DAY_AGO).isoformat()
    sign_in(page, server, f"/admin?start={day}&to={day}")
    wait_loaded(page, "#dashboard", 1)
    points = page.evaluate(
        "['accuracy', 'latency', 'drift'].map(id => document.getElementById('chart-' + id)"
        ".data[0].x.length)"
    )
    assert points == [1, 1, 1]
    no_seconds = re.compile(r"\d:\d\d:\d|\d\.\d")
    accuracy = axis(page, "accuracy")
    assert accuracy["range"][1] - accuracy["range"][0] >= DAY_MS, accuracy
    assert accuracy["dtick"] >= HOUR_MS and accuracy["ticks"], accuracy
    assert not any(no_seconds.search(t) for t in accuracy["ticks"]), accuracy
    assert axis(page, "accuracy", "yaxis")["range"] == [0, 1]
    for chart_id in ["volume", "latency", "drift"]:  # daily figures: ticks are days
        x = axis(page, chart_id)
        assert x["range"][1] - x["range"][0] >= 2 * DAY_MS, (chart_id, x)
        assert x["dtick"] >= DAY_MS and x["ticks"], (chart_id, x)
        assert not any(":" in t or no_seconds.search(t) for t in x["ticks"]), (chart_id, x)
    for chart_id in COUNT_CHARTS:
        if not chart(page, chart_id)["hidden"]:
            assert_whole_ticks(axis(page, chart_id, "yaxis")["ticks"], chart_id)
    assert_whole_ticks(colorbar_ticks(page, "heatmap"), "heatmap colour bar")

    page.select_option("#filter-bucket", "hour")  # a few hours of that day
    wait_loaded(page, "#dashboard", 2)
    x = axis(page, "volume")
    assert x["range"][1] - x["range"][0] >= DAY_MS and x["dtick"] >= HOUR_MS, x
    assert not any(no_seconds.search(t) for t in x["ticks"]), x
    assert_whole_ticks(axis(page, "volume", "yaxis")["ticks"], "volume per hour")
    page.screenshot(path=str(ARTIFACTS / "dashboard_one_day.png"), full_page=True)


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
    from dashboard_support import build_single_version_home

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
