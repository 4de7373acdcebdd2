"""The admin dashboard in a real browser (Debian's Chromium via Playwright) against the real
server, on a seeded data dir (``support.dashboard``): anonymous access refused, plotly served by
the app, every chart drawn with data, the date filter changing the numbers, the CSV export, the
empty state, one denominator for every share, readable axes with a single data point. (The
models page: ``test_browser_models``.)

One server per module (``conftest.py``, with the job worker in threads, as ``lookalike serve``
runs it). Screenshots are kept in ``tests/artifacts/``. The pages run under their real
Content-Security-Policy: any violation fails the test.
"""

from __future__ import annotations

import csv
import re
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect
from support.browser import ARTIFACTS
from support.dashboard import (
    CUT_DAYS_AGO,
    DAY_MS,
    DAYS,
    GAP_DAYS,
    HOUR_MS,
    Seed,
    axis,
    chart,
    sign_in,
    wait_loaded,
)

from lookalike.api.auth import admin_routes

pytestmark = pytest.mark.browser

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
SINGLE_DAY_AGO = 12  # m0003 was made that day (09:00): one version, one day of predictions
ANALYTICS = {"/api/analytics/classes", "/api/analytics/export.csv"}  # what the dashboard draws


@pytest.fixture
def analytics(app: Any) -> None:
    """The /api/analytics endpoints the dashboard draws are admin routes of the app (a test
    that needs them fails, never skips, when they are gone)."""
    paths = {path for path, _ in admin_routes(app)}
    assert paths >= ANALYTICS, f"the app lacks {sorted(ANALYTICS - paths)}"


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
    assert {path for path, _ in admin_routes(app)} >= ANALYTICS  # none left out below
    for path in ["/api/models/jobs/x", *sorted(ANALYTICS)]:
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


def test_data_quality_counts_link_into_the_review_queue(
    page: Any, server: str, seeded: tuple[Any, Seed]
) -> None:
    """The dataset checks ran after the seed's retrains; the dashboard shows their counts,
    the same as the report's, each kind with flags a link into the queue on that kind."""
    import json

    settings, _ = seeded
    report = json.loads(settings.data_dir.dataset_check.read_text())
    sign_in(page, server, "/admin")
    card = page.locator("#quality-card")
    expect(card).to_have_attribute("data-state", "ready")
    expect(page.locator("#quality-note")).to_contain_text("checked")
    rows = card.locator("tbody tr")
    shown = {
        rows.nth(i).get_attribute("data-kind"): int(rows.nth(i).locator("td").inner_text())
        for i in range(rows.count())
    }
    assert len(shown) == 11  # 9 photo checks, visitors' feedback, low-confidence answers
    for kind in ("likely_mislabelled", "closer_to_another_class", "near_duplicate", "outlier"):
        assert shown[kind] == report["counts"][kind], (kind, shown, report["counts"])
    flagged = [kind for kind, n in shown.items() if n]
    assert flagged, "the seeded data has a near-duplicate and more"
    assert card.locator(f"tr[data-kind='{flagged[-1]}'] a").count() == 1
    assert card.locator("tbody tr:not(:has(a))").count() == 11 - len(flagged)  # nothing: no link
    card.locator(f"tr[data-kind='{flagged[0]}'] a").click()  # opens the queue on that kind
    expect(page).to_have_url(re.compile(rf"/admin/review\?kind={flagged[0]}$"))
    expect(page.locator("#review-kind")).to_have_value(flagged[0])
