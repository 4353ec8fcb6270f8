"""What ``tether repro`` would do, and why: each stage is up to date, restorable from the cache,
or must run because its command, a dep, a param or an out changed (or a stage it needs runs)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tether._documents import load_yaml
from tether.objects.tree import Tree
from tether.pipelines.lock import LOCK_FILE, StageLock, read_lock
from tether.pipelines.spec import PIPELINE_FILE, Pipeline, PipelineError, Stage, load_pipeline
from tether.pipelines.uptodate import Seen
from tether.workspace.repo import Workspace
from tether.workspace.status import content_id


@dataclass
class StagePlan:
    stage: Stage
    action: str  # "run", "restore" (outs from the cache) or "none"
    reasons: list[str] = field(default_factory=list)
    deps: dict[str, str] = field(default_factory=dict)  # ids as they are now
    params: dict[str, dict[str, Any]] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)


@dataclass
class Plan:
    pipeline: Pipeline
    stages: list[StagePlan]
    lock: dict[str, StageLock]
    seen: Seen | None = None  # what the plan read, for `uptodate.remember`
    force: bool = False  # `--force`: every planned stage runs, none restored from the run cache
    full: bool = False  # no targets: the whole pipeline was planned (stale entries may go)

    @property
    def stale(self) -> list[str]:
        """Entries of pipeline.lock for stages pipeline.yaml no longer has (renamed or removed
        stages, matrix items gone)."""
        return sorted(set(self.lock) - set(self.pipeline.stages))

    @property
    def todo(self) -> list[StagePlan]:
        return [s for s in self.stages if s.action != "none"]


def plan(
    ws: Workspace,
    targets: list[str] | None = None,
    *,
    force: bool = False,
    run_cache: bool = True,
) -> Plan:
    """What a repro would do. ``run_cache``: a stale stage the run cache holds is planned as
    restored from it (and what it restores is what its downstream will read)."""
    seen = Seen(ws.root)
    pipeline = load_pipeline(ws.root, seen.read(PIPELINE_FILE))
    lock = read_lock(ws.root, seen.read(LOCK_FILE))
    params = _ParamFiles(ws.root, seen)
    out: list[StagePlan] = []
    running: set[str] = set()
    restoring: dict[str, str] = {}  # path -> id: outs that stages restore before others read them
    for name in pipeline.order(targets):
        stage = pipeline.stages[name]
        sp = StagePlan(stage, "none", params={f: {} for f, _ in stage.params}, env=dict(stage.env))
        _check_through_symlinks(ws, stage)
        for file, key in stage.params:
            sp.params[file][key] = params.get(file, key, name)
        upstream = sorted(pipeline.needs[name] & running)
        for dep in stage.deps:
            oid = _restored_id(ws, dep, restoring) or _content_id(ws, dep, seen)
            if oid is not None:
                sp.deps[dep] = oid
            elif not any(_makes(pipeline.stages[u], dep) for u in pipeline.needs[name]):
                raise PipelineError(
                    f"stage {name!r} needs {dep}, which does not exist and no stage writes"
                )
        _check_users_files(ws, pipeline, name, lock, {p.stage.name: p.action for p in out})
        sp.reasons = _why(ws, stage, sp, lock.get(name), upstream, force, seen)
        if sp.reasons:
            restored = _how_to_restore(ws, sp, lock.get(name), upstream, force, run_cache)
            if restored is None:
                running.add(name)
            else:
                restoring.update(restored)
        out.append(sp)
    if set(lock) - set(pipeline.stages):
        seen.usable = False  # stale lock entries: the next repro drops them, not the fast path
    return Plan(pipeline, out, lock, seen, force=force, full=not targets)


def _check_through_symlinks(ws: Workspace, stage: Stage) -> None:
    """Each path as it resolves (a path that leaves the repository through a symlink is
    refused): a dep that a symlink puts inside an out of its own stage is refused before
    anything runs, as spelled out (outs are removed before a stage runs)."""
    real = {p: ws.rel(ws.abs(p)) for p in (*stage.deps, *stage.out_paths, *stage.metrics)}
    for dep in stage.deps:
        for out in (*stage.out_paths, *stage.metrics):
            d, o = real[dep], real[out]
            if d == o or d.startswith(o + "/") or o.startswith(d + "/"):
                raise PipelineError(
                    f"stage {stage.name!r}: its dep {dep} (which is {d}) and its out {out} "
                    f"(which is {o}) overlap through a symlink; outs are removed before a stage "
                    "runs: write them to a path apart from what the stage reads"
                )


def _check_users_files(
    ws: Workspace,
    pipeline: Pipeline,
    name: str,
    lock: dict[str, StageLock],
    actions: dict[str, str],
) -> None:
    """A dep of stage ``name`` inside an out of an upstream stage that will run or be restored
    (and so removes that out first) must be something that stage wrote: a file of the user's
    own put there would be lost."""
    for dep in pipeline.stages[name].deps:
        for up in sorted(pipeline.needs[name]):
            if actions.get(up, "none") == "none":
                continue
            for out in (*pipeline.stages[up].out_paths, *pipeline.stages[up].metrics):
                if not dep.startswith(out + "/") or not ws.abs(dep).exists():
                    continue
                if not _was_written(ws, lock.get(up), out, dep[len(out) + 1 :]):
                    raise PipelineError(
                        f"stage {name!r} reads {dep}, which is inside {out}, the out of stage "
                        f"{up!r}, but is not something {up!r} wrote: {up!r} removes {out} before "
                        f"it runs, so {dep} would be lost. Move it out of {out} and point the dep "
                        f"of {name!r} there (or delete it if {up!r} makes it)"
                    )


def _was_written(ws: Workspace, locked: StageLock | None, out: str, sub: str) -> bool:
    """Whether ``sub`` is in the out folder ``out`` as the stage's last run wrote it (True when
    that cannot be told: the tree is not in this cache)."""
    oid = (locked.outs.get(out) or locked.metrics.get(out)) if locked is not None else None
    if oid is None:
        return False
    if not ws.store.has(oid):
        return True
    tree = ws.store.load_tree(oid)
    return sub in tree.by_path or bool(tree.under(sub).entries)


def drop_stale(ws: Workspace, the_plan: Plan) -> list[str]:
    """Rewrite pipeline.lock without the entries of stages pipeline.yaml no longer has (when
    nothing else is to be done; a repro that runs stages drops them as it writes the lock)."""
    from tether.objects.lock import file_lock
    from tether.pipelines.lock import write_lock

    stale = the_plan.stale if the_plan.full else []
    if stale:
        with file_lock(ws.dot / "locks" / "repro.lock", exclusive=True, timeout=0.5):
            current = read_lock(ws.root)
            write_lock(ws.root, {n: s for n, s in current.items() if n not in stale})
    return stale


def _how_to_restore(
    ws: Workspace,
    sp: StagePlan,
    locked: StageLock | None,
    upstream: list[str],
    force: bool,
    run_cache: bool,
) -> dict[str, str] | None:
    """Sets the action of a stale stage: "restore" (its outs from the lock's ids), "cached" (from
    the run cache) or "run"; the paths and ids a restore will write."""
    sp.action = "run"
    if upstream or force:
        return None
    if locked is not None and _only_outs_changed(sp.reasons) and _cached(ws, sp.stage, locked):
        sp.action = "restore"
        return {**locked.outs, **locked.metrics}
    hit = cache_hit(ws, sp) if run_cache else None
    if hit is None:
        return None
    sp.action = "cached"
    return {**hit["outs"], **(hit.get("metrics_files") or {})}


def cache_key(sp: StagePlan) -> str:
    """The run cache's key: what a stage ran with (command, dep ids, params, env, outs)."""
    import json

    from tether.hashing import hash_bytes

    doc = {
        "cmd": sp.stage.cmd,
        "deps": sp.deps,
        "params": sp.params,
        "env": dict(sp.stage.env),
        "outs": sorted(sp.stage.out_paths),
    }
    return hash_bytes(json.dumps(doc, sort_keys=True, default=str).encode())[len("blake3:") :]


def cache_hit(ws: Workspace, sp: StagePlan) -> dict[str, Any] | None:
    """The run cache's entry for the stage as planned, when every out and metrics file it names
    is in the cache (None otherwise: the stage runs)."""
    from tether.errors import FormatError
    from tether.runs.record import load_record

    ref = ws.refs.get(f"runcache/{cache_key(sp)}")
    if ref is None or not ws.store.has(ref[0]):
        return None
    try:
        hit = load_record(ws.store.read_bytes(ref[0]), ref[0])
    except FormatError:
        return None  # an entry a crash cut short: the stage simply runs
    outs, metrics = dict(hit.get("outs") or {}), dict(hit.get("metrics_files") or {})
    if set(outs) != set(sp.stage.out_paths):
        _check_entry(ws, sp, ref[0], {**outs, **metrics})  # a hostile one is said, not skipped
        return None  # other outs than the stage declares: not the stage's to restore
    if set(metrics) != set(sp.stage.metrics):
        return None  # an entry from before metrics files were kept, or other ones: run
    if ws.store.missing([*outs.values(), *metrics.values()]):
        return None
    _check_entry(ws, sp, ref[0], {**outs, **metrics})
    return hit


def _check_entry(ws: Workspace, sp: StagePlan, oid: str, stored: dict[str, str]) -> None:
    """A run-cache entry comes from whoever pushed it: one naming a path Tether would never
    write (a stored folder's own paths and links included) is refused, with the way out."""
    from tether.errors import UnsafePathError
    from tether.pipelines.restore import check_stored

    try:
        check_stored(ws, stored, f"the run-cache entry {oid[:19]}… for stage {sp.stage.name!r}")
    except UnsafePathError as exc:
        raise UnsafePathError(
            f"{exc}; Tether did not make it: `tether repro --no-run-cache {sp.stage.name}` runs "
            "the stage, and its own entry replaces this one"
        ) from None


def _restored_id(ws: Workspace, dep: str, restoring: dict[str, str]) -> str | None:
    """The id ``dep`` will have once a stage restored its outs from the cache (None when no
    restored out holds it): so a stage downstream of a restore is judged by the bytes it will
    read, not by the missing or edited file there is now."""
    for out, oid in restoring.items():
        if dep == out:
            return oid
        if not dep.startswith(out + "/") or not ws.store.has(oid):
            continue
        sub = dep[len(out) + 1 :]
        tree = ws.store.load_tree(oid)
        entry = tree.by_path.get(sub)
        if entry is not None:
            return entry.id
        inner = [e._replace(path=e.path[len(sub) + 1 :]) for e in tree.under(sub).entries]
        return Tree.build(inner).id if inner else None
    return None


def _content_id(ws: Workspace, rel: str, seen: Seen) -> str | None:
    seen.note_path(rel)  # its signature before its content is read
    oid = content_id(ws, rel)
    seen.found(rel, oid)
    return oid


def _makes(stage: Stage, dep: str) -> bool:
    return any(
        dep == o or dep.startswith(o + "/") or o.startswith(dep + "/")
        for o in (*stage.out_paths, *stage.metrics)
    )


def _why(
    ws: Workspace,
    stage: Stage,
    sp: StagePlan,
    locked: StageLock | None,
    upstream: list[str],
    force: bool,
    seen: Seen,
) -> list[str]:
    if force:
        return ["--force"]
    if locked is None:
        return ["never ran"]
    reasons = [f"stage {u} runs first" for u in upstream]
    if locked.cmd != stage.cmd:
        reasons.append(f"command changed: {locked.cmd!r} -> {stage.cmd!r}")
    if locked.env != sp.env:
        reasons.append(
            "env changed: "
            + ", ".join(
                sorted(
                    set(locked.env) ^ set(sp.env)
                    | {k for k in set(locked.env) & set(sp.env) if locked.env[k] != sp.env[k]}
                )
            )
        )
    for dep in stage.deps if not upstream else ():  # after an upstream run, deps are new anyway
        if sp.deps.get(dep) != locked.deps.get(dep):
            reasons.append(f"dep {dep} changed")
    for file, values in sp.params.items():
        for key, value in values.items():
            old = (locked.params.get(file) or {}).get(key, "<unset>")
            if old != locked_value(key, value):
                reasons.append(f"param {key} changed: {shown(key, old)} -> {shown(key, value)}")
    for out in stage.out_paths:
        now = _content_id(ws, out, seen)
        if out not in locked.outs:
            reasons.append(f"new out {out} declared")
        elif now is None:
            reasons.append(f"out {out} is missing")
        elif now != locked.outs.get(out):
            reasons.append(f"out {out} was modified")
    for path in sorted({*locked.outs, *locked.metrics} - {*stage.out_paths, *stage.metrics}):
        reasons.append(f"no longer declares {path} (pipeline.lock still lists it)")
    for path in stage.metrics:  # made by the stage as its outs are (a lock older than this
        now = _content_id(ws, path, seen)  # keeps no id for them: only a missing one shows)
        if now is None:
            reasons.append(f"out {path} (metrics) is missing")
        elif path in locked.metrics and now != locked.metrics[path]:
            reasons.append(f"out {path} (metrics) was modified")
    return reasons


def locked_value(key: str, value: Any) -> Any:
    """A secret-looking param is committed as a mask plus a short hash: a change still shows,
    the value does not."""
    from tether.hashing import hash_bytes
    from tether.redact import MASK, looks_secret

    if looks_secret(key):
        return f"{MASK}{hash_bytes(str(value).encode())[7:19]}"
    return value


def shown(key: str, value: Any) -> str:
    """A param value as it may be printed or committed: masked when it looks like a secret."""
    from tether.redact import Redactor

    return Redactor().redact_value(key, str(value))


def _only_outs_changed(reasons: list[str]) -> bool:
    return all(r.startswith("out ") for r in reasons)


def _cached(ws: Workspace, stage: Stage, locked: StageLock) -> bool:
    """Every out and metrics file the stage declares has an id in the lock and the bytes in the
    cache (a metrics file a lock from before metrics were locked lacks: when it is there)."""
    ids = {**locked.outs, **locked.metrics}
    declared = (*stage.out_paths, *stage.metrics)
    known = all(p in ids for p in stage.out_paths) and all(
        p in ids or ws.abs(p).exists() for p in stage.metrics
    )
    return bool(declared) and known and not ws.store.missing(ids.values())


class _ParamFiles:
    def __init__(self, root: Path, seen: Seen) -> None:
        self.root = root
        self.seen = seen
        self.docs: dict[str, Any] = {}

    def get(self, file: str, key: str, stage: str) -> Any:
        import yaml  # for its error type: loaded anyway by load_yaml

        if file not in self.docs:
            data = self.seen.read(file)
            if data is None:
                raise PipelineError(
                    f"stage {stage!r} reads params from {file}, which does not exist"
                )
            try:
                self.docs[file] = load_yaml(data) or {}
            except yaml.YAMLError as exc:
                problem = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                raise PipelineError(
                    f"stage {stage!r} reads params from {file}, which is not valid YAML "
                    f"({problem}): fix it, or restore it from git"
                ) from None
        node = self.docs[file]
        for part in key.split("."):
            if not isinstance(node, dict) or part not in node:
                raise PipelineError(
                    f"stage {stage!r} needs param {key!r}, which {file} does not have"
                )
            node = node[part]
        return node


@dataclass
class StageResult:
    name: str
    outcome: str  # ran | restored | cached | uptodate | failed | skipped
    run: str | None = None
    detail: str = ""


@dataclass
class ReproResult:
    plan: Plan
    results: list[StageResult] = field(default_factory=list)
    run: str | None = None  # the pipeline run
    dropped: list[str] = field(default_factory=list)  # stale entries taken out of pipeline.lock

    @property
    def ok(self) -> bool:
        return all(r.outcome not in ("failed", "skipped") for r in self.results)
