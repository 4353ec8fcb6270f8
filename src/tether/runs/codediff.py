"""The code pillar of ``tether diff``: commits, uncommitted changes, untracked files too big for
the diff, submodules and repositories inside the project."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from tether.capture.code import skipped_files
from tether.errors import GitError
from tether.gitio import git, read_blob
from tether.hashing import hash_bytes
from tether.runs.ledger import LEDGER
from tether.workspace.repo import Workspace


@dataclass
class CodeDiff:
    commit_a: str | None
    commit_b: str | None
    ahead: int = 0  # commits in b not in a
    behind: int = 0
    files: list[str] = field(default_factory=list)  # changed between the commits
    dirty_a: list[str] = field(default_factory=list)
    dirty_b: list[str] = field(default_factory=list)
    same_patch: bool = True
    # untracked files too big for the diff, named by size and id: path -> (A's, B's)
    skipped: dict[str, tuple[dict[str, Any] | None, dict[str, Any] | None]] = field(
        default_factory=dict
    )
    submodules: list[str] = field(default_factory=list)  # how each submodule differs


def code_diff(ws: Workspace, a: dict[str, Any], b: dict[str, Any]) -> CodeDiff:
    out = CodeDiff(a.get("commit"), b.get("commit"))
    out.dirty_a, out.dirty_b = list(a.get("changed") or []), list(b.get("changed") or [])
    out.same_patch = a.get("diff") == b.get("diff")
    sa, sb = skipped_files(a), skipped_files(b)
    if not out.same_patch and set(sa) != set(sb):
        _skipped_in_one(ws, a, b, sa, sb, out)
    out.skipped = {
        p: (sa.get(p), sb.get(p))
        for p in sorted(set(sa) | set(sb))
        if sa.get(p) != sb.get(p) or not (sa[p].get("id"))
    }
    out.submodules = _submodules(a.get("submodules") or [], b.get("submodules") or [])
    if out.commit_a and out.commit_b and out.commit_a != out.commit_b:
        try:
            # Tether's own ledger commits are not code changes
            skip = ("--", ".", f":(exclude){LEDGER}")
            span = f"{out.commit_a}...{out.commit_b}"
            counts = git(ws.root, "rev-list", "--left-right", "--count", span, *skip)
            out.behind, out.ahead = (int(x) for x in counts.split())
            names = git(ws.root, "diff", "--name-only", "-z", out.commit_a, out.commit_b, *skip)
            out.files = [n for n in names.decode().split("\0") if n]
        except GitError:
            out.files = ["(a commit is not in this clone: `git fetch` it)"]
    return out


def code_causes(code: CodeDiff, deps: list[str] | None) -> tuple[list[str], list[str]]:
    """The code pillar's likely causes, and notes on what they leave out. ``deps``: two runs of
    one pipeline stage, which reads only those paths (a changed dep is named as an input
    already): code changed elsewhere is no cause, and a note says so."""
    files, dirty = code.files, sorted(set(code.dirty_a) | set(code.dirty_b))
    notes = []
    if deps is not None:
        mine = [f for f in files if _under(f, deps)]
        elsewhere = (set(files) - set(mine)) | {p for p in dirty if not _under(p, deps)}
        if elsewhere:
            notes.append(
                f"code changed outside the stage's deps ({counted(len(elsewhere), 'file')}) is not "
                "ranked: the stage reads its deps, whose content is compared as its inputs"
            )
        files, dirty = mine, [p for p in dirty if _under(p, deps)]
    out = []
    apart = code.ahead + code.behind
    if code.commit_a != code.commit_b and (apart or code.files) and (deps is None or files):
        out.append(f"code: {counted(apart, 'commit')} apart, {counted(len(files), 'file')} changed")
    if not code.same_patch and (deps is None or dirty):
        out.append("code: uncommitted changes differ")
    return out, notes


def _under(path: str, roots: list[str]) -> bool:
    return any(path == r or path.startswith(r.rstrip("/") + "/") for r in roots)


def counted(count: int, noun: str) -> str:
    """``3 files``, ``1 file``."""
    return f"{count} {noun}" + ("" if count == 1 else "s")


def _submodules(a: list[dict[str, Any]], b: list[dict[str, Any]]) -> list[str]:
    ma, mb = {s.get("path"): s for s in a}, {s.get("path"): s for s in b}
    out = []
    for path in sorted(set(ma) | set(mb), key=str):
        x, y = ma.get(path) or {}, mb.get(path) or {}
        kind = "repository" if x.get("nested") or y.get("nested") else "submodule"
        if x.get("commit") != y.get("commit"):
            out.append(
                f"{kind} {path}: commit {str(x.get('commit'))[:10]} → {str(y.get('commit'))[:10]}"
            )
        if x.get("diff") != y.get("diff"):
            out.append(f"{kind} {path}: uncommitted changes differ")
    return out


def _skipped_in_one(
    ws: Workspace,
    a: dict[str, Any],
    b: dict[str, Any],
    sa: dict[str, dict[str, Any]],
    sb: dict[str, dict[str, Any]],
    out: CodeDiff,
) -> None:
    """An untracked file one run skipped (too big for its diff) and the other stored in its
    diff (``runs.diff_max_file`` changed in between): compare it by content, and the two diffs
    without it. ``sa``/``sb`` are updated: a file found the same is dropped from both, one
    found in the other's diff is named so (never "absent")."""
    pa, pb = (_patch_files(ws, r.get("diff")) for r in (a, b))
    if pa is None or pb is None:
        return
    patches = [pa, pb]
    for mine, theirs, patch in ((sa, sb, pb), (sb, sa, pa)):
        for path in [p for p in mine if p not in theirs and p in patch]:
            blob = _blob(patch[path])
            data = read_blob(ws.root, blob) if blob else None
            if data is not None and hash_bytes(data) == mine[path].get("id"):
                del mine[path]  # the same bytes: no difference
            else:
                size = len(data) if data is not None else None
                theirs[path] = {"size": size, "id": None, "in_diff": True}
            for p in patches:
                p.pop(path, None)
    out.same_patch = patches[0] == patches[1]


def _patch_files(ws: Workspace, oid: str | None) -> dict[str, bytes] | None:
    """A recorded diff split by file: path -> its part (None when it is not here)."""
    if not oid:
        return {}
    try:
        patch = ws.store.read_bytes(oid)
    except FileNotFoundError:
        return None
    parts: dict[str, bytes] = {}
    for part in re.split(rb"(?m)^diff --git ", patch)[1:]:
        header = part.split(b"\n", 1)[0].decode("utf-8", "surrogateescape")
        parts[header[2 : (len(header) - 1) // 2]] = part  # "a/P b/P": a new file's path twice
    return parts


def _blob(part: bytes) -> str | None:
    """The git blob id of a file's new content in its part of a ``--binary`` diff."""
    for line in part.split(b"\n")[:6]:
        if line.startswith(b"index ") and b".." in line:
            return line.split()[1].split(b"..")[1].decode()
    return None
