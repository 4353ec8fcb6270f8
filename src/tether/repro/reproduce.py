"""``tether reproduce RUN``: rebuild a past run exactly and say whether it comes out the same.

A clean git worktree at the run's commit gets the recorded diff applied, its tracked data
checked out and its logged inputs restored by id (fetched from the remote when the cache lacks
them); the environment is compared with the recorded one; the recorded command re-runs there
as a new run tagged ``reproduction_of``; outputs are compared by their ``compare`` mode and
metrics within tolerances. The verdict is REPRODUCED, DIFFERENT (with the four-pillar
explanation) or FAILED (with the reason).
"""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tether.capture.env import capture_environment
from tether.errors import MissingObjectError, UsageError
from tether.gitio import git, git_maybe
from tether.gitio.repo import DOT
from tether.redact import MASK
from tether.repro import freshenv
from tether.repro.freshenv import FreshEnv
from tether.runs import catalog, compare, launch
from tether.workspace.materialize import materialize
from tether.workspace.repo import Workspace
from tether.workspace.status import content_id

REPRODUCED, DIFFERENT, FAILED = "REPRODUCED", "DIFFERENT", "FAILED"
EXIT = {REPRODUCED: 0, DIFFERENT: 1, FAILED: 3}
MODES = ("exact", "metrics", "none")  # how an output is judged


class Failed(Exception):
    """Why a reproduction could not be carried out."""


@dataclass
class OutCheck:
    path: str
    mode: str  # exact | metrics | none
    original: str | None
    now: str | None

    @property
    def ok(self) -> bool:
        return self.mode != "exact" or self.original == self.now


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

    @property
    def exit_code(self) -> int:
        return EXIT[self.verdict]


def reproduce(
    ws: Workspace,
    ref: str,
    *,
    tolerances: Mapping[str, float | str] | None = None,
    modes: Mapping[str, str] | None = None,
    keep: bool = False,
    fetch: Any = None,
    env: str = "current",
) -> Verdict:
    """Rebuild and re-run ``ref``; ``fetch(ids)`` brings missing objects from a remote.
    ``env="fresh"`` re-runs in a new virtual environment built from the recorded packages.
    A tolerance is relative: ``0.01`` or ``"1%"``; a mode is one of :data:`MODES`."""
    limits = {k: tolerance(k, v) for k, v in (tolerances or {}).items()}
    modes = dict(modes or {})
    for path, mode in modes.items():
        if mode not in MODES:
            raise UsageError(
                f"--compare {path}={mode}: {mode!r} is not a compare mode; use " + ", ".join(MODES)
            )
    if env not in ("current", "fresh"):
        raise UsageError(f"--env takes current or fresh, not {env!r}")
    run_id = catalog.resolve(ws, ref)
    record = catalog.load(ws, run_id)
    verdict = Verdict(FAILED, run_id)
    tree: Path | None = None
    try:
        tree = _worktree(ws, record)
        verdict.worktree = str(tree)
        if not (tree / "tether.toml").exists():  # never committed: the project's own will do
            shutil.copyfile(ws.root / "tether.toml", tree / "tether.toml")
        copy = Workspace.open(tree)
        modes = {**_stage_modes(tree, record), **(modes or {})}
        _restore_data(ws, copy, record, fetch)
        recorded = compare.environment(ws, record)
        verdict.drift = compare.env_drift(recorded, _env_now(copy))
        with _environment(verdict, recorded, env, tree):
            if (record.get("tags") or {}).get("kind") == "pipeline":
                _reproduce_pipeline(ws, copy, verdict, record, limits, modes)
            else:
                new_id = _rerun(copy, record, run_id, tree, verdict.fresh_env)
                verdict.reproduction = new_id
                again = catalog.load(ws, new_id)
                _judge(ws, verdict, record, again, limits, modes)
    except Failed as exc:
        verdict.verdict, verdict.reason = FAILED, str(exc)
    except MissingObjectError as exc:
        verdict.verdict, verdict.reason = (
            FAILED,
            f"inputs are gone from every cache and remote: {exc}",
        )
    finally:
        if tree is not None and not keep:
            _remove_worktree(ws, tree)
            verdict.worktree = None
        if verdict.fresh_env is not None and not keep:
            shutil.rmtree(verdict.fresh_env.root, ignore_errors=True)
    if verdict.reproduction:  # the verdict travels with the run (a registry gate asks for it)
        from tether.runs.amend import amend

        amend(ws, verdict.reproduction, tags={"verdict": verdict.verdict})
    return verdict


def tolerance(key: str, value: float | str) -> float:
    """A relative tolerance from ``0.01``, ``"0.01"`` or ``"1%"``."""
    text = str(value).strip()
    try:
        number = float(text[:-1]) / 100 if text.endswith("%") else float(text)
    except ValueError:
        number = math.nan
    if not math.isfinite(number) or number < 0:
        raise UsageError(
            f"--tolerance {key}={value}: a tolerance is a relative amount, 0 or more, "
            "like 0.01 or 1%"
        )
    return number


@contextmanager
def _environment(
    verdict: Verdict, recorded: dict[str, Any], env: str, tree: Path
) -> Iterator[None]:
    """The current environment, or (``fresh``) a new one built from the record and put first
    on PATH; its drift from the record replaces the current environment's."""
    if env == "current":
        yield
        return
    where = Path(tempfile.mkdtemp(prefix="tether-env-"))
    try:
        verdict.fresh_env = freshenv.build(recorded, where)
    except freshenv.EnvBuildError as exc:
        shutil.rmtree(where, ignore_errors=True)
        raise Failed(f"the recorded environment could not be rebuilt: {exc}") from exc
    fresh = verdict.fresh_env
    now = {
        "python": {"version": fresh.interpreter},
        "platform": recorded.get("platform"),
        "packages": {n: {"version": v} for n, v in fresh.packages.items()},
        "lock_files": recorded.get("lock_files"),
        "determinism": recorded.get("determinism"),
    }
    plain = {
        **recorded,
        "packages": {
            n: {"version": i["version"]} for n, i in (recorded.get("packages") or {}).items()
        },
    }
    verdict.drift = compare.env_drift(plain, now)
    with freshenv.activated(fresh):
        yield


def _reproduce_pipeline(
    ws: Workspace,
    copy: Workspace,
    verdict: Verdict,
    record: dict[str, Any],
    tolerances: dict[str, float],
    modes: dict[str, str],
) -> None:
    """A whole pipeline run: every stage re-runs (no run cache), each is judged against the
    stage run it reproduces; the verdict is the worst of them."""
    from tether.pipelines import execute
    from tether.pipelines import plan as plans
    from tether.pipelines.spec import PipelineError

    stages = {r.tags.get("stage"): r.id for r in catalog.search(ws, f"parent = '{verdict.run}'")}
    try:
        whole = plans.plan(copy, [s for s in stages if s], force=True)
    except PipelineError as exc:
        raise Failed(f"the pipeline at that commit cannot run: {exc}") from exc
    result = execute.repro(copy, whole, tags={"reproduction_of": verdict.run}, use_cache=False)
    verdict.reproduction = result.run
    if not result.ok:
        bad = [f"{r.name} {r.outcome}: {r.detail}" for r in result.results if r.outcome != "ran"]
        raise Failed("stages did not re-run: " + "; ".join(bad))
    new = {r.name: r.run for r in result.results}
    for stage, old_id in sorted((s, i) for s, i in stages.items() if s):
        if stage not in new or new[stage] is None:
            raise Failed(f"stage {stage} is no longer in the pipeline at that commit")
        part = Verdict(FAILED, old_id)
        old, again = catalog.load(ws, old_id), catalog.load(ws, str(new[stage]))
        stage_modes = {**_stage_modes(copy.root, old), **modes}
        _judge(ws, part, old, again, tolerances, stage_modes)
        verdict.outputs += [
            OutCheck(f"{stage}:{o.path}", o.mode, o.original, o.now) for o in part.outputs
        ]
        verdict.metrics += [
            MetricCheck(f"{stage}:{m.key}", m.original, m.now, m.tolerance) for m in part.metrics
        ]
        verdict.explanation = verdict.explanation or part.explanation
    if not stages:
        raise Failed("the pipeline run has no stage runs to compare")
    ok = all(o.ok for o in verdict.outputs) and all(m.ok for m in verdict.metrics)
    verdict.verdict = REPRODUCED if ok else DIFFERENT


def _rerun(
    copy: Workspace, record: dict[str, Any], run_id: str, tree: Path, fresh: FreshEnv | None
) -> str:
    """Re-run as the original ran: a pipeline stage through the pipeline (its params, deps,
    outs and metrics files recorded the same way), anything else by its command."""
    stage = (record.get("tags") or {}).get("stage")
    if stage:
        return _rerun_stage(copy, stage, run_id)
    command = _command(record)
    if fresh is not None and Path(command[0]).name.startswith("python"):
        command = [fresh.python, *command[1:]]  # the fresh environment's interpreter
    declared = record.get("declared") or {}
    done = launch.launch(
        copy,
        command,
        name=f"{record['name']}-reproduction",
        experiment=record["experiment"],
        tags={"reproduction_of": run_id},
        cwd=_folder(tree, record),
        deps=[_in_tree(tree, p) for p in declared.get("deps") or []],
        outs=[_in_tree(tree, p) for p in declared.get("outs") or []],
    )
    if done.status != "finished":
        raise Failed(f"the re-run {done.status} (exit code {done.exit_code})")
    return done.run_id


def _folder(tree: Path, record: dict[str, Any]) -> Path:
    """Where the run was started, in the rebuilt tree (made when the commit has no such
    folder: one holding only ignored files). A record from before Tether kept it: the folder
    its entry point was named from (``sub/train.py`` run as ``train.py`` ran in ``sub``)."""
    if "cwd" not in record:
        rel = _folder_from_entry(record)
    elif record["cwd"] is None:
        raise Failed("the run was started outside the repository: re-run it by hand")
    else:
        rel = str(record["cwd"])
    if os.path.normpath(rel).startswith("..") or os.path.isabs(rel):
        raise Failed(f"the run's recorded folder {rel!r} is outside the repository")
    folder = tree / rel
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _folder_from_entry(record: dict[str, Any]) -> str:
    entry = str((record.get("code") or {}).get("entry_point") or "")
    for arg in (record.get("command") or [])[:3]:
        name = os.path.normpath(arg) if not os.path.isabs(arg) else ""
        if name and not name.startswith("..") and entry.endswith("/" + name):
            return entry[: -len(name) - 1]
    return "."


def _in_tree(tree: Path, path: str) -> str:
    """A recorded dep or out (repository-relative, or absolute outside it) in the tree."""
    if os.path.isabs(path):
        return path
    if os.path.normpath(path).startswith(".."):
        raise Failed(f"the run's recorded path {path!r} leaves the repository")
    return str(tree / path)


def _rerun_stage(copy: Workspace, stage: str, run_id: str) -> str:
    from tether.pipelines import execute
    from tether.pipelines import plan as plans
    from tether.pipelines.spec import PipelineError

    try:
        whole = plans.plan(copy, [stage])
    except PipelineError as exc:
        raise Failed(f"the pipeline at that commit cannot run stage {stage}: {exc}") from exc
    (sp,) = [s for s in whole.stages if s.stage.name == stage]
    sp.action, sp.reasons = "run", ["reproduction"]
    single = plans.Plan(whole.pipeline, [sp], whole.lock)
    result = execute.repro(copy, single, [stage], tags={"reproduction_of": run_id}, use_cache=False)
    (res,) = result.results
    if res.outcome != "ran" or res.run is None:
        raise Failed(f"stage {stage} {res.outcome} on re-run: {res.detail}")
    return res.run


def _stage_modes(tree: Path, record: dict[str, Any]) -> dict[str, str]:
    """A pipeline stage's outs say how to compare them (``compare:`` in pipeline.yaml)."""
    stage = (record.get("tags") or {}).get("stage")
    if not stage:
        return {}
    from tether.pipelines.spec import PipelineError, load_pipeline

    try:
        found = load_pipeline(tree).stages.get(stage)
    except PipelineError:
        return {}
    return {o.path: o.compare for o in found.outs} if found else {}


def _worktree(ws: Workspace, record: dict[str, Any]) -> Path:
    code = record.get("code") or {}
    commit = code.get("commit")
    if not commit:
        raise Failed("the run was recorded outside any commit: there is nothing to check out")
    if git_maybe(ws.root, "cat-file", "-e", f"{commit}^{{commit}}") is None:
        raise Failed(f"commit {commit[:12]} no longer exists here: `git fetch` it, or restore it")
    tree = Path(tempfile.mkdtemp(prefix="tether-reproduce-"))
    try:
        git(ws.root, "worktree", "add", "-q", "--detach", str(tree), commit)
        _apply_diff(ws, tree, code.get("diff"))
        if (tree / DOT).exists() or (tree / DOT).is_symlink():
            raise Failed(f"the commit itself holds a {DOT} folder: it cannot be rebuilt safely")
        (tree / DOT).symlink_to(ws.dot)  # the same cache, index and refs
    except BaseException:
        _remove_worktree(ws, tree)  # a failed rebuild leaves no worktree behind
        raise
    return tree


def _apply_diff(ws: Workspace, tree: Path, diff: str | None) -> None:
    if not diff:
        return
    try:
        patch = ws.store.read_bytes(diff)
    except MissingObjectError:
        raise Failed("the run's uncommitted diff is not in the cache: `tether pull`") from None
    proc = subprocess.run(
        # a record made before capture left `.tether` out may hold the link: never apply it
        ["git", "apply", "--binary", "--whitespace=nowarn", f"--exclude={DOT}", "-"],
        cwd=tree, input=patch, capture_output=True, check=False,
    )  # fmt: skip
    if proc.returncode != 0:
        raise Failed(f"the recorded diff no longer applies: {proc.stderr.decode().strip()}")


def _remove_worktree(ws: Workspace, tree: Path) -> None:
    if (tree / DOT).is_symlink():
        (tree / DOT).unlink()  # the link only: the cache it points at is the project's
    git_maybe(ws.root, "worktree", "remove", "--force", str(tree))
    shutil.rmtree(tree, ignore_errors=True)
    git_maybe(ws.root, "worktree", "prune")


def _restore_data(ws: Workspace, copy: Workspace, record: dict[str, Any], fetch: Any) -> None:
    from tether.workspace.checkout import apply_checkout, plan_checkout

    data = record.get("data") or {}
    inputs = data.get("inputs") or {}
    wanted = {o for p, o in inputs.items() if not os.path.isabs(p)}
    wanted |= set((data.get("pointers_start") or {}).values())
    missing = ws.store.missing(wanted)
    if missing and fetch is not None:
        fetch(sorted(missing))
    plan = plan_checkout(copy, None)
    apply_checkout(copy, plan, force=True)
    for path, oid in (data.get("inputs") or {}).items():
        if os.path.isabs(path) or content_id(copy, path) == oid:
            continue  # outside the repository, or the commit and its diff brought it already
        materialize(copy, path, oid)


def _env_now(copy: Workspace) -> dict[str, Any]:
    return capture_environment(copy.root, copy.dot / "cache")


def _command(record: dict[str, Any]) -> list[str]:
    argv = list(record.get("command") or [])
    if not argv or argv[0] in ("-c", "-m", ""):
        raise Failed("the run has no command to re-run (it was logged from an interactive session)")
    if any(MASK in a for a in argv):
        raise Failed("the recorded command has masked secrets: re-run it by hand with them")
    if argv[0].endswith(".py"):  # logged from inside `python train.py ...`
        argv = [sys.executable, *argv]
    return argv


def _judge(
    ws: Workspace,
    verdict: Verdict,
    original: dict[str, Any],
    again: dict[str, Any],
    tolerances: dict[str, float],
    modes: dict[str, str],
) -> None:
    outs_a = (original.get("data") or {}).get("outputs") or {}
    outs_b = (again.get("data") or {}).get("outputs") or {}
    verdict.outputs = [
        OutCheck(path, modes.get(path, "exact"), oid, outs_b.get(path))
        for path, oid in sorted(outs_a.items())
    ]
    from tether.runs.record import number

    for key, m in sorted((original.get("metrics") or {}).items()):
        now = (again.get("metrics") or {}).get(key)
        verdict.metrics.append(
            MetricCheck(
                key,
                number(m["last"]),
                None if now is None else number(now["last"]),
                tolerances.get(key, 0.0),
            )
        )
    if not verdict.outputs and not verdict.metrics:
        raise Failed(
            "the run recorded no outputs and no metrics, so there is nothing to compare: log "
            "them (tether.log_output, tether.log_metric) or declare them as a stage's outs"
        )
    if all(c.ok for c in verdict.outputs) and all(c.ok for c in verdict.metrics):
        verdict.verdict = REPRODUCED
    else:
        verdict.verdict = DIFFERENT
        verdict.explanation = compare.diff(ws, original, again)
