"""The data a reproduction starts from: the rebuilt tree's tracked data checked out, the run's
inputs restored by id (fetched, with a folder's files, when the cache lacks them), and what the
run lacked when it started removed again."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from tether._fs import remove_path
from tether.gitio.repo import DOT
from tether.objects.tree import HEADER as TREE_HEADER
from tether.repro.verdict import Failed
from tether.workspace.materialize import materialize
from tether.workspace.repo import Workspace
from tether.workspace.status import content_id


def restore_data(ws: Workspace, copy: Workspace, record: dict[str, Any], fetch: Any) -> list[str]:
    """Check out the tracked data and restore the inputs by id: the paths it restored. Tracked
    data the run lacked when it started is removed again: the re-run must lack it too."""
    from tether.workspace.checkout import apply_checkout, plan_checkout

    data = record.get("data") or {}
    inputs = data.get("inputs") or {}
    lacked = [p for p in data.get("missing") or [] if _plain(p)]
    wanted = {o for p, o in inputs.items() if not os.path.isabs(p)}
    wanted |= {o for p, o in (data.get("pointers_start") or {}).items() if p not in lacked}
    if fetch is not None and _incomplete(ws, wanted):
        fetch(sorted(wanted))  # each with its closure: a folder's manifest and its files
    plan = plan_checkout(copy, None)
    apply_checkout(copy, plan, force=True)
    for path in lacked:
        remove_path(Path(in_tree(copy.root, path)))
    restored = []
    for path, oid in inputs.items():
        if os.path.isabs(path) or content_id(copy, path) == oid:
            continue  # outside the repository, or the commit and its diff brought it already
        materialize(copy, path, oid)
        restored.append(path)
    return restored


def _plain(path: str) -> bool:
    """A recorded path this tree may remove: relative, never into ``.git`` or ``.tether``."""
    parts = Path(path).parts
    return bool(parts) and not os.path.isabs(path) and not {".git", DOT, ".."} & set(parts)


def _incomplete(ws: Workspace, ids: set[str]) -> bool:
    """Some of ``ids`` missing from the cache, or a folder's manifest here without its files."""
    if ws.store.missing(ids):
        return True
    trees = [o for o in ids if ws.store.read_head(o, 32).startswith(TREE_HEADER)]
    return any(ws.store.missing(ws.store.load_tree(o).blob_ids()) for o in trees)


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
