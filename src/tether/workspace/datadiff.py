"""``tether data diff``: which tracked files were added, removed or changed between two git
revisions, or between a revision and the working tree."""

from __future__ import annotations

from dataclasses import dataclass

from tether.errors import UsageError
from tether.gitio.repo import is_commit, pointer_files, show
from tether.objects.tree import Tree, diff_trees
from tether.workspace.pointer import PointerFile, target_of
from tether.workspace.repo import Tracked, Workspace
from tether.workspace.status import current_tree, recorded_tree


@dataclass(frozen=True)
class DataChange:
    path: str  # repository-relative file path
    change: str  # "added", "removed" or "modified"


def _trees_at(ws: Workspace, rev: str | None) -> dict[str, Tree]:
    """Tracked path -> tree, at a git revision or (``None``) in the working tree."""
    out: dict[str, Tree] = {}
    if rev is None:
        for t in ws.pointers():
            tree = current_tree(ws, t)
            if tree is not None:
                out[t.target] = tree
        return out
    if not is_commit(ws.root, rev):
        raise UsageError(
            f"{rev} is not a commit in this repository (no commits yet?): commit the pointer "
            "files first, or name another revision"
        )
    for rel in pointer_files(ws.root, rev):
        ptr = PointerFile.parse(show(ws.root, rev, rel), f"{rev}:{rel}")
        t = Tracked(rel, target_of(rel, ptr), ptr)
        tree = recorded_tree(ws, t)
        if tree is None:
            ws.store.read_bytes(ptr.id)  # raises MissingObjectError with the `tether pull` hint
            continue
        out[t.target] = tree
    return out


def data_diff(ws: Workspace, rev_a: str = "HEAD", rev_b: str | None = None) -> list[DataChange]:
    old, new = _trees_at(ws, rev_a), _trees_at(ws, rev_b)
    changes: list[DataChange] = []
    for target in sorted(old.keys() | new.keys()):
        a = old.get(target, Tree(()))
        b = new.get(target, Tree(()))
        if _is_file(a) and _is_file(b):
            # a tracked file: compare content only (pointers do not keep a file's mode)
            if a.entries[0].id != b.entries[0].id:
                changes.append(DataChange(target, "modified"))
            continue
        d = diff_trees(a, b)
        for kind, rels in (("added", d.added), ("removed", d.removed), ("modified", d.modified)):
            changes.extend(DataChange(f"{target}/{r}" if r else target, kind) for r in rels)
    return sorted(changes, key=lambda c: c.path)


def _is_file(tree: Tree) -> bool:
    return len(tree.entries) == 1 and tree.entries[0].path == ""
