"""Reproducing pipeline runs: one stage's run again through the pipeline, or a whole pipeline run
(every stage re-run in the rebuilt worktree, never from the run cache) judged stage by stage.

A whole pipeline run may have run none of its stages itself: those up to date were kept, those
seen before were restored from the run cache. What it had for such a stage is the stage run its
outs came from: the one its ``pipeline.lock`` named when it started, or else the newest run of
the stage with the same command, inputs and params sealed before it started (what the run cache
held then). Each is compared with the reproduction's run of that stage.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tether.pipelines import execute
from tether.pipelines import plan as plans
from tether.pipelines.lock import StageLock, read_lock
from tether.pipelines.spec import PipelineError, load_pipeline
from tether.repro.verdict import (
    DIFFERENT,
    FAILED,
    REPRODUCED,
    Failed,
    MetricCheck,
    OutCheck,
    Verdict,
    checks,
    judged,
    nothing_judged,
    stop_if_interrupted,
)
from tether.runs import catalog, compare
from tether.runs.amend import amend
from tether.workspace.repo import Workspace


def rerun_stage(copy: Workspace, stage: str, run_id: str) -> str:
    """Run one stage again in the rebuilt worktree (its inputs restored there): the new run."""
    try:
        whole = plans.plan(copy, [stage], run_cache=False)
    except PipelineError as exc:
        raise Failed(f"the pipeline at that commit cannot run stage {stage}: {exc}") from exc
    (sp,) = [s for s in whole.stages if s.stage.name == stage]
    sp.action, sp.reasons = "run", ["reproduction"]
    single = plans.Plan(whole.pipeline, [sp], whole.lock)
    result = execute.repro(copy, single, [stage], tags={"reproduction_of": run_id}, use_cache=False)
    (res,) = result.results
    _stop_if_interrupted(copy, [res.run])
    if res.outcome != "ran" or res.run is None:
        raise Failed(f"stage {stage} {res.outcome} on re-run: {res.detail}")
    return res.run


def _stop_if_interrupted(ws: Workspace, runs: list[str | None]) -> None:
    """A stage Ctrl-C stopped stops the reproduction (no verdict), as a plain run's does."""
    for run in runs:
        if run is not None and ws.refs.get(f"runs/{run}") is not None:
            record = catalog.load(ws, run)
            stop_if_interrupted(record.get("status"), record.get("exit_code"))


def stage_modes(tree: Path, record: dict[str, Any]) -> dict[str, str]:
    """A pipeline stage's outs say how to compare them (``compare:`` in pipeline.yaml)."""
    stage = (record.get("tags") or {}).get("stage")
    if not stage:
        return {}
    try:
        found = load_pipeline(tree).stages.get(stage)
    except PipelineError:
        return {}
    return {o.path: o.compare for o in found.outs} if found else {}


def with_sources(ws: Workspace, tree: Path, record: dict[str, Any]) -> dict[str, Any]:
    """The pipeline run's record with, as its inputs, what its stages read that no stage makes
    (raw data, perhaps edited and not added since): restored before the pipeline runs again."""
    try:
        stages = load_pipeline(tree).stages.values()
    except PipelineError:
        return record
    made = [p for s in stages for p in (*s.out_paths, *s.metrics)]
    sources = dict((record.get("data") or {}).get("inputs") or {})
    for run in catalog.search(ws, f"parent = '{record['id']}'"):
        for path, oid in _inputs(catalog.load(ws, run.id)).items():
            if not any(path == m or path.startswith(m + "/") for m in made):
                sources.setdefault(path, oid)
    return {**record, "data": {**(record.get("data") or {}), "inputs": sources}}


def reproduce_pipeline(
    ws: Workspace,
    copy: Workspace,
    verdict: Verdict,
    record: dict[str, Any],
    tolerances: dict[str, float],
    modes: dict[str, str],
) -> None:
    """Run the pipeline ``record`` ran (its targets) in ``copy``, every stage, no run cache;
    judge each stage against what the pipeline run had for it; the verdict is the worst."""
    started = _lock_at_start(copy)
    targets = _targets(record)
    try:
        whole = plans.plan(copy, targets, force=True, run_cache=False)
    except PipelineError as exc:
        raise Failed(f"the pipeline at that commit cannot run: {exc}") from exc
    tags = {"reproduction_of": verdict.run}
    result = execute.repro(copy, whole, targets, tags=tags, use_cache=False)
    verdict.reproduction = result.run
    if not result.ok:
        _stop_if_interrupted(copy, [r.run for r in result.results if r.outcome != "ran"])
        bad = [f"{r.name} {r.outcome}: {r.detail}" for r in result.results if r.outcome != "ran"]
        raise Failed("stages did not re-run: " + "; ".join(bad))
    ran_then = {r.tags.get("stage"): r.id for r in catalog.search(ws, f"parent = '{verdict.run}'")}
    unknown: list[str] = []
    restored: list[str] = []
    for res in sorted(result.results, key=lambda r: r.name):
        again = catalog.load(ws, str(res.run))
        old_id = ran_then.get(res.name) or _restored_from(ws, record, res.name, again, started)
        if old_id is None:
            unknown.append(res.name)
            continue
        old = catalog.load(ws, old_id)
        how = {**stage_modes(copy.root, old), **modes}  # pipeline.yaml as it was
        same = _judge_stage(ws, verdict, res.name, old, again, tolerances, how)
        if not same and res.name not in ran_then:  # what it is compared with, and why
            restored.append(_restored_note(res.name, old))
    _conclude(verdict, unknown)
    verdict.reason = "; ".join(filter(None, [verdict.reason, *restored]))


def _restored_note(stage: str, old: dict[str, Any]) -> str:
    commit = str((old.get("code") or {}).get("commit") or "")[:10] or "(none)"
    return (
        f"the pipeline run did not run stage {stage}: it restored its outs from the cache, made "
        f"by stage run {old['id']} at commit {commit} with the same command, deps and params; "
        "that run is what the reproduction is compared with"
    )


def _judge_stage(
    ws: Workspace,
    verdict: Verdict,
    stage: str,
    old: dict[str, Any],
    again: dict[str, Any],
    tolerances: dict[str, float],
    modes: dict[str, str],
) -> bool:
    """The stage's outs and metrics, named ``stage:path``, added to the pipeline's verdict.
    A tolerance or mode given as ``stage:key`` (as the verdict names it) is this stage's. The
    new stage run is tagged as a reproduction of the stage run it was judged against, with
    that stage's verdict (a registry gate asks it of a model made by that stage). True when
    every check passed."""
    mine = stage + ":"
    limits = {
        **tolerances,
        **{k[len(mine) :]: v for k, v in tolerances.items() if k.startswith(mine)},
    }
    modes = {**modes, **{k[len(mine) :]: v for k, v in modes.items() if k.startswith(mine)}}
    outs, metrics = checks(old, again, limits, modes)
    verdict.outputs += [OutCheck(f"{stage}:{o.path}", o.mode, o.original, o.now) for o in outs]
    verdict.metrics += [
        MetricCheck(f"{stage}:{m.key}", m.original, m.now, m.tolerance) for m in metrics
    ]
    ok = all(o.ok for o in outs) and all(m.ok for m in metrics)
    if not ok:
        verdict.explanation = verdict.explanation or compare.diff(ws, old, again)
    # a stage that compared nothing (its outs not judged by bytes, no metric) is no match
    said = DIFFERENT if not ok else REPRODUCED if judged(outs, metrics) else FAILED
    tags = {"reproduction_of": old["id"], "verdict": said}
    amend(ws, again["id"], tags=tags)
    return ok


def _conclude(verdict: Verdict, unknown: list[str]) -> None:
    if not verdict.all_ok:
        verdict.verdict = DIFFERENT
        if unknown:
            verdict.reason = (
                f"what the pipeline run had for {', '.join(unknown)} is not known: no run of it "
                "with these inputs came before (a stage it needs came out different)"
            )
    elif unknown:
        verdict.verdict = FAILED
        verdict.reason = (
            f"what the pipeline run had for {', '.join(unknown)} cannot be found: the stage run "
            "its outs came from was deleted"
        )
    elif not verdict.outputs and not verdict.metrics:
        raise Failed("the pipeline's stages recorded no outs and no metrics: nothing to compare")
    elif not verdict.judged:
        raise Failed(nothing_judged(verdict.outputs))
    else:
        verdict.verdict = REPRODUCED


def _targets(record: dict[str, Any]) -> list[str] | None:
    """The stages the pipeline run was asked for (``tether repro TARGET...``); None: all."""
    argv = list(record.get("command") or [])
    return argv[2:] or None if argv[:2] == ["tether", "repro"] else None


def _lock_at_start(copy: Workspace) -> dict[str, StageLock]:
    """``pipeline.lock`` as the pipeline run found it: the rebuilt tree's, before it runs."""
    try:
        return read_lock(copy.root)
    except PipelineError:
        return {}


def _restored_from(
    ws: Workspace,
    pipeline: dict[str, Any],
    stage: str,
    again: dict[str, Any],
    lock: dict[str, StageLock],
) -> str | None:
    """The stage run whose outs the pipeline run kept or restored for ``stage`` instead of
    running it: it ran the same command on the same inputs with the same params."""
    same = (again.get("command"), _inputs(again), again.get("params"))

    def alike(run_id: str | None) -> bool:
        if run_id is None or ws.refs.get(f"runs/{run_id}") is None:
            return False
        old = catalog.load(ws, run_id)
        return (
            old.get("status") == "finished"
            and (old.get("command"), _inputs(old), old.get("params")) == same
        )

    entry = lock.get(stage)
    if entry is not None and alike(entry.run):
        return entry.run
    before = float(pipeline.get("started") or 0)
    earlier = [
        r
        for r in catalog.search(ws, f"tags.stage = {_quoted(stage)} and status = 'finished'")
        if r.started < before and r.id != pipeline.get("id")
    ]
    for run in sorted(earlier, key=lambda r: r.started, reverse=True):
        if alike(run.id):
            return run.id
    return None


def _inputs(record: dict[str, Any]) -> dict[str, str]:
    return dict((record.get("data") or {}).get("inputs") or {})


def _quoted(text: str) -> str:
    """A value as the run query language quotes it (a backslash escapes)."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"
