"""The data a reproduction starts from: the rebuilt tree's tracked data checked out, the run's
inputs restored by id (fetched, with a folder's files, when the cache lacks them), and what the
run lacked when it started removed again.

A run record may come from anyone who can push (``tether pull`` brings others' runs), so every
path of it that the reproduction writes, removes or starts in is checked first, as git checks a
tree's paths (:mod:`tether._paths`): :func:`check_record` refuses the record before anything is
written, and the writes go through a :class:`~tether._paths.WriteGuard`, so a symlink in the
rebuilt commit cannot lead one outside it. A path a run recorded outside its repository
(absolute) is never written: such an input is not restored, such an out not removed.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from tether._fs import remove_path
from tether._paths import WriteGuard, check_path
from tether.errors import UnsafePathError
from tether.objects.tree import HEADER as TREE_HEADER
from tether.pipelines.restore import check_folder, put
from tether.repro.verdict import Failed
from tether.workspace.materialize import is_folder
from tether.workspace.repo import Workspace
from tether.workspace.status import content_id


def restore_data(ws: Workspace, copy: Workspace, record: dict[str, Any], fetch: Any) -> list[str]:
    """Check out the tracked data and restore the inputs by id: the paths it restored. Tracked
    data the run lacked when it started is removed again: the re-run must lack it too."""
    from tether.workspace.checkout import apply_checkout, plan_checkout

    check_record(record)
    data = _mapping(record.get("data"))
    inputs = {str(p): str(o) for p, o in _mapping(data.get("inputs")).items()}
    lacked = [str(p) for p in _listed(data.get("missing"))]
    wanted = {o for p, o in inputs.items() if not os.path.isabs(p)}
    wanted |= {str(o) for p, o in _mapping(data.get("pointers_start")).items() if p not in lacked}
    if fetch is not None and _incomplete(ws, wanted):
        fetch(sorted(wanted))  # each with its closure: a folder's manifest and its files
    for path, oid in inputs.items():  # a folder's own paths, before anything is written
        if not os.path.isabs(path) and ws.store.has(oid) and is_folder(ws, oid):
            try:
                check_folder(ws, oid, f"{_run(record)}'s input {path!r}")
            except UnsafePathError as exc:
                raise UnsafePathError(f"{exc}{_HINT}") from None
    plan = plan_checkout(copy, None)
    apply_checkout(copy, plan, force=True)
    guard = WriteGuard(copy.root)
    for path in lacked:
        if os.path.lexists(copy.abs(path)):  # (the guard makes missing folders: none here)
            remove_path(Path(guard.file(path)))
    restored = []
    for path, oid in inputs.items():
        if os.path.isabs(path) or content_id(copy, path) == oid:
            continue  # outside the repository, or the commit and its diff brought it already
        put(copy, guard, path, oid)
        restored.append(path)
    return restored


def check_record(record: dict[str, Any]) -> None:
    """Every path of the run's record that a reproduction writes, removes or starts in is one
    Tether would write (see the module's docstring); else :class:`UnsafePathError` naming the
    run and the entry. A record of any shape is checked: its paths pass, or it is refused."""
    data = _mapping(record.get("data"))
    declared = record.get("declared")
    if declared is None:  # recorded before Tether kept --dep/--out: its outputs are its outs
        declared = {"outs": _listed(data.get("outputs"))}
    declared = _mapping(declared)
    subs = [
        _mapping(s).get("path") for s in _listed(_mapping(record.get("code")).get("submodules"))
    ]
    inside = [
        ("input", _inside(_listed(data.get("inputs")))),
        ("--dep", _inside(_listed(declared.get("deps")))),
        ("--out", _inside(_listed(declared.get("outs")))),
        ("tracked path missing at the start", [str(p) for p in _listed(data.get("missing"))]),
        ("submodule", [str(p) for p in subs if p]),
    ]
    cwd = record.get("cwd")
    if cwd is not None and cwd != ".":
        inside.append(("folder it started in", [str(cwd)]))
    for what, paths in inside:
        for path in paths:
            _check(path, f"{_run(record)}'s {what}")


def run_folder(tree: Path, rel: str, record: dict[str, Any]) -> Path:
    """The folder ``rel`` the run started in, in the rebuilt ``tree``: checked, and made (when
    the commit has no such folder) through no symlink."""
    if rel in ("", "."):
        return tree
    _check(rel, f"{_run(record)}'s folder it started in")
    return Path(WriteGuard(tree).folder(rel))


_HINT = (
    ": Tether does not reproduce a run whose record names such a path (Tether itself never "
    "records one; `tether runs show` says who recorded the run)"
)


def _check(path: str, where: str) -> None:
    try:
        check_path(path, where)
    except UnsafePathError as exc:
        raise UnsafePathError(f"{exc}{_HINT}") from None


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _listed(value: Any) -> list[Any]:
    """A record's list (or a mapping's keys); anything else names no path."""
    return list(value) if isinstance(value, list | dict) else []


def _run(record: dict[str, Any]) -> str:
    return f"run {record.get('name')} ({str(record.get('id'))[:13]})"


def _inside(paths: Iterable[Any]) -> list[str]:
    """The paths a record names inside its repository (an absolute one is outside it)."""
    return [str(p) for p in paths if not os.path.isabs(str(p))]


def _incomplete(ws: Workspace, ids: set[str]) -> bool:
    """Some of ``ids`` missing from the cache, or a folder's manifest here without its files."""
    if ws.store.missing(ids):
        return True
    trees = [o for o in ids if ws.store.read_head(o, 32).startswith(TREE_HEADER)]
    return any(ws.store.missing(ws.store.load_tree(o).blob_ids()) for o in trees)


def outside(record: dict[str, Any]) -> list[str]:
    """The paths a record names outside its repository (absolute): its ``--dep``/``--out``,
    inputs and outputs there. A reproduction never reads, stores or compares them: an input is
    judged only by the id the record holds, an output not at all."""
    data = _mapping(record.get("data"))
    declared = _mapping(record.get("declared"))
    named = [
        *_listed(declared.get("deps")),
        *_listed(declared.get("outs")),
        *_listed(data.get("inputs")),
        *_listed(data.get("outputs")),
    ]
    return sorted({str(p) for p in named if os.path.isabs(str(p))})


def reads(record: dict[str, Any]) -> list[str]:
    """The recorded ``--dep`` paths and inputs, as a reproduction restores them (those inside
    the repository) or leaves them (those outside it)."""
    data = _mapping(record.get("data"))
    declared = _mapping(record.get("declared"))
    named = [*_listed(declared.get("deps")), *_listed(data.get("inputs"))]
    return sorted({str(p) for p in named})


def unseen(record: dict[str, Any], restored: list[str]) -> list[str]:
    """Restored inputs the run's code capture did not see (a stage's upstream outs, written
    after the pipeline began): data, so the reproduction's capture must not take them for code."""
    seen = set((record.get("code") or {}).get("changed") or [])
    return [p for p in restored if not any(p == c or p.startswith(c + "/") for c in seen)]


def in_tree(tree: Path, path: str) -> str:
    """A recorded dep or out (repository-relative, or absolute outside it) in the tree."""
    if os.path.isabs(path):
        return path
    if os.path.normpath(path).startswith(".."):
        raise Failed(f"the run's recorded path {path!r} leaves the repository")
    return str(tree / path)
