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
