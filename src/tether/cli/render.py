"""Small shared renderers: sizes, JSON output."""

from __future__ import annotations

import json
import math
from typing import Any

import click


def human_size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def human_duration(seconds: float) -> str:
    """``14 days``, ``12 h``, ``30 min``, ``90 s``: the largest unit that says it whole."""
    for size, unit in ((86400, " day"), (3600, " h"), (60, " min")):
        if seconds >= size and seconds % size == 0:
            n = int(seconds // size)
            return f"{n}{unit}" + ("s" if unit == " day" and n != 1 else "")
    return f"{seconds:g} s"


def echo_json(value: Any) -> None:
    """Strict JSON, as jq and other languages' parsers read it: a NaN is null and an infinity
    the text "Infinity" or "-Infinity", as in run records."""
    click.echo(json.dumps(_strict(value), indent=2, sort_keys=True, allow_nan=False))


def _strict(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, dict):
        return {k: _strict(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_strict(v) for v in value]
    return value


def parse_pairs(items: tuple[str, ...] | list[str], what: str = "KEY=VALUE") -> dict[str, str]:
    """``KEY=VALUE`` arguments (tags, tolerances, compare modes) as a dict."""
    from tether.errors import UsageError

    out = {}
    for item in items:
        key, eq, value = item.partition("=")
        if not eq or not key:
            raise UsageError(f"{item!r} is not {what}")
        out[key] = value
    return out


def echo_pulled(pulled: Any, remote: str, what: str, push: str, pull: str) -> bool:
    """What a pull of an event log (``what``: "registry", "label") did: how many events
    arrived, the outcome, and each event refused; whether any was (the command exits 1)."""
    click.echo(f"{pulled.arrived} new {what} events from {remote}")
    outcome = pulled.outcome
    if outcome == "ahead":
        click.echo(f"this clone is ahead of {remote} by {pulled.unpushed} event(s): `{push}`")
    elif outcome == "fast-forward":
        click.echo(f"fast-forwarded to {remote}'s log")
    elif outcome == "merged":
        click.echo(
            f"both sides moved on: merge event {pulled.merge[7:19]} joins this clone's log and "
            f"{remote}'s; `{push}` sends it"
        )
    elif outcome == "discarded":
        click.echo(f"dropped {pulled.dropped} local event(s) {remote} does not have; the log is "
                   f"{remote}'s now")  # fmt: skip
    elif outcome == "up to date":
        click.echo(f"up to date with {remote}")
    if pulled.refused:
        click.secho(f"refused {len(pulled.refused)} event(s): "
                    + "; ".join(str(r) for r in pulled.refused), fg="red", err=True)  # fmt: skip
        click.secho(f"nothing from the first refused event on was taken; `{pull}` again once "
                    f"{remote}'s log is repaired", fg="red", err=True)  # fmt: skip
    return bool(pulled.refused)
