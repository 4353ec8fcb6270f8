"""A run's life: start (capture code, environment and data), log, seal, or be found killed.

A live run is a folder ``.tether/runs/<id>/`` holding ``start.json`` (what was captured at the
start), a ``lock`` held for as long as the run lives, and the processes' journals. Sealing turns
it into a record object, points ``refs/runs/<id>`` at it, indexes it and removes the folder. A
folder whose lock is free belongs to a process that died: the next command seals it ``killed``.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import socket
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tether._fs import atomic_write
from tether.capture.code import (
    REMOTES,
    STATUS,
    CodeState,
    cached_remotes,
    capture_code,
    remember_remotes,
)
from tether.capture.data import edited_tracked, skipped_ids
from tether.capture.editable import mark_editables
from tether.capture.env import capture_environment
from tether.capture.interpreter import (
    command_env,
    contribution_needed,
    in_background,
    read_interpreter,
    with_interpreter,
)
from tether.capture.notebook import capture_notebook
from tether.errors import RunError, ServerUnavailableError, TetherError
from tether.gitio import git_many, parse_pointer_listing
from tether.gitio.repo import POINTER_LISTING
from tether.meta.store import IndexedRun
from tether.redact import Redactor
from tether.runs.ids import EMAIL_CONFIG, email_from, user
from tether.runs.ids import new_run_id as new_run_id
from tether.runs.index import defer, open_index, redactor_for
from tether.runs.journal import Events, check_key, read_events
from tether.runs.notebooks import notebook_ids as _notebook_ids
from tether.runs.notebooks import store_notebook as _store_notebook
from tether.runs.record import dump_record, series_document, summarize, to_indexed
from tether.workspace.repo import Workspace

LIVE = "runs"  # under .tether/
STATUSES = ("running", "finished", "failed", "killed")


def live_root(ws: Workspace) -> Path:
    return ws.dot / LIVE


def live_ref(run_id: str, part: str) -> str:
    """A ref keeping a live run's objects alive; every process logging to it has its own."""
    return f"local/live/{run_id}/{part}"


def _drop_live_refs(ws: Workspace, run_id: str) -> None:
    for name, _ in list(ws.refs.items(f"local/live/{run_id}")):
        ws.refs.delete(name)
    shutil.rmtree(ws.refs.root / "local" / "live" / run_id, ignore_errors=True)


@dataclass
class Started:
    """What :func:`begin` made: the run's folder, its lock and what was captured."""

    id: str
    folder: Path
    lock_fd: int
    start: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)  # what was not captured, for the user


def begin(
    ws: Workspace,
    *,
    name: str | None = None,
    experiment: str | None = None,
    tags: Mapping[str, str] | None = None,
    command: list[str] | None = None,
    params: Mapping[str, str] | None = None,
    entry_point: str | None = None,
    parent: str | None = None,
    pointers: bool = True,
    index: bool = True,
    like: Mapping[str, Any] | None = None,
    cwd: Path | None = None,
    declared: Mapping[str, list[str]] | None = None,
) -> Started:
    """Create the live run: capture the four pillars' start state and index it as running.
    ``cwd`` is the folder the command runs in (this process's by default) and ``declared`` the
    ``deps``/``outs`` it was started with: both recorded, so `tether reproduce` re-runs alike."""
    for key in (*(tags or {}), *(params or {})):
        check_key(key, "tag or param name")
    run_id = new_run_id()
    folder, lock_fd = _make_folder(ws, run_id)
    try:
        start = _capture(
            ws, run_id, name, experiment, tags, command, params, entry_point, pointers, like
        )
        start["parent"] = parent
        start["index"] = index
        start["cwd"] = _folder_in(ws, cwd or Path.cwd())
        start["declared"] = {k: [_path_in(ws, p) for p in v] for k, v in (declared or {}).items()}
        atomic_write(folder / "start.json", json.dumps(start).encode(), durable=False)
        if index:  # a deferred run is indexed when sealed (see runs/index.py)
            open_index(ws).put_runs([_running_row(start)], replace=False)
    except BaseException:
        _drop_live_refs(ws, run_id)
        shutil.rmtree(folder, ignore_errors=True)
        os.close(lock_fd)
        raise
    return Started(run_id, folder, lock_fd, start, capture_warnings(start))


def capture_warnings(start: Mapping[str, Any]) -> list[str]:
    """What the run's record will lack, in the user's words."""
    out = []
    for path, info in sorted((start["code"].get("skipped") or {}).items()):
        size = info.get("size") if isinstance(info, dict) else info
        out.append(
            f"untracked {path} ({size} bytes) is over runs.diff_max_file: it is named in the "
            "record by id but not stored; commit it, ignore it, or `tether add` it"
        )
    out += _secret_warnings(start["code"])
    info = start.get("interpreter") or {}
    if not info.get("known", True):
        out.append(
            f"the command's Python environment is not known: {info.get('reason')}; "
            "`import tether` in the script records it from inside"
        )
    return out


MAX_REDACTION_WARNINGS = 10


def _secret_warnings(code: Mapping[str, Any]) -> list[str]:
    """The untracked files left out as secrets, and each line redaction masked in the diff."""
    out = [
        f"untracked {item.get('path')} looks like a secret: it was left out of the recorded "
        "diff, so a reproduction will not have it"
        for item in code.get("left_out") or []
    ]
    masked = list(code.get("redactions") or [])
    for item in masked[:MAX_REDACTION_WARNINGS]:
        out.append(
            f"{item['file']}:{item['line']}: masked a value that looks like a secret "
            f"({item['rule']}) in the recorded diff, so a reproduction runs altered code; read "
            "it from the environment instead, or add a pattern to [redact] allow in tether.toml "
            "if it is none"
        )
    if len(masked) > MAX_REDACTION_WARNINGS:
        rest = len(masked) - MAX_REDACTION_WARNINGS
        out.append(f"... and {rest} more masked lines (`tether runs show --json` lists them)")
    return out


def _capture(
    ws: Workspace,
    run_id: str,
    name: str | None,
    experiment: str | None,
    tags: Mapping[str, str] | None,
    command: list[str] | None,
    params: Mapping[str, str] | None,
    entry_point: str | None,
    pointers: bool = True,
    like: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The four pillars at the start: what ``start.json`` holds. ``pointers=False`` skips the
    tracked-pointer snapshot (a pipeline stage records its deps and outs instead); ``like`` is
    another live run's start whose code and environment this run shares (a pipeline's stages
    run in the same checkout and process environment: no git call, no capture of their own)."""
    redactor = redactor_for(ws)
    code, listing = None, None
    email = (like or {}).get("email")
    if like is None:  # asking another interpreter (a process) overlaps git's processes
        reading = in_background(read_interpreter, command, None, ws.dot / "cache")
        code, listing, email = _code_state(ws, redactor, entry_point, pointers)
    ws.store.create()
    notebook = capture_notebook()
    with ws.writing():
        if like is None:
            own = _own_environment(ws, redactor, command_env(command))
            env = with_interpreter(own, reading())
            mark_editables(env, ws.root)  # other source trees' commits
            interpreter = env["interpreter"]
            env_id = ws.store.put_bytes(json.dumps(env, sort_keys=True).encode())
        else:
            env_id, interpreter = like["env"], like.get("interpreter")
        diff_id, sub_ids = _stored_code(ws, code, like)
        nb = _store_notebook(ws, notebook, redactor) if notebook else None
        ws.forget_pointers()
        tracked = ws.readable_pointers(parse_pointer_listing(listing or b"")) if pointers else []
        modified = edited_tracked(ws, tracked) if like is None else {}
        keep = [i for i in (env_id, diff_id, *sub_ids, *_notebook_ids(nb), *modified.values()) if i]
        ws.refs.set(live_ref(run_id, "start"), keep, durable=False)
    if code is not None:
        record = code.to_record(diff_id, skipped_ids(ws, code.skipped), sub_ids)
    else:
        record = dict((like or {})["code"])
    argv = redact_argv(redactor, list(command if command is not None else sys.argv))
    start = {
        "id": run_id,
        "name": name or _default_name(record.get("entry_point"), run_id),
        "experiment": experiment or str(ws.config.get("runs.experiment") or "default"),
        "started": time.time(),
        "user": user(),
        "email": email,  # git's: who a reproduction takes the run to be (see runs/ids.py)
        "host": socket.gethostname(),
        "command": argv,
        "pid": os.getpid(),
        "code": record,
        "env": env_id,
        "interpreter": interpreter,
        "modified": modified,
        "pointers_start": {t.target: t.ptr.id for t in tracked},
        "track_pointers": pointers,
        "tags": {k: redactor.redact_value(k, str(v)) for k, v in (tags or {}).items()},
        "params": {k: redactor.redact_value(k, str(v)) for k, v in (params or {}).items()},
        "notebook": nb,
    }
    return start


def _stored_code(
    ws: Workspace, code: CodeState | None, like: Mapping[str, Any] | None
) -> tuple[str | None, list[str | None]]:
    """The ids of the uncommitted diff and of each submodule's (a shared start's when ``like``)."""
    if code is None:
        return (like or {})["code"].get("diff"), []
    diff_id = ws.store.put_bytes(code.patch) if code.patch else None
    return diff_id, [ws.store.put_bytes(s.patch) if s.patch else None for s in code.submodules]


def _own_environment(
    ws: Workspace, redactor: Redactor, environ: Mapping[str, str] | None = None
) -> dict[str, Any]:
    return capture_environment(
        ws.root,
        ws.dot / "cache",
        allow_env=[str(v) for v in ws.config.get("runs.env_allow") or []],
        redact=redactor.redact,
        environ=environ,  # the command's, when an `env` in front of it changed them
    )


def contribute_environment(ws: Workspace, run_id: str, folder: Path) -> None:
    """A process attached to a ``tether run`` records its own environment when the run's
    could not be known from the command line (a shell script, ``uv run``) or is another
    interpreter's: what imports tether is what ran. The first process to do it wins."""
    start = read_start(folder)
    if (folder / CONTRIBUTED_ENV).exists() or not contribution_needed(start.get("interpreter")):
        return
    env = _own_environment(ws, redactor_for(ws))
    env["interpreter"] = {"known": True, "path": sys.executable, "source": "process"}
    mark_editables(env, ws.root)
    with ws.writing():
        oid = ws.store.put_bytes(json.dumps(env, sort_keys=True).encode())
        ws.refs.set(live_ref(run_id, f"env-{os.getpid()}"), [oid], durable=False)
    try:
        fd = os.open(folder / CONTRIBUTED_ENV, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        return
    with os.fdopen(fd, "w") as f:
        f.write(oid)


def _code_state(
    ws: Workspace, redactor: Redactor, entry_point: str | None, pointers: bool
) -> tuple[Any, bytes | None, str | None]:
    """The code pillar, (when asked) the pointer listing and the e-mail git commits as, the
    git commands run at once:
    each is mostly process start-up."""
    known, remotes = cached_remotes(ws.root)
    listing_cmd = (POINTER_LISTING,) if pointers else ()
    status, config, *rest = git_many(
        ws.root, STATUS, EMAIL_CONFIG, *listing_cmd, *(() if known else (REMOTES,))
    )
    listing = rest.pop(0) if pointers else None
    if not known:
        remotes = rest[0]
        remember_remotes(ws.root, remotes)
    if status is None:
        raise RunError(f"`git status` failed in {ws.root}: is it a readable git repository?")
    code = capture_code(
        ws.root,
        redactor,
        entry_point,
        ran=(status, remotes),
        max_file=int(ws.config.get("runs.diff_max_file")),
    )
    return code, listing, email_from(config)


def redact_argv(redactor: Redactor, argv: list[str]) -> list[str]:
    """Each argument, and the value of a secret-looking option (``--db-password X``,
    ``--pw=X``, ``--wandb-key X``), and the password of ``-u user:password``; never
    ``--pad-token-id 0`` or ``--max-tokens 512``."""
    out = [redactor.redact(a) for a in argv]
    for i, arg in enumerate(argv):
        if not arg.startswith("-"):
            continue
        name, eq, value = arg.partition("=")
        if eq and arg.startswith("--") and redactor.is_secret_option(name.lstrip("-")):
            out[i] = f"{name}={redactor.redact_value(name.lstrip('-'), value)}"
        elif eq or i + 1 >= len(argv):
            continue
        elif arg in ("-u", "--user") and ":" in argv[i + 1]:  # curl -u user:password
            user, _, password = argv[i + 1].partition(":")
            if password and password != user and not password.isdigit():  # not uid:gid
                out[i + 1] = f"{user}:{redactor.redact_value('password', password)}"
        elif redactor.is_secret_option(arg.lstrip("-")):
            out[i + 1] = redactor.redact_value(arg.lstrip("-"), argv[i + 1])  # not `--eos-token 2`
    return out


def _make_folder(ws: Workspace, run_id: str) -> tuple[Path, int]:
    """The folder appears under its final name only with its lock already held, so no other
    process can mistake a run being born for a dead one."""
    root = live_root(ws)
    tmp = root / f".{run_id}.new"
    tmp.mkdir(parents=True)
    fd = os.open(tmp / "lock", os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    folder = root / run_id
    os.rename(tmp, folder)
    return folder, fd


def _folder_in(ws: Workspace, folder: Path) -> str | None:
    """``folder`` relative to the top of the work tree ("." for the top; None outside it)."""
    try:
        return folder.resolve().relative_to(ws.root.resolve()).as_posix()
    except ValueError:
        return None


def _path_in(ws: Workspace, path: str) -> str:
    """A user-given path as a run records it: repository-relative, else absolute."""
    try:
        return ws.rel(path)
    except TetherError:
        return str(Path(path).absolute())


def _default_name(entry_point: str | None, run_id: str) -> str:
    stem = Path(entry_point).stem if entry_point else "run"
    return f"{stem}-{run_id[-6:]}"


def _pointer_ids(ws: Workspace, listing: list[str] | None = None) -> dict[str, str]:
    ws.forget_pointers()
    return {t.target: t.ptr.id for t in ws.readable_pointers(listing)}


def _running_row(start: Mapping[str, Any]) -> IndexedRun:
    code = start["code"]
    return IndexedRun(
        id=start["id"],
        name=start["name"],
        experiment=start["experiment"],
        status="running",
        started=start["started"],
        user=start["user"],
        host=start["host"],
        command=" ".join(start["command"]),
        commit=code["commit"],
        branch=code["branch"],
        dirty=code["dirty"],
        parent=start.get("parent"),
        params=dict(start["params"]),
        tags=dict(start["tags"]),
    )


CONTRIBUTED_ENV = "env.process"  # in a live run's folder: the id its child process stored


def read_contribution(folder: Path) -> str | None:
    try:
        text = (folder / CONTRIBUTED_ENV).read_text().strip()
    except OSError:
        return None
    return text if text.startswith("blake3:") else None


def read_start(folder: Path) -> dict[str, Any]:
    try:
        start: dict[str, Any] = json.loads((folder / "start.json").read_bytes())
    except (OSError, ValueError) as exc:
        raise RunError(f"live run {folder.name} has no readable start.json") from exc
    return start


def seal(
    ws: Workspace,
    folder: Path,
    status: str,
    *,
    exit_code: int | None = None,
    ended: float | None = None,
) -> str:
    """Turn the live run in ``folder`` into an immutable record; returns the record's id."""
    if status not in STATUSES[1:]:
        raise RunError(f"a run ends as one of {', '.join(STATUSES[1:])}, not {status!r}")
    start = read_start(folder)
    start["env_process"] = read_contribution(folder)
    events = read_events(folder)
    redactor = redactor_for(ws)
    store = ws.store
    with ws.writing():
        series_id = store.put_bytes(series_document(events.series)) if events.series else None
        log_id = None
        log = folder / "output.log"
        if log.exists():
            log_id = store.put_bytes(redactor.redact_bytes(log.read_bytes()))
        ended = ended if ended is not None else time.time()
        body, links = _record(ws, start, events, status, exit_code, ended, series_id, log_id)
        data = dump_record("run", body, links)
        record_id = store.put_bytes(data)
        store.barrier()  # everything the record names is durable before a ref names it
        ws.refs.set(f"runs/{start['id']}", [record_id])
        _drop_live_refs(ws, start["id"])
    # sealed: the folder goes before the index is told, so a failing index can never lead to
    # the run being sealed a second time (`tether reindex` catches the index up)
    shutil.rmtree(folder, ignore_errors=True)
    if start.get("index", True):
        open_index(ws).put_runs([to_indexed(body, record_id)])  # the body just sealed
        _upload(ws, start["id"])
    else:
        defer(ws, start["id"], record_id)
    return record_id


UPLOAD_TIMEOUT_S = 3.0


def _upload(ws: Workspace, run_id: str) -> None:
    """Hand a run just sealed to the team server, if the project has one: one try, a bounded
    wait, none at all while the server recently failed to answer (a sweep of runs does not
    wait on it at each end). A failure loses nothing: the run stays pending and `tether sync`
    uploads it."""
    if not ws.config.get("server.url"):
        return
    from tether.teamclient import sync as team

    try:
        where = team.target(ws, timeout=UPLOAD_TIMEOUT_S)
        if where is None or team.server_down(ws, where.key):
            return
        try:
            team.sync(ws, where, only=[run_id], data=False, retries=0)
        except ServerUnavailableError:
            team.note_down(ws, where.key, True)
            return
        team.note_down(ws, where.key, False)
    except TetherError:
        pass


def _record(
    ws: Workspace,
    start: dict[str, Any],
    events: Events,
    status: str,
    exit_code: int | None,
    ended: float,
    series_id: str | None,
    log_id: str | None,
) -> tuple[dict[str, Any], list[str | None]]:
    """The sealed record's body, and the ids it links (what gc and push follow)."""
    edited = dict(start.get("modified") or {})
    modified: dict[str, str] = {p: i for p, i in edited.items() if i}
    body = {
        "id": start["id"],
        "name": start["name"],
        "experiment": start["experiment"],
        "status": status,
        "started": start["started"],
        "ended": ended,
        "user": start["user"],
        "email": start.get("email"),
        "host": start["host"],
        "command": start["command"],
        "exit_code": exit_code,
        "parent": start.get("parent"),
        "code": start["code"],
        # the environment the command's own process reported, when it imported tether
        "env": start.get("env_process") or start["env"],
        "data": {
            # a tracked path edited but not re-added is read as it was: an input by real id
            "inputs": {**modified, **events.inputs},
            "modified": sorted(modified),
            "missing": sorted(p for p, i in edited.items() if not i),  # tracked, but absent
            "outputs": events.outputs,
            "pointers_start": start["pointers_start"],
            "pointers_end": _pointer_ids(ws) if start.get("track_pointers", True) else {},
        },
        "params": {**start["params"], **events.params},
        "seeds": events.seeds,
        "tags": {**start["tags"], **events.tags},
        "notes": events.notes,
        "metrics": summarize(events.series),
        "series": series_id,
        "artifacts": events.artifacts,
        "log": log_id,
        "notebook": start.get("notebook"),
        "cwd": start.get("cwd"),
        "declared": start.get("declared") or {},
    }
    links = [
        start["env"],
        start["code"]["diff"],
        *(s.get("diff") for s in start["code"].get("submodules") or []),
        series_id,
        log_id,
        *events.artifacts.values(),
        *events.inputs.values(),
        *events.outputs.values(),
        *modified.values(),
        start.get("env_process"),
        *_notebook_ids(start.get("notebook")),
    ]
    return body, links


def recover(ws: Workspace) -> list[str]:
    """Seal every live run whose process is gone as ``killed``; the ids it sealed."""
    root = live_root(ws)
    if not root.is_dir():
        return []
    sealed = []
    for folder in sorted(root.iterdir()):
        if folder.name.startswith(".") or not folder.is_dir():
            continue
        try:
            fd = os.open(folder / "lock", os.O_RDWR)
        except FileNotFoundError:
            continue  # sealed and removed by another process just now
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # alive
            if not (folder / "start.json").exists():
                shutil.rmtree(folder, ignore_errors=True)  # died before it captured anything
                continue
            if ws.refs.get(f"runs/{folder.name}") is not None:
                shutil.rmtree(folder, ignore_errors=True)  # died right after sealing it
                continue
            events = read_events(folder)
            last = max(events.last_ts, (folder / "start.json").stat().st_mtime)
            seal(ws, folder, "killed", ended=last)
            sealed.append(folder.name)
        finally:
            os.close(fd)
    return sealed
