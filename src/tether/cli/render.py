"""Small shared renderers: sizes, JSON output."""

from __future__ import annotations

import json
from typing import Any

import click


def human_size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def echo_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, sort_keys=True))


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
