"""A self-contained HTML report of one or more evals (no scripts, no external files)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tether.prompts.evaluate import EvalResult

PAGE = Path(__file__).with_name("report.html.jinja2")


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value * 1000:.0f} ms"


def eval_html(results: Sequence[EvalResult]) -> str:
    """Every eval in one page: a summary row each, then each case's answer and checks. Model
    output is escaped (autoescape), so an answer holding HTML cannot inject into the page."""
    import jinja2

    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    return env.from_string(PAGE.read_text()).render(results=list(results), seconds=_seconds)
