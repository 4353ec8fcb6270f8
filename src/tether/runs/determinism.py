"""``tether run --check-determinism``: run a command twice and say what came out different —
the quickest way to find an unseeded random generator.

Both runs get the same ``--dep`` and ``--out``. Each declared out is moved out of the way (its
bytes kept in the cache) before each run, so a run that does not write it is noticed instead of
the other run's file being recorded twice; when the last run did not write it, the newest
version written (or what was there before) comes back."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from tether._fs import remove_path
from tether.errors import PathError
from tether.runs import catalog
from tether.runs.launch import Launched, launch
from tether.runs.record import number
from tether.workspace.materialize import keep_current, materialize
from tether.workspace.repo import Workspace


@dataclass
class DeterminismReport:
    runs: list[Launched]
    outputs: dict[str, tuple[str | None, str | None]] = field(default_factory=dict)  # differ
    metrics: dict[str, tuple[float | None, float | None]] = field(default_factory=dict)  # differ
    compared: list[str] = field(default_factory=list)  # outputs and metrics both runs had
    unwritten: list[str] = field(default_factory=list)  # declared outs neither run wrote

    @property
    def nothing_to_compare(self) -> bool:
        return not self.compared and not self.outputs and not self.metrics

    @property
    def verdict(self) -> str:
        """``deterministic``, ``not deterministic``, ``nothing to compare`` (neither run
        recorded an output or a metric) or ``failed`` (the command failed both times)."""
        finished = [r.status == "finished" for r in self.runs]
        if not any(finished):
            return "failed"
        if all(finished) and self.nothing_to_compare:
            return "nothing to compare"
        if all(finished) and not self.outputs and not self.metrics:
            return "deterministic"
        return "not deterministic"

    @property
    def deterministic(self) -> bool:
        return self.verdict == "deterministic"


def check_determinism(
    ws: Workspace,
    command: list[str],
    *,
    deps: list[str] | None = None,
    outs: list[str] | None = None,
    **kwargs: Any,
) -> DeterminismReport:
    """Run ``command`` twice (``kwargs`` as :func:`launch` takes them) and compare the runs'
    outputs (declared with ``outs`` or logged) and metrics."""
    name = kwargs.pop("name", None)
    tags = dict(kwargs.pop("tags", None) or {})
    held = _inside(ws, deps or [])
    inside = [o for o in _inside(ws, outs or []) if not any(_overlap(o, d) for d in held)]
    before = {rel: keep_current(ws, rel) for rel in inside}
    runs = []
    try:
        for attempt in (1, 2):
            for rel in inside:
                _clear(ws, rel)
            label = f"{name}-{attempt}" if name else None
            tagged = {**tags, "determinism_check": str(attempt)}
            runs.append(
                launch(ws, command, name=label, tags=tagged, deps=deps, outs=outs, **kwargs)
            )
            for rel in inside:
                before[rel] = keep_current(ws, rel) or before[rel]  # the newest written
    finally:
        for rel, oid in before.items():
            if oid is not None and not ws.abs(rel).exists() and ws.store.has(oid):
                materialize(ws, rel, oid)  # the last run did not write it: the newest back
    report = _compare(ws, runs)
    report.unwritten = sorted(set(runs[0].missing_outs) & set(runs[1].missing_outs))
    return report


def _inside(ws: Workspace, paths: list[str]) -> list[str]:
    """Declared paths inside the repository, repository-relative (one outside is left as it
    is)."""
    found = []
    for out in paths:
        try:
            found.append(ws.rel(out))
        except PathError:
            continue
    return found


def _overlap(a: str, b: str) -> bool:
    """One path is the other or inside it: such an out is a dep too, and is never removed."""
    return a == b or a.startswith(b + "/") or b.startswith(a + "/")


def _clear(ws: Workspace, rel: str) -> None:
    path = ws.abs(rel)
    keep_current(ws, rel)  # a run's out is in the cache already; this is for anything else
    remove_path(path)


def _compare(ws: Workspace, runs: list[Launched]) -> DeterminismReport:
    a, b = (catalog.load(ws, r.run_id) for r in runs)
    report = DeterminismReport(runs)
    outs_a = (a.get("data") or {}).get("outputs") or {}
    outs_b = (b.get("data") or {}).get("outputs") or {}
    for path in sorted(set(outs_a) | set(outs_b)):
        if outs_a.get(path) != outs_b.get(path):
            report.outputs[path] = (outs_a.get(path), outs_b.get(path))
        else:
            report.compared.append(f"output {path}")
    ma, mb = a.get("metrics") or {}, b.get("metrics") or {}
    for key in sorted(set(ma) | set(mb)):
        va = number(ma[key]["last"]) if key in ma else None
        vb = number(mb[key]["last"]) if key in mb else None
        if not _same(va, vb):
            report.metrics[key] = (va, vb)
        else:
            report.compared.append(f"metric {key}")
    return report


def _same(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is b
    return a == b or (math.isnan(a) and math.isnan(b))
