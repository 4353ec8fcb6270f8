"""Tables for runs: the list, one record, a side-by-side comparison (rich)."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from tether.api import Comparison, IndexedRun

STATUS = {"running": "cyan", "finished": "green", "failed": "red", "killed": "yellow"}
WIDE = 6  # params/metrics columns shown in the list


def console() -> Console:
    """On a terminal, its width; into a pipe or a file, wide enough that no column is cut
    (rich would otherwise assume 80 columns and drop the params and metrics)."""
    import os
    import sys

    wide = None if sys.stdout.isatty() or os.environ.get("COLUMNS") else 1000
    return Console(highlight=False, soft_wrap=False, width=wide)


def fmt_number(value: float | None) -> str:
    if value is None:
        return ""
    if math.isnan(value) or math.isinf(value):
        return str(value)
    return f"{value:.6g}"


def when(ts: float | None) -> str:
    if ts is None:
        return ""
    return dt.datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S")


def runs_table(found: Sequence[IndexedRun]) -> None:
    params = _common_keys([r.params for r in found])
    metrics = _common_keys([r.metrics for r in found])
    table = Table(box=None, header_style="bold")
    names = {r.id: r.name for r in found}  # a child shows its parent's name when listed too
    parents = [names.get(r.parent, r.parent[:13]) if r.parent else "" for r in found]
    titles = ("id", "name", *(("parent",) if any(parents) else ()), "experiment", "status")
    for title in (*titles, "started", "secs"):
        table.add_column(title, no_wrap=True)
    for key in params:
        table.add_column(f"params.{key}", style="blue")
    for key in metrics:
        table.add_column(f"metrics.{key}", style="magenta", justify="right")
    for r, parent in zip(found, parents, strict=True):
        table.add_row(
            r.id[:13],
            r.name,
            *((parent,) if any(parents) else ()),
            r.experiment,
            f"[{STATUS.get(r.status, 'white')}]{r.status}[/]",
            when(r.started),
            "" if r.duration is None else f"{r.duration:.1f}",
            *(r.params.get(k, "") for k in params),
            *(fmt_number(r.metrics[k].last) if k in r.metrics else "" for k in metrics),
        )
    console().print(table)


def _common_keys(dicts: Sequence[dict[str, Any]]) -> list[str]:
    counts: dict[str, int] = {}
    for d in dicts:
        for k in d:
            counts[k] = counts.get(k, 0) + 1
    return sorted(counts, key=lambda k: (-counts[k], k))[:WIDE]


def record_view(record: dict[str, Any]) -> None:
    out = console()
    status = record["status"]
    out.print(
        f"[bold]{record['name']}[/]  {record['id']}  [{STATUS.get(status, 'white')}]{status}[/]"
    )
    out.print(
        f"experiment {record['experiment']}   started {when(record['started'])}   "
        f"ended {when(record.get('ended'))}"
        + (f"   exit {record['exit_code']}" if record.get("exit_code") is not None else "")
    )
    out.print(f"command    {' '.join(record.get('command') or [])}")
    code = record.get("code") or {}
    dirty = (
        f"dirty ({len(code.get('changed') or [])} files, diff {str(code.get('diff'))[:19]})"
        if code.get("dirty")
        else "clean"
    )
    out.print(
        f"code       {code.get('commit')} on {code.get('branch')}  {dirty}  "
        f"{code.get('remote') or ''}"
    )
    out.print(f"env        {record.get('env')}")
    for title, values in (("params", record.get("params")), ("tags", record.get("tags"))):
        if values:
            table = Table(title=title, box=None, title_justify="left", header_style="bold")
            table.add_column("key")
            table.add_column("value")
            for k, v in sorted(values.items()):
                table.add_row(k, str(v))
            out.print(table)
    _metrics(out, record.get("metrics") or {})
    data = record.get("data") or {}
    rows = [
        (role.replace("pointers_start", "tracked").rstrip("s"), path, oid)
        for role in ("inputs", "outputs", "pointers_start")
        for path, oid in sorted((data.get(role) or {}).items())
    ]
    rows += [
        ("artifact", name, oid) for name, oid in sorted((record.get("artifacts") or {}).items())
    ]
    if rows:
        table = Table(title="data", box=None, title_justify="left", header_style="bold")
        for col in ("role", "path", "id"):
            table.add_column(col, overflow="fold")
        for row in rows:
            table.add_row(*row)
        out.print(table)
    if record.get("seeds"):
        out.print(f"seeds      {', '.join(str(s) for s in record['seeds'])}")
    for text in record.get("notes") or []:
        out.print(f"note       {text}")


def _metrics(out: Console, metrics: dict[str, Any]) -> None:
    from tether.api import metric_value as number

    if not metrics:
        return
    table = Table(title="metrics", box=None, title_justify="left", header_style="bold")
    for col in ("key", "last", "min", "max", "step", "points"):
        table.add_column(col, justify="left" if col == "key" else "right")
    for k, m in sorted(metrics.items()):
        table.add_row(
            k,
            *(fmt_number(number(m[c])) for c in ("last", "min", "max")),
            str(m["step"]),
            str(m["count"]),
        )
    out.print(table)


def comparison_table(cmp: Comparison) -> None:
    table = Table(box=None, header_style="bold")
    table.add_column("")
    for head in cmp.runs:
        table.add_column(f"{head['name']}\n{head['id'][:13]}", justify="right")
    for key, values in cmp.params.items():
        style = "bold yellow" if f"params.{key}" in cmp.differ else None
        table.add_row(f"params.{key}", *("" if v is None else v for v in values), style=style)
    for key, nums in cmp.metrics.items():
        style = "bold yellow" if f"metrics.{key}" in cmp.differ else None
        table.add_row(f"metrics.{key}", *(fmt_number(v) for v in nums), style=style)
    console().print(table)
