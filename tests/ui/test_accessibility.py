"""Every page, at a desktop and a phone width: no serious or critical axe-core violation, no
horizontal page scroll, and every link and button reachable by keyboard with a visible focus.
axe-core (vendored from npm for the tests only) is evaluated in a context that bypasses the
pages' CSP, which refuses any injected script."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.ui.conftest import Seeded, logged_in

pytestmark = pytest.mark.slow

WIDE = """[...document.querySelectorAll('body *')].filter(e => e.getBoundingClientRect().right
> window.innerWidth + 1).slice(-5).map(e => e.tagName + '.' + e.className + ' '
+ Math.round(e.getBoundingClientRect().right))"""  # what sticks out, to name it
AXE = (Path(__file__).resolve().parent / "vendor" / "axe.min.js").read_text()


def _pages(seeded: Seeded) -> dict[str, str]:
    p, runs = f"/p/{seeded.project}", seeded.runs
    return {
        "runs": f"{p}/runs",
        "run": f"{p}/runs/{runs['lr-0.1']}",
        "hostile run": f"{p}/runs/{runs['hostile']}",
        "compare": f"{p}/compare?run={runs['lr-0.1']}&run={runs['lr-0.01']}&run={runs['spiky']}",
        "long names": f"{p}/runs/{runs['long']}",
        "compare long names": f"{p}/compare?run={runs['long']}&run={runs['hostile']}"
        f"&run={runs['lr-0.1']}",
        "logged run": f"{p}/runs/{runs['logged']}",
        "lineage": f"{p}/lineage?run={runs['train']}",
        "models": f"{p}/models",
        "prompts": f"{p}/prompts",
        "paired": f"{p}/prompts/sentiment/paired?a={seeded.evals[0]}&b={seeded.evals[1]}",
        "signing key": "/keys",
        "pipeline": f"{p}/pipeline",
    }


@pytest.mark.parametrize("width,height", [(1280, 800), (390, 844)])
def test_every_page_passes_axe_and_fits_the_screen(
    browser: Any, seeded: Seeded, width: int, height: int
) -> None:
    approver = seeded.server.token_for(f"a11y-{width}", "approver", seeded.project)
    context, tab, errors = logged_in(browser, seeded, approver, bypass_csp=True)  # every form
    tab.set_viewport_size({"width": width, "height": height})
    found: dict[str, list[str]] = {}
    for name, path in _pages(seeded).items():
        tab.goto(seeded.server.url + path)
        tab.wait_for_load_state("networkidle")
        tab.evaluate(AXE)
        result = tab.evaluate("axe.run(document, {resultTypes: ['violations']})")
        serious = [
            f"{v['id']} ({v['impact']}): {v['nodes'][0]['target']}"
            for v in result["violations"]
            if v["impact"] in ("serious", "critical")
        ]
        if serious:
            found[name] = serious
        assert tab.evaluate("document.documentElement.scrollWidth <= window.innerWidth"), (
            name,
            tab.evaluate(WIDE),
        )
    context.close()
    assert found == {}
    assert errors == []


def test_the_keyboard_reaches_every_link_with_a_visible_focus(page: Any, seeded: Seeded) -> None:
    page.goto(f"{seeded.server.url}/p/{seeded.project}/runs/{seeded.runs['lr-0.1']}")
    links = page.locator("main a:visible, main button:visible").count()
    seen = set()
    for _ in range(links + 40):
        page.keyboard.press("Tab")
        focused = page.evaluate(
            """() => { const e = document.activeElement;
                 const s = getComputedStyle(e);
                 return [e.tagName + ':' + (e.getAttribute('href') || e.textContent.trim()),
                         s.outlineStyle !== 'none' && parseFloat(s.outlineWidth) > 0]; }"""
        )
        if focused[0].startswith(("A:", "BUTTON:")):
            assert focused[1], f"no visible focus on {focused[0]}"
            seen.add(focused[0])
    hrefs = page.locator("main a:visible").evaluate_all(
        "els => els.map(e => 'A:' + e.getAttribute('href'))"
    )
    assert set(hrefs) <= seen
