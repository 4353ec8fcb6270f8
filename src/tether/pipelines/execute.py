"""``tether repro``: run the stale stages, independent ones in parallel, each as a Tether run
(a child of one pipeline run) with its deps and outs recorded, so lineage is captured at every
step. A stage whose command, dep ids and params were seen before is restored from the run
cache instead. A failing stage stops what needs it; what finished stays in ``pipeline.lock``.

Commands run in worker threads; everything that touches the cache, the index or the lock runs
in the calling thread (one SQLite connection, one writer of the lock).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any

from tether._paths import WriteGuard
from tether.errors import UsageError
from tether.gitio import git
from tether.gitio.repo import ensure_ignored
from tether.hashing import hash_bytes
from tether.objects.lock import file_lock
from tether.pipelines.lock import LOCK_FILE, StageLock, write_lock
from tether.pipelines.metrics import metric_names
from tether.pipelines.plan import Plan, ReproResult, StagePlan, StageResult, cache_hit, cache_key
from tether.pipelines.restore import check_stored, put
from tether.pipelines.spec import PipelineError
from tether.runs import lifecycle
from tether.runs.journal import Journal, text
from tether.runs.launch import execute, status_of
from tether.runs.record import dump_record
from tether.workspace.add import store_path
from tether.workspace.materialize import keep_current
from tether.workspace.repo import Workspace
from tether.workspace.status import content_id

Report = Callable[[str, str], None]  # (stage, what happened)


def repro(
    ws: Workspace,
    the_plan: Plan,
    targets: list[str] | None = None,
    *,
    jobs: int = 1,
    report: Report = lambda _s, _m: None,
    tags: dict[str, str] | None = None,
    use_cache: bool = True,
    executor: str | None = None,
) -> ReproResult:
    """Carry out a plan (from ``plan.plan``) that has something to do. ``tags`` go on every
    stage run; ``use_cache=False`` runs stages even when the run cache could restore them (a
    reproduction must re-run)."""
    if jobs < 1:
        raise UsageError(f"jobs must be 1 or more (stages run at once), not {jobs}")
    result = ReproResult(the_plan)
    if (executor or the_plan.pipeline.executor) == "ray":  # fail before any run starts
        from tether.pipelines.ray_executor import start_ray
        from tether.workspace.sync import remote_spec

        remote_spec(ws)
        start_ray()
    ws.store.create()
    with file_lock(ws.dot / "locks" / "repro.lock", exclusive=True, timeout=0.5):
        return _repro_locked(ws, the_plan, targets, result, jobs, report, tags, use_cache, executor)


def _repro_locked(
    ws: Workspace,
    the_plan: Plan,
    targets: list[str] | None,
    result: ReproResult,
    jobs: int,
    report: Report,
    tags: dict[str, str] | None,
    use_cache: bool,
    executor: str | None,
) -> ReproResult:
    """One `tether repro` at a time per repository: two would overwrite each other's lock."""
    again = "reproduction_of" in (tags or {})  # a reproduction's runs say so by name too
    parent = lifecycle.begin(
        ws,
        name="repro-reproduction" if again else "repro",
        tags={**(tags or {}), "kind": "pipeline"},
        command=["tether", "repro", *(targets or [])],
        index=False,
    )
    result.run = parent.id
    crashed = True
    try:
        where = executor or the_plan.pipeline.executor
        options = _Options(jobs, report, dict(tags or {}), use_cache, where)
        _schedule(ws, the_plan, parent, result, options)
        crashed = False
    finally:
        status = "finished" if result.ok and not crashed else "failed"
        lifecycle.seal(ws, parent.folder, status)
        os.close(parent.lock_fd)
    return result


@dataclass
class _Options:
    jobs: int
    report: Report
    tags: dict[str, str]
    use_cache: bool
    executor: str = "local"


def _schedule(
    ws: Workspace, p: Plan, parent: lifecycle.Started, out: ReproResult, o: _Options
) -> None:
    lock = dict(p.lock)
    if p.full:  # entries of stages pipeline.yaml no longer has go with the next write
        for name in p.stale:
            del lock[name]
        if p.stale:
            write_lock(ws.root, lock)
            out.dropped = p.stale
    running: dict[Future[Any], tuple[StagePlan, lifecycle.Started]] = {}
    try:
        _loop(ws, p, parent, out, o, running, lock)
    except BaseException:
        for _sp, started in running.values():  # no stage run is left open
            if started.folder.exists():
                lifecycle.seal(ws, started.folder, "failed")
                os.close(started.lock_fd)
        raise


def _loop(
    ws: Workspace,
    p: Plan,
    parent: lifecycle.Started,
    out: ReproResult,
    o: _Options,
    running: dict[Future[Any], tuple[StagePlan, lifecycle.Started]],
    lock: dict[str, StageLock],
) -> None:
    jobs, report = o.jobs, o.report
    todo = {sp.stage.name: sp for sp in p.todo}
    needs = {n: p.pipeline.needs[n] & set(todo) for n in todo}
    done: set[str] = set()
    bad: set[str] = set()
    declared = {path for s in p.pipeline.stages.values() for path in (*s.out_paths, *s.metrics)}
    made = set(declared)
    removed: dict[str, tuple[str, str]] = {}  # outs cleared before their stage ran
    use_cache = o.use_cache and not p.force  # --force runs: it never restores from the run cache
    with ThreadPoolExecutor(jobs) as pool:
        while todo or running:
            for name in [n for n in todo if needs[n] & bad]:
                out.results.append(StageResult(name, "skipped", detail="a stage it needs failed"))
                report(name, "skipped: a stage it needs failed")
                bad.add(name)
                del todo[name]
            ready = [n for n in todo if needs[n] <= done]
            for name in ready:
                if len(running) >= jobs:
                    break
                sp = todo.pop(name)
                _refresh_deps(ws, sp, made, parent.id, removed)  # what upstream stages just wrote
                quick = _without_running(ws, sp, lock, report, use_cache)
                if quick is not None:
                    out.results.append(quick)
                    done.add(name)
                    write_lock(ws.root, lock)
                    continue
                _clear_outs(ws, sp, lock.get(name), report, removed)
                started = _begin_stage(ws, sp, parent, o.tags)
                report(name, "running: " + "; ".join(sp.reasons))
                cmd = ["sh", "-c", sp.stage.cmd]
                env = dict(sp.stage.env)
                try:
                    if o.executor == "ray":
                        job = _submit_ray(ws, pool, sp, env)
                    else:
                        job = pool.submit(execute, ws, started, cmd, env=env, cwd=ws.root)
                except BaseException:
                    lifecycle.seal(ws, started.folder, "failed")
                    os.close(started.lock_fd)
                    raise
                running[job] = (sp, started)
            if not running:
                continue
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for fut in finished:
                sp, started = running.pop(fut)
                res = _finish(ws, sp, started, fut, lock, report, declared)
                out.results.append(res)
                (done if res.outcome == "ran" else bad).add(sp.stage.name)
                write_lock(ws.root, lock)


def _submit_ray(
    ws: Workspace, pool: ThreadPoolExecutor, sp: StagePlan, env: dict[str, str]
) -> Future[Any]:
    """Push the stage's deps, then run it as a Ray task (waited on in a pool thread)."""
    from tether.pipelines import ray_executor
    from tether.workspace.sync import push_ids, remote_spec

    ray = ray_executor.start_ray()
    spec = remote_spec(ws)
    deps = {dep: store_path(ws, ws.abs(dep)) for dep in sp.stage.deps}  # git-tracked code too
    push_ids(ws, set(deps.values()))
    outs = [*sp.stage.out_paths, *sp.stage.metrics]
    ref = ray_executor.submit(ray, spec, deps, sp.stage.cmd, env, outs, dict(sp.stage.resources))
    return pool.submit(ray.get, ref)


def _is_ray(outcome: Any) -> bool:
    return type(outcome).__name__ == "RayResult"


def _bring_back(ws: Workspace, started: lifecycle.Started, result: Any) -> tuple[int, bool]:
    """A Ray stage's outs (and metrics files) into this cache and working tree, its output into
    the run's log."""
    from tether.workspace.sync import fetch_ids

    (started.folder / "output.log").write_bytes(result.log)
    if result.outs:
        fetch_ids(ws, list(result.outs.values()))
    check_stored(ws, result.outs, f"the Ray worker's outs of run {started.id}")
    guard = WriteGuard(ws.root)
    for path, oid in result.outs.items():
        put(ws, guard, path, oid)
    return int(result.code), False


def _safe(params: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Params as pipeline.lock keeps them (it is committed): see ``plan.locked_value``."""
    from tether.pipelines.plan import locked_value

    return {f: {k: locked_value(k, v) for k, v in vals.items()} for f, vals in params.items()}


KEPT = "local/kept"  # refs keeping the edits to outs that a repro replaced (gc roots)


def _keep(ws: Workspace, stage: str, path: str, report: Report, *known: str | None) -> str | None:
    """Before an out is replaced: what is there now goes into the cache; when it is none of the
    ``known`` ids (the lock's, the replacement's), it is an edit, kept with a ref so that no gc
    takes it, and said. The id of what was there (None: nothing)."""
    kept = keep_current(ws, path)
    if kept is not None and kept not in known:
        ws.refs.set(f"{KEPT}/{kept.partition(':')[2]}", [kept])
        report(stage, f"kept the changed {path} in the cache as {kept} before replacing it")
    return kept


def _clear_outs(
    ws: Workspace,
    sp: StagePlan,
    locked: StageLock | None,
    report: Report,
    removed: dict[str, tuple[str, str]],
) -> None:
    """Outs go before the stage runs (kept in the cache first), so one it fails to write is
    noticed instead of the old file being recorded as new. ``removed`` gets path -> (stage, id
    of what was there), so a dep that was inside can be found again."""
    import shutil

    made = {**locked.outs, **locked.metrics} if locked is not None else {}
    for path in (*sp.stage.out_paths, *sp.stage.metrics):
        target = ws.abs(path)
        if not (target.exists() or target.is_symlink()):
            continue
        kept = _keep(ws, sp.stage.name, path, report, made.get(path))
        if kept is not None:
            removed[path] = (sp.stage.name, kept)
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        else:
            target.unlink()


def _refresh_deps(
    ws: Workspace,
    sp: StagePlan,
    made: set[str],
    pipeline_run: str,
    removed: dict[str, tuple[str, str]],
) -> None:
    """The deps' ids as the stage will read them. A dep no stage makes (a script, raw data) is
    stored in the cache as well: the run records it by id, so its bytes must be there for
    `fsck`, `push` and `reproduce`; what a stage made is stored already. A live ref of the
    pipeline run keeps them until the stage's record does (a gc while the stage runs)."""
    for dep in sp.stage.deps:
        if not ws.abs(dep).exists():
            raise PipelineError(_not_written(ws, sp.stage.name, dep, removed))
        inside = any(dep == o or dep.startswith(o + "/") for o in made)
        oid = content_id(ws, dep) if inside else store_path(ws, ws.abs(dep))
        if oid is None:
            raise PipelineError(_not_written(ws, sp.stage.name, dep, removed))
        sp.deps[dep] = oid
    if sp.deps:
        part = "deps-" + hash_bytes(sp.stage.name.encode())[7:23]
        ids = sorted(set(sp.deps.values()))
        ws.refs.set(lifecycle.live_ref(pipeline_run, part), ids, durable=False)


def _not_written(ws: Workspace, stage: str, dep: str, removed: dict[str, tuple[str, str]]) -> str:
    """Why ``dep`` is not there; when it was inside an out a stage removed before it ran (and
    then did not write it), where its bytes are kept and how to get them back."""
    for out, (owner, oid) in removed.items():
        if dep != out and not dep.startswith(out + "/"):
            continue
        entry: str | None = oid
        if dep != out and ws.store.has(oid):
            found = ws.store.load_tree(oid).by_path.get(dep[len(out) + 1 :])
            entry = found.id if found is not None else None
        if entry is None:
            break
        return (
            f"stage {stage!r} needs {dep}, which stage {owner!r} removed with its out {out} "
            f"before it ran and did not write again (what was there is in the cache as "
            f"{entry}): make {owner!r} write it, or read it from a path apart from {out}"
        )
    return f"stage {stage!r} needs {dep}, which was not written"


def _without_running(
    ws: Workspace, sp: StagePlan, lock: dict[str, StageLock], report: Report, use_cache: bool
) -> StageResult | None:
    """Nothing to do when what the stage reads turned out to be what it last ran with (its
    upstream ran or was restored and made the same bytes); else restore the outs (from the
    lock's ids or the run cache) when that is enough."""
    name = sp.stage.name
    locked = lock.get(name)
    moved = ("stage ", "dep ")  # the reasons an upstream run or restore can take away
    settled = locked is not None and sp.deps == locked.deps
    if settled and all(r.startswith(moved) for r in sp.reasons):
        report(name, "up to date: what it reads is what it last ran with")
        return StageResult(name, "uptodate", lock[name].run)
    guard = WriteGuard(ws.root)
    if sp.action == "restore":
        stored = {**lock[name].outs, **lock[name].metrics}
        check_stored(ws, stored, f"{LOCK_FILE}'s stage {name!r}")
        for path, oid in stored.items():
            _keep(ws, name, path, report, oid)
            put(ws, guard, path, oid)
        report(name, "restored its outs from the cache")
        return StageResult(name, "restored", lock[name].run)
    if not use_cache:
        return None
    hit = cache_hit(ws, sp)
    if hit is None:
        return None
    before = {**locked.outs, **locked.metrics} if locked is not None else {}
    metrics = dict(hit.get("metrics_files") or {})  # (cache_hit checked their paths)
    for path, oid in hit["outs"].items():
        _keep(ws, name, path, report, oid, before.get(path))
        put(ws, guard, path, oid)
        _ignore(ws, path)
    for path, oid in metrics.items():
        _keep(ws, name, path, report, oid, before.get(path))
        put(ws, guard, path, oid)  # the numbers that go with those outs
    lock[name] = StageLock(
        sp.stage.cmd, sp.deps, _safe(sp.params), dict(hit["outs"]), hit.get("run"), sp.env, metrics
    )
    report(name, "restored from the run cache (same command, deps and params ran before)")
    return StageResult(name, "cached", hit.get("run"))


def _begin_stage(
    ws: Workspace, sp: StagePlan, pipeline: lifecycle.Started, tags: dict[str, str]
) -> lifecycle.Started:
    """The stage's run; its code and environment are the pipeline run's (captured once per
    `repro`)."""
    parent = pipeline.id
    flat = {k: str(v) for values in sp.params.values() for k, v in values.items()}
    flat.update({f"env.{k}": v for k, v in sp.stage.env})  # what `env:` set is a parameter
    return lifecycle.begin(
        ws,
        name=sp.stage.name + ("-reproduction" if "reproduction_of" in tags else ""),
        tags={**tags, "stage": sp.stage.name, "pipeline": parent},
        command=["sh", "-c", sp.stage.cmd],
        params=flat,
        parent=parent,
        pointers=False,  # its deps and outs are recorded as inputs and outputs instead
        index=False,  # queued for the index: a pipeline does not pay for loading SQLAlchemy
        like=pipeline.start,
        cwd=ws.root,  # stages run at the top of the work tree
    )


def _finish(
    ws: Workspace,
    sp: StagePlan,
    started: lifecycle.Started,
    fut: Future[Any],
    lock: dict[str, StageLock],
    report: Report,
    declared: set[str],
) -> StageResult:
    name = sp.stage.name
    try:
        outcome = fut.result()
        code, interrupted = _bring_back(ws, started, outcome) if _is_ray(outcome) else outcome
    except Exception as exc:  # the command could not start, or a Ray worker failed
        if started.folder.exists():
            lifecycle.seal(ws, started.folder, "failed", exit_code=127)
            os.close(started.lock_fd)
        report(name, f"failed: {exc}")
        return StageResult(name, "failed", started.id, str(exc))
    written = (*sp.stage.out_paths, *sp.stage.metrics)
    missing = [o for o in written if not ws.abs(o).exists()] if code == 0 else []
    stray = _undeclared(ws, started, declared) if code == 0 and not missing else []
    numbers, unnamed = _numbers(ws, sp) if code == 0 and not missing and not stray else ({}, "")
    journal = Journal(started.folder)
    outs: dict[str, str] = {}
    try:
        for dep, oid in sp.deps.items():
            journal.event("i", text(dep), oid)
        if code == 0 and not missing and not stray and not unnamed:
            for out in sp.stage.out_paths:
                outs[out] = store_path(ws, ws.abs(out))  # the workspace's, not the caller's folder
                journal.event("o", text(out), outs[out])
                _ignore(ws, out)
            for key, value in numbers.items():
                journal.metric(key, value, 0, time.time())
    finally:
        journal.close()
    status = "failed" if missing or stray or unnamed else status_of(code, interrupted)
    try:
        record = lifecycle.seal(ws, started.folder, status, exit_code=code)
    finally:
        os.close(started.lock_fd)
    if status != "finished":
        why = _why_failed(code, missing, stray, unnamed)
        report(name, f"failed: {why}")
        return StageResult(name, "failed", started.id, why)
    deps_now = dict(sp.deps)
    metric_files = {m: store_path(ws, ws.abs(m)) for m in sp.stage.metrics}
    lock[name] = StageLock(
        sp.stage.cmd, deps_now, _safe(sp.params), outs, started.id, sp.env, metric_files
    )
    _cache_store(ws, sp, outs, metric_files, started.id, record)
    report(name, f"done in run {started.id[:13]}")
    return StageResult(name, "ran", started.id)


def _why_failed(code: int, missing: list[str], stray: list[str], unnamed: str) -> str:
    if missing:
        return f"did not write its out {', '.join(missing)}"
    if stray:
        return (
            f"wrote {', '.join(stray[:5])}, which it does not declare: add it to the stage's "
            "outs (or git-ignore it if it is scratch)"
        )
    return unnamed or f"exited {code}"


def _undeclared(ws: Workspace, started: lifecycle.Started, declared: set[str]) -> list[str]:
    """Files the stage left changed in the work tree that no stage declares (git's view: ignored
    files are not seen). Files already changed before the stage started are not its doing."""
    from tether.capture.code import STATUS

    out = git(ws.root, *STATUS)
    before = set(started.start["code"]["changed"])
    now = {rec[2:] if rec.startswith("? ") else rec.split(" ")[-1] for rec in _records(out)}
    return sorted(
        p
        for p in now - before
        if not any(p == d or p.startswith(d + "/") for d in declared)
        and not p.endswith((".gitignore", LOCK_FILE))
        and p != ".tether"
        and not p.startswith(".tether/")
    )


def _records(out: bytes) -> list[str]:
    return [r for r in out.decode("utf-8", "surrogateescape").split("\0") if r[:2] in ("1 ", "? ")]


def _cache_store(
    ws: Workspace,
    sp: StagePlan,
    outs: dict[str, str],
    metric_files: dict[str, str],
    run: str,
    record: str,
) -> None:
    body = {
        "stage": sp.stage.name,
        "cmd": sp.stage.cmd,
        "outs": outs,
        "metrics_files": metric_files,
        "run": run,
        "time": time.time(),
    }
    links = [*outs.values(), *metric_files.values(), record]
    with ws.writing():
        # no sync of its own: a run-cache entry lost in a crash only costs a re-run (the stage's
        # run record and outs were made durable when it was sealed)
        oid = ws.store.put_bytes(dump_record("runcache", body, links))
        ws.refs.set(f"runcache/{cache_key(sp)}", [oid], durable=False)


def _numbers(ws: Workspace, sp: StagePlan) -> tuple[dict[str, float], str]:
    """The stage's metrics (see ``metric_names``), or why they cannot be named."""
    try:
        return metric_names(ws.root, sp.stage.name, sp.stage.metrics), ""
    except PipelineError as exc:
        return {}, str(exc)


def _ignore(ws: Workspace, rel: str) -> None:
    path = ws.abs(rel)
    ensure_ignored(path.parent, path.name)
