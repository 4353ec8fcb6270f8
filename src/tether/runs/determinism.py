"""``tether run --check-determinism``: run a command twice and say what came out different —
the quickest way to find an unseeded random generator."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from tether.runs import catalog
from tether.runs.launch import Launched, launch
from tether.runs.record import number
from tether.workspace.repo import Workspace


@dataclass
class DeterminismReport:
    runs: list[Launched]
    outputs: dict[str, tuple[str | None, str | None]] = field(default_factory=dict)
    metrics: dict[str, tuple[float | None, float | None]] = field(default_factory=dict)

    @property
    def deterministic(self) -> bool:
        return (
            all(r.status == "finished" for r in self.runs) and not self.outputs and not self.metrics
        )


def check_determinism(ws: Workspace, command: list[str], **kwargs: Any) -> DeterminismReport:
    name = kwargs.pop("name", None)
    tags = dict(kwargs.pop("tags", None) or {})
    runs = []
    for attempt in (1, 2):
        label = f"{name}-{attempt}" if name else None
        runs.append(
            launch(
                ws, command, name=label, tags={**tags, "determinism_check": str(attempt)}, **kwargs
            )
        )
    a, b = (catalog.load(ws, r.run_id) for r in runs)
    report = DeterminismReport(runs)
    outs_a = (a.get("data") or {}).get("outputs") or {}
    outs_b = (b.get("data") or {}).get("outputs") or {}
    report.outputs = {
        p: (outs_a.get(p), outs_b.get(p))
        for p in sorted(set(outs_a) | set(outs_b))
        if outs_a.get(p) != outs_b.get(p)
    }
    ma, mb = a.get("metrics") or {}, b.get("metrics") or {}
    for key in sorted(set(ma) | set(mb)):
        va = number(ma[key]["last"]) if key in ma else None
        vb = number(mb[key]["last"]) if key in mb else None
        if not _same(va, vb):
            report.metrics[key] = (va, vb)
    return report


def _same(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is b
    return a == b or (math.isnan(a) and math.isnan(b))
