"""What ``tether lineage TARGET`` asks about: an object by id, a path (its content now), or a run.

A path is read, never stored: a tracked file or folder is known by its pointer's id (a file
inside a tracked folder by the folder's manifest); anything else is hashed as ``tether add``
would hash it, through the stat cache, without writing an object.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from tether.errors import (
    FormatError,
    MissingObjectError,
    PathError,
    PointerError,
    RunError,
    UsageError,
)
from tether.hashing import PREFIX, hash_file, is_object_id
from tether.lineage import lookup
from tether.objects.tree import Tree, TreeEntry
from tether.runs import catalog
from tether.workspace.repo import Tracked, Workspace

MODEL_VERSION = re.compile(r"^[\w.-]+@[\w.-]+$")
OBJECT, RUN = "object", "run"


@dataclass(frozen=True)
class Target:
    kind: str  # OBJECT or RUN
    id: str  # the object id or the run id
    path: str | None = None  # for an object named by path: the path as runs log it


def resolve_target(ws: Workspace, text: str) -> Target:
    """An object id (or a unique prefix of one runs logged), a path, or a run id/prefix/name."""
    if not text:
        raise UsageError("say what to trace: a path, an object id (blake3:…) or a run")
    if is_object_id(text):
        return Target(OBJECT, text)
    if text.startswith(PREFIX):
        return Target(OBJECT, _object_by_prefix(ws, text))
    found = path_target(ws, text)
    if found is not None:
        return found
    model = _model_version(ws, text)
    if model is not None:
        return Target(OBJECT, model)
    try:
        return Target(RUN, catalog.resolve(ws, text))
    except RunError:
        if MODEL_VERSION.match(text):
            raise UsageError(
                f"{text} looks like a model version (NAME@VERSION, @STAGE or @ALIAS) but no such "
                "model is registered here: `tether model list` shows them"
            ) from None
        raise UsageError(
            f"{text!r} is not a path here, an object id (blake3:…) or a run (id, id prefix or "
            "name): `tether runs list` shows the runs"
        ) from None


def _model_version(ws: Workspace, text: str) -> str | None:
    """The object of a registered model version: ``NAME@vN``, ``NAME@STAGE``, ``NAME@ALIAS``
    (the registry keeps a ref ``registry/NAME/AT`` for each), or the version id a serving
    process stamped on a prediction (``NAME@vN#blake3:…``)."""
    head, _, stamped = text.partition("#")
    if stamped and is_object_id(stamped) and MODEL_VERSION.match(head):
        return stamped
    if not MODEL_VERSION.match(text):
        return None
    name, _, at = text.partition("@")
    try:
        ref = ws.refs.get(f"registry/{name}/{at}")
    except FormatError:
        return None
    return ref[0] if ref else None


def _object_by_prefix(ws: Workspace, text: str) -> str:
    if len(text) < len(PREFIX) + 4:
        raise UsageError(f"{text} is too short: give at least 4 hex digits of the id")
    ids = lookup.objects_with_prefix(lookup.index_for(ws), text)
    if len(ids) == 1:
        return ids[0]
    if not ids:
        raise UsageError(f"no run logged an object whose id starts with {text}")
    raise UsageError(f"{text} matches {len(ids)} objects runs logged: give more of the id")


def path_target(ws: Workspace, text: str) -> Target | None:
    """The object a path names now, or None when there is nothing at that path."""
    tracked = _tracked(ws, text)
    if tracked is not None:
        return tracked
    path = Path(text)
    if not path.exists():
        return None
    try:
        rel = ws.rel(path)
    except PathError:
        if not path.is_file():
            raise
        absolute = str(path.absolute())  # runs log a file outside the repository like this
        return Target(OBJECT, hash_file(path), absolute)
    from tether.workspace.scan import look

    now = look(path.absolute(), rel, ws.statcache, cache_dir=ws.cache_dir, jobs=ws.jobs())
    return Target(OBJECT, now.id, rel)


def _tracked(ws: Workspace, text: str) -> Target | None:
    """A tracked file or folder, or something inside a tracked folder: its id per the pointer."""
    try:
        rel = ws.rel_lexical(text)
        selected = ws.select([text]) if rel else []
    except (PointerError, PathError):
        return None
    for tracked, sub in selected:
        oid = tracked.ptr.id if not sub else _inside(ws, tracked, sub)
        if oid is not None:
            return Target(OBJECT, oid, rel if rel != tracked.pointer else tracked.target)
    return None


def _inside(ws: Workspace, tracked: Tracked, sub: str) -> str | None:
    """The id of ``sub`` inside a tracked folder, from the folder's manifest."""
    try:
        tree = ws.store.load_tree(tracked.ptr.id)
    except (MissingObjectError, FileNotFoundError):
        return None  # not fetched: the file on disk is hashed instead
    return id_inside(tree, sub)


def id_inside(tree: Tree, sub: str) -> str | None:
    """The id of the file or folder at ``sub`` in a folder's manifest (None: not there)."""
    entry = tree.by_path.get(sub)
    if entry is not None:
        return entry.id
    inner = [
        TreeEntry(e.path[len(sub) + 1 :], *e[1:]) for e in tree.under(sub).entries if e.path != sub
    ]
    return Tree.build(inner).id if inner else None
