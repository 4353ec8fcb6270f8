"""What `tether reproduce` concludes: each output and metric checked against the original run,
and the verdict (REPRODUCED, DIFFERENT or FAILED) with its exit code."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Any

from tether.repro.freshenv import FreshEnv
from tether.runs import catalog, compare
from tether.runs.record import number
from tether.workspace.repo import Workspace

REPRODUCED, DIFFERENT, FAILED = "REPRODUCED", "DIFFERENT", "FAILED"
EXIT = {REPRODUCED: 0, DIFFERENT: 1, FAILED: 3}
MODES = ("exact", "metrics", "none")  # how an output is judged


class Failed(Exception):
    """Why a reproduction could not be carried out."""


def stop_if_interrupted(status: str | None, exit_code: int | None) -> None:
    """A re-run Ctrl-C stopped (it died of SIGINT, or caught it and exited while the launcher
    saw the Ctrl-C too: sealed ``killed`` below 128): the user stopped the reproduction, which
    unwinds (its worktree removed) with no verdict."""
    if status == "killed" and exit_code is not None and (exit_code == 130 or exit_code < 128):
        raise KeyboardInterrupt


@dataclass
class OutCheck:
    path: str
    mode: str  # exact | metrics | none
    original: str | None
    now: str | None

    @property
    def ok(self) -> bool:
        """``none`` ignores the output; ``metrics`` needs it written, in any bytes."""
        if self.mode == "none":
            return True
        return self.now is not None and (self.mode != "exact" or self.original == self.now)


@dataclass
class MetricCheck:
    key: str
    original: float
    now: float | None
    tolerance: float  # relative

    @property
    def ok(self) -> bool:
        if self.now is None:
            return False
        if self.original == self.now:  # equal infinities too (their difference is NaN)
            return True
        if math.isnan(self.original) or math.isnan(self.now):
            return math.isnan(self.original) and math.isnan(self.now)
        if math.isinf(self.original) or math.isinf(self.now):
            return False  # no tolerance bridges to an infinity (inf - 5 <= 1% of inf)
        scale = max(abs(self.original), abs(self.now))
        return abs(self.original - self.now) <= self.tolerance * scale


@dataclass
class Verdict:
    verdict: str
    run: str
    reproduction: str | None = None
    reason: str = ""
    drift: compare.EnvDiff | None = None
    outputs: list[OutCheck] = field(default_factory=list)
    metrics: list[MetricCheck] = field(default_factory=list)
    explanation: compare.RunDiff | None = None
    worktree: str | None = None
    fresh_env: FreshEnv | None = None  # with --env fresh: what was built
    withheld: list[str] = field(default_factory=list)  # variables the re-run did not get
    started: bool = False  # whether the re-run's command (or a stage's) started at all

    @property
    def exit_code(self) -> int:
        return EXIT[self.verdict]

    @property
    def all_ok(self) -> bool:
        return all(c.ok for c in self.outputs) and all(c.ok for c in self.metrics)

    @property
    def judged(self) -> bool:
        """Whether anything was compared: an output by its bytes, or a metric."""
        return judged(self.outputs, self.metrics)


def judged(outputs: list[OutCheck], metrics: list[MetricCheck]) -> bool:
    """Whether these checks compare anything: an output judged ``metrics`` or ``none`` only
    has to exist, so without a metric such outputs alone say nothing about the result."""
    return bool(metrics) or any(o.mode == "exact" for o in outputs)


def nothing_judged(outputs: list[OutCheck]) -> str:
    """Why a reproduction whose checks all passed compared nothing, and what to do."""
    return (
        "nothing left to compare: "
        + (", ".join(f"{o.path} ({o.mode})" for o in outputs) or "no output")
        + " not judged by bytes and no metric logged, so a match says nothing: compare an "
        "output exactly (`-c PATH=exact`, or `compare: exact` in pipeline.yaml) or log a metric"
    )


def checks(
    original: dict[str, Any],
    again: dict[str, Any],
    tolerances: dict[str, float],
    modes: dict[str, str],
) -> tuple[list[OutCheck], list[MetricCheck]]:
    """Every output and metric of ``original`` against ``again``."""
    outs_a = (original.get("data") or {}).get("outputs") or {}
    outs_b = (again.get("data") or {}).get("outputs") or {}
    outs = [
        OutCheck(path, modes.get(path, "exact"), oid, outs_b.get(path))
        for path, oid in sorted(outs_a.items())
        if not os.path.isabs(path)  # outside the repository: never read, so not compared
    ]
    metrics = []
    for key, m in sorted((original.get("metrics") or {}).items()):
        now = (again.get("metrics") or {}).get(key)
        metrics.append(
            MetricCheck(
                key,
                number(m["last"]),
                None if now is None else number(now["last"]),
                tolerances.get(key, 0.0),
            )
        )
    return outs, metrics


def judge(
    ws: Workspace,
    verdict: Verdict,
    original: dict[str, Any],
    again: dict[str, Any],
    tolerances: dict[str, float],
    modes: dict[str, str],
) -> None:
    verdict.outputs, verdict.metrics = checks(original, again, tolerances, modes)
    _children(ws, verdict, original["id"], again["id"], "", tolerances, modes)
    if not verdict.outputs and not verdict.metrics:
        raise Failed(
            "the run recorded no outputs and no metrics, so there is nothing to compare: log "
            "them (tether.log_output, tether.log_metric), or declare them (`tether run --out`, "
            "a stage's outs)"
        )
    if verdict.all_ok and not verdict.judged:
        raise Failed(nothing_judged(verdict.outputs))
    if verdict.all_ok:
        verdict.verdict = REPRODUCED
    else:
        verdict.verdict = DIFFERENT
        verdict.explanation = compare.diff(ws, original, again)


def _children(
    ws: Workspace,
    verdict: Verdict,
    old_id: str,
    new_id: str | None,
    prefix: str,
    tolerances: dict[str, float],
    modes: dict[str, str],
) -> None:
    """The runs the original started inside its command (``tether.start_run()`` under
    ``tether run``), each judged against the reproduction's child of the same name (in the
    order they started, for a name several bear), their outs and metrics named ``child:key``.
    A tolerance or mode given as ``child:key`` is that child's."""
    again = _kids(ws, new_id)
    for label, kid in _kids(ws, old_id).items():
        mine = f"{prefix}{label}:"
        limits = {
            **tolerances,
            **{k[len(mine) :]: v for k, v in tolerances.items() if k.startswith(mine)},
        }
        how = {**modes, **{k[len(mine) :]: v for k, v in modes.items() if k.startswith(mine)}}
        now = again.get(label)
        outs, metrics = checks(
            catalog.load(ws, kid), catalog.load(ws, now) if now else {}, limits, how
        )
        verdict.outputs += [OutCheck(mine + o.path, o.mode, o.original, o.now) for o in outs]
        verdict.metrics += [
            MetricCheck(mine + m.key, m.original, m.now, m.tolerance) for m in metrics
        ]
        _children(ws, verdict, kid, now, f"{prefix}{label}/", tolerances, modes)


def _kids(ws: Workspace, run_id: str | None) -> dict[str, str]:
    """A run's children by label: the name, or ``name[N]`` for the Nth of a name several bear."""
    if run_id is None:
        return {}
    found = sorted(catalog.search(ws, f"parent = '{run_id}'"), key=lambda r: (r.started, r.id))
    names = [r.name for r in found]
    seen: dict[str, int] = {}
    out = {}
    for run in found:
        seen[run.name] = seen.get(run.name, 0) + 1
        shared = names.count(run.name) > 1
        out[f"{run.name}[{seen[run.name]}]" if shared else run.name] = run.id
    return out
