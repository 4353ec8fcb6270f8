"""The UI in a real browser: the runs table (filter, a query error pointing at its character,
sorting, columns), a run's page with its pillars and charts (zoom asks the server again and
the zoomed chart is exact), other people's content shown and never run, and no horizontal
scroll on a phone."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.ui.conftest import HOSTILE, SPIKY_POINTS, Seeded
from tether.api import Project

pytestmark = pytest.mark.slow


def _go(page: Any, selector: str) -> None:
    """Click what navigates, and wait for the next page."""
    with page.expect_navigation():
        page.click(selector)


def _names(page: Any) -> list[str]:
    return [
        t.strip() for t in page.locator("table.runs tbody tr td:nth-child(2)").all_inner_texts()
    ]


def test_the_runs_table_filters_sorts_and_points_at_a_query_error(
    page: Any, seeded: Seeded
) -> None:
    names = _names(page)
    assert {"lr-0.1", "lr-0.01", "lr-0.001", "spiky", HOSTILE} <= set(names)

    page.fill("#where", "params.opt = 'adam'")
    _go(page, "form.filter button[type=submit]")
    assert sorted(_names(page)) == ["lr-0.001", "lr-0.1"]

    page.fill("#where", "metrics.acc >> 1")
    _go(page, "form.filter button[type=submit]")
    error = page.locator("#where-error")
    assert error.is_visible()
    caret = error.locator("pre.caret").inner_text().splitlines()
    assert caret[0] == "metrics.acc >> 1" and caret[1].index("^") == len("metrics.acc >")
    assert page.get_attribute("#where", "aria-invalid") == "true"

    page.fill("#where", "metrics.acc > 0")
    _go(page, "form.filter button[type=submit]")
    _go(page, "th a:text-is('metrics.acc')")  # descending first
    assert _names(page)[:3] == ["lr-0.001", "lr-0.01", "lr-0.1"]
    _go(page, "th a:text-is('metrics.acc')")
    assert _names(page)[:3] == ["lr-0.1", "lr-0.01", "lr-0.001"]
    assert page.get_attribute("th[aria-sort]", "aria-sort") == "ascending"


def test_a_run_page_shows_its_pillars_and_draws_its_metrics(page: Any, seeded: Seeded) -> None:
    _go(page, "a:text-is('lr-0.01')")
    page.wait_for_selector("figure.chart[data-drawn]")
    for heading in ("Metrics", "Params", "Code", "Data", "Environment"):
        assert page.locator(f"h2:text-is('{heading}')").is_visible()
    assert "sgd" in page.locator("dl.pairs").first.inner_text()
    assert page.locator("figure.chart[data-key=loss] canvas").count() == 1
    assert page.get_attribute("figure.chart[data-key=loss]", "data-drawn") == "20"


def test_a_long_chart_is_reduced_keeps_its_spike_and_zooms_to_raw_points(
    page: Any, seeded: Seeded
) -> None:
    page.goto(f"{seeded.server.url}/p/{seeded.project}/runs/{seeded.runs['spiky']}")
    figure = page.locator("figure.chart[data-key=signal]")
    page.wait_for_selector("figure.chart[data-key=signal][data-drawn]")
    note = figure.locator(".chart-note").inner_text()
    assert f"{SPIKY_POINTS - 1:,} points" in note and "M4" in note and "1 NaN" in note

    box = figure.locator(".u-over").bounding_box()
    with page.expect_request(lambda r: "start=" in r.url and "end=" in r.url) as asked:
        page.mouse.move(box["x"] + box["width"] * 0.70, box["y"] + 40)
        page.mouse.down()
        page.mouse.move(box["x"] + box["width"] * 0.71, box["y"] + 40, steps=5)
        page.mouse.up()
    answer = asked.value.response().json()
    assert answer["reduced"] is False and 0 < answer["total"] < 4 * box["width"]
    page.wait_for_selector("figure.chart[data-key=signal][data-zoomed]")
    assert figure.locator("button.reset").is_visible()


def test_the_server_reduces_with_m4_and_keeps_spikes_and_nan(seeded: Seeded) -> None:
    url = (
        f"/api/v1/projects/{seeded.project}/runs/{seeded.runs['spiky']}/metrics"
        "?key=signal&width=500"
    )
    with seeded.server.http(seeded.reader) as http:
        whole = http.get(url).json()
        near = http.get(url + "&start=77700&end=77800").json()
    assert whole["reduced"] and len(whole["steps"]) <= 4 * 500
    assert max(whole["values"]) == 50.0 and 77_777 in whole["steps"]
    assert min(whole["values"]) == pytest.approx(-1.0, abs=1e-4)
    assert whole["marks"] == [{"step": 12_345, "value": "NaN"}]
    assert whole["steps"] == sorted(whole["steps"])
    assert not near["reduced"] and near["total"] == 101 and near["steps"][0] == 77_700


def test_other_peoples_content_is_shown_never_run(page: Any, seeded: Seeded) -> None:
    assert HOSTILE in _names(page)
    page.goto(f"{seeded.server.url}/p/{seeded.project}/runs/{seeded.runs['hostile']}")
    assert page.locator("h1").inner_text().startswith(HOSTILE)
    assert "<script>window.__pwned=2</script>" in page.locator("main").inner_text()
    assert page.evaluate("window.__pwned") is None
    assert page.locator("main img:not(.artifact)").count() == 0  # the name made no image
    headers = httpx.get(
        page.url,
        cookies=page.context.cookies()[0:1]
        and {c["name"]: c["value"] for c in page.context.cookies()},
    ).headers
    assert "script-src 'self'" in headers["content-security-policy"]
    assert headers["x-content-type-options"] == "nosniff"


@pytest.mark.parametrize("path", ["runs", "run"])
def test_no_horizontal_scroll_on_a_phone(page: Any, seeded: Seeded, path: str) -> None:
    page.set_viewport_size({"width": 390, "height": 844})
    if path == "run":
        page.goto(f"{seeded.server.url}/p/{seeded.project}/runs/{seeded.runs['lr-0.1']}")
        page.wait_for_selector("figure.chart[data-drawn]")
    else:
        page.reload()
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")


def test_a_page_without_a_session_asks_to_log_in(browser: Any, seeded: Seeded) -> None:
    context = browser.new_context()
    tab = context.new_page()
    tab.goto(f"{seeded.server.url}/p/{seeded.project}/runs")
    assert "/login" in tab.url and tab.locator("#token").is_visible()
    tab.fill("#token", "tth_000000000000_" + "x" * 43)
    tab.click("button[type=submit]")
    tab.wait_for_selector("#login-error:not([hidden])")
    assert "token" in tab.locator("#login-error").inner_text().lower()
    context.close()


def test_compare_three_runs_overlays_charts_and_shows_only_differences(
    page: Any, seeded: Seeded
) -> None:
    for name in ("lr-0.1", "lr-0.01", "lr-0.001"):
        page.check(f"input[aria-label='Select {name}']")
    _go(page, "text=Compare selected")
    page.wait_for_selector("figure.chart[data-key=loss][data-drawn]")
    assert page.locator("h1").inner_text() == "Compare 3 runs"
    loss = page.locator("figure.chart[data-key=loss]")
    assert loss.get_attribute("data-drawn") == "60"  # 20 points of each of the three runs
    assert page.locator("figure.chart[data-key=loss] .u-legend .u-series").count() == 4
    assert page.locator("table.compare tbody tr", has_text="params.epochs").count() == 1
    _go(page, "text=Only differences")
    keys = page.locator("table.compare tbody th").all_inner_texts()
    assert not any(k.startswith("params.epochs") for k in keys)  # 3 in every run
    assert any(k.startswith("params.lr") for k in keys)


def test_two_runs_compared_name_their_likely_causes(page: Any, seeded: Seeded) -> None:
    runs = seeded.runs
    page.goto(
        f"{seeded.server.url}/p/{seeded.project}/compare?run={runs['lr-0.1']}&run={runs['lr-0.01']}"
    )
    causes = page.locator("ol.causes li").all_inner_texts()
    assert any("lr" in c for c in causes), causes
    params = page.locator("section[aria-labelledby=p-params]").inner_text()
    assert "lr: 0.1 → 0.01" in params and "opt: adam → sgd" in params


def test_artifacts_are_previewed_escaped_and_served_sandboxed(page: Any, seeded: Seeded) -> None:
    page.goto(f"{seeded.server.url}/p/{seeded.project}/runs/{seeded.runs['hostile']}")
    listed = page.locator("ul.artifacts").inner_text()
    assert "out/scores.csv" in listed and "out/evil.html" in listed
    table = page.locator("ul.artifacts table")
    assert table.locator("td").first.inner_text() == "<script>x</script>"
    assert "</pre><script>window.__pwned=6</script>" in page.locator("pre.artifact").inner_text()
    assert page.locator("img.artifact").count() == 1  # the SVG, as an image: no script runs
    assert page.evaluate("window.__pwned") is None

    base = f"{seeded.server.url}/p/{seeded.project}/runs/{seeded.runs['hostile']}/artifacts"
    cookies = {c["name"]: c["value"] for c in page.context.cookies()}
    html = httpx.get(f"{base}/out/evil.html", cookies=cookies)
    assert html.status_code == 200 and html.headers["content-disposition"].startswith("attachment")
    assert html.headers["content-type"] == "application/octet-stream"
    svg = httpx.get(f"{base}/out/evil.svg", cookies=cookies)
    assert svg.headers["content-security-policy"].startswith("sandbox")
    assert svg.headers["x-content-type-options"] == "nosniff"
    alone = page.context.new_page()  # the SVG opened on its own: the sandbox still holds
    blocked: list[str] = []
    alone.on("console", lambda m: blocked.append(m.text))
    alone.goto(f"{base}/out/evil.svg")
    assert alone.evaluate("window.__pwned") is None
    assert any("sandboxed" in b for b in blocked), blocked
    alone.close()
    missing = httpx.get(f"{base}/../../../etc/passwd", cookies=cookies)
    assert missing.status_code == 404


def test_the_lineage_graph_walks_up_and_down_from_a_run(page: Any, seeded: Seeded) -> None:
    page.goto(f"{seeded.server.url}/p/{seeded.project}/runs/{seeded.runs['train']}")
    _go(page, "text=Lineage up")
    page.wait_for_selector("#graph[data-drawn]")
    assert page.get_attribute("#graph", "data-drawn") == "4"  # raw, prepare, clean, train
    listed = page.locator("ul.nodes").inner_text()
    for name in ("prepare", "train", "raw.csv", "clean.csv"):
        assert name in listed
    assert page.locator("#graph canvas").count() >= 1
    _go(page, "ul.nodes a:text-is('prepare')")
    _go(page, "text=down")
    page.wait_for_selector("#graph[data-drawn]")
    down = page.locator("ul.nodes").inner_text()
    assert "train" in down and "model.pkl" in down and "raw.csv" not in down


def test_the_models_page_shows_versions_aliases_and_a_checked_audit_log(
    page: Any, seeded: Seeded
) -> None:
    _go(page, "nav a:text-is('models')")
    versions = page.locator("table.versions").inner_text()
    assert "v1" in versions and "champion" in versions and "model.pkl" in versions
    audit = page.locator("table.audit tbody tr")
    assert audit.count() >= 2
    assert "model.register" in page.locator("table.audit").inner_text()
    assert "chained to the one before" in page.locator("main").inner_text()
    assert page.evaluate("window.__pwned") is None


def test_the_prompts_page_shows_labels_and_their_history(page: Any, seeded: Seeded) -> None:
    _go(page, "nav a:text-is('prompts')")
    row = page.locator("tr", has_text="sentiment")
    assert "v1.0.0, v1.1.0, v1.2.0" in row.inner_text()
    assert "production → v1.0.0" in row.inner_text()  # rolled back
    history = page.locator("ol.timeline li").all_inner_texts()
    assert len(history) == 3 and "(rolled back)" in history[0]
    assert "sentiment#production#2 → v1.1.0" in history[1]


def test_a_running_run_updates_live_in_the_table(page: Any, seeded: Seeded) -> None:
    import time

    with Project.open(seeded.repo).start_run(name="live-one") as run:
        run.log_metric("acc", 0.25)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:  # the run shows on the server while it runs
            page.goto(f"{seeded.server.url}/p/{seeded.project}/runs?where=name+%3D+%27live-one%27")
            if page.locator("tr[data-status=running]").count():
                break
            time.sleep(0.5)
        row = page.locator(f"tr[data-run='{run.id}']")
        assert row.get_attribute("data-status") == "running"
        run.log_metric("acc", 0.75)
    page.wait_for_selector(f"tr[data-run='{run.id}'][data-status=finished]", timeout=20_000)
    assert row.locator(".status").inner_text() == "finished"
    assert row.locator("td[data-metric=acc]").inner_text() == "0.75"


def test_two_prompt_versions_diff_from_the_servers_repository(page: Any, seeded: Seeded) -> None:
    _go(page, "nav a:text-is('prompts')")
    page.goto(f"{seeded.server.url}/p/{seeded.project}/prompts/sentiment/diff?a=v1.0.0&b=v1.1.0")
    assert page.locator("h1").inner_text() == "sentiment: v1.0.0 → v1.1.0"
    removed = page.locator("pre.diff span.del").all_inner_texts()
    added = page.locator("pre.diff span.add").all_inner_texts()
    assert "-R: {{ review }}" in removed and "+Review: {{ review }}" in added
    base = f"{seeded.server.url}/p/{seeded.project}/prompts/sentiment/diff"
    cookies = {c["name"]: c["value"] for c in page.context.cookies()}
    for bad in ("a=v1.0.0&b=--output=/tmp/x", "a=v9.9.9&b=v1.0.0", "a=../../etc&b=v1.0.0"):
        answer = httpx.get(f"{base}?{bad}", cookies=cookies)
        assert answer.status_code in (400, 404, 422), (bad, answer.status_code)


def test_the_data_page_lists_tracked_data_and_what_changed(page: Any, seeded: Seeded) -> None:
    _go(page, "nav a:text-is('data')")
    assert "sentiment@v1.2.0" in page.locator("main").inner_text()  # revisions to pick from
    page.goto(
        f"{seeded.server.url}/p/{seeded.project}/data?rev=sentiment@v1.2.0&against=sentiment@v1.0.0"
    )
    tracked = page.locator("table tbody tr")
    assert tracked.count() == 1 and "data" in tracked.inner_text() and "4" in tracked.inner_text()
    changes = page.locator("ul.changes").inner_text()
    assert "+ part-3.csv" in changes and "~ part-0.csv" in changes
    assert "part-1.csv" not in changes


def test_the_runs_table_groups_by_a_param(page: Any, seeded: Seeded) -> None:
    page.fill("#where", "name like 'lr-%'")
    page.select_option("#group", "params.opt")
    _go(page, "form.filter button[type=submit]")
    headers = page.locator("tr.group th").all_inner_texts()
    assert [h.split(" (")[0] for h in headers] == ["params.opt = adam", "params.opt = sgd"]
    assert "(2 on this page)" in headers[0] and "(1 on this page)" in headers[1]
    rows = page.locator("table.runs tbody tr").all_inner_texts()
    assert "lr-0.01" in rows[-1]  # the one sgd run comes after its group's header
