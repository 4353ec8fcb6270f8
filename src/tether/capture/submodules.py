"""Git submodules in the code pillar: each one's commit and uncommitted change, and rebuilding
them in a reproduction's worktree.

The superproject's patch cannot say what changed inside a submodule (only "Subproject commit
X-dirty"), and ``git worktree add`` checks out no submodule. So each submodule is captured like
the repository itself (its HEAD, and its own patch with untracked files) and, on reproduce,
cloned from the user's own checkout (no network: ``--shared`` borrows its objects), checked out
at that commit and patched.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tether.errors import GitError
from tether.gitio import git, git_maybe, is_commit

GITLINK = "160000"


@dataclass
class SubmoduleState:
    path: str  # relative to the top repository
    commit: str | None  # its HEAD (or the recorded gitlink when it is not checked out)
    present: bool  # checked out in the work tree
    dirty: bool = False
    patch: bytes = b""
    skipped: dict[str, int] = field(default_factory=dict)  # untracked, too big: path -> size
    nested: bool = False  # a git repository inside the project that is no submodule

    def to_record(self, patch_id: str | None) -> dict[str, Any]:
        out = {
            "path": self.path,
            "commit": self.commit,
            "present": self.present,
            "dirty": self.dirty,
            "diff": patch_id,
        }
        return {**out, "nested": True} if self.nested else out


def gitlinks(root: Path, *, bare: bool = False) -> list[tuple[str, str]]:
    """(path, commit) of every submodule the index of ``root`` records; none without a
    ``.gitmodules`` (one stat: the common case costs nothing) unless ``bare`` (gitlinks
    ``git add`` made of a repository inside the project)."""
    if not bare and not (root / ".gitmodules").is_file():
        return []
    out = git_maybe(root, "ls-files", "-s", "-z") or b""
    found = []
    for rec in out.decode("utf-8", "surrogateescape").split("\0"):
        meta, _, path = rec.partition("\t")
        parts = meta.split()
        if len(parts) == 3 and parts[0] == GITLINK:
            found.append((path, parts[1]))
    return found


def capture_submodules(
    root: Path,
    capture: Callable[[Path], tuple[str | None, list[str], bytes, dict[str, int]]],
    prefix: str = "",
    nested: list[str] | None = None,
) -> list[SubmoduleState]:
    """Every submodule under ``root``, nested ones included, then the ``nested`` repositories
    (inside the project, no submodule). ``capture(sub_root)`` gives a checked-out one's (HEAD,
    changed paths, patch, skipped files), as for the top."""
    states = []
    links = [(rel, recorded, False) for rel, recorded in gitlinks(root)]
    for rel, recorded, inside in [*links, *((n, None, True) for n in nested or [])]:
        sub = root / rel
        name = f"{prefix}{rel}"
        if not (sub / ".git").exists():
            states.append(SubmoduleState(name, recorded, present=False))
            continue
        head, changed, patch, skipped = capture(sub)
        states.append(
            SubmoduleState(
                name,
                head,
                present=True,
                dirty=bool(changed),
                patch=patch,
                skipped={f"{name}/{p}": n for p, n in skipped.items()},
                nested=inside,
            )
        )
        states += capture_submodules(sub, capture, f"{name}/")
    return states


def restore_submodules(
    source: Path, tree: Path, recorded: Iterable[dict[str, Any]], read: Callable[[str], bytes]
) -> None:
    """Check out each recorded submodule in ``tree`` (a worktree of ``source``) at its commit,
    from ``source``'s own checkout of it, and apply its patch (``read(id)`` gives the bytes).
    Raises :class:`GitError` saying which submodule could not be rebuilt and what to do."""
    recorded = list(recorded)
    known = {str(s.get("path")) for s in recorded}
    # a bare gitlink (no .gitmodules) unchanged at the run's start is not recorded: its commit
    recorded += [
        {"path": p, "commit": c, "present": True, "nested": True}
        for p, c in gitlinks(tree, bare=True)
        if p not in known and (source / p / ".git").exists()
    ]
    for sub in sorted(recorded, key=lambda s: str(s.get("path", "")).count("/")):
        path, commit = str(sub.get("path") or ""), sub.get("commit")
        if not path or not commit or not sub.get("present", True):
            continue
        origin, target = source / path, tree / path
        if not (origin / ".git").exists() and sub.get("nested"):
            raise GitError(
                f"{path} is a git repository inside the project (not a submodule) and it is "
                f"not here: clone it at {path} (commit {commit[:12]}), or make it a submodule "
                "(`git submodule add`), and reproduce again"
            )
        if not (origin / ".git").exists():
            raise GitError(
                f"submodule {path} is not checked out here: run `git submodule update --init "
                f"{path}` and reproduce again"
            )
        if target.exists() and any(target.iterdir()):
            continue  # a parent submodule's checkout brought it (an already populated folder)
        target.mkdir(parents=True, exist_ok=True)
        git(tree, "clone", "-q", "--no-checkout", "--shared", str(origin.resolve()), str(target))
        if not is_commit(target, commit):
            raise GitError(
                f"{_kind(sub)} {path}'s commit {commit[:12]} is not in {origin}: fetch it there "
                f"(`git -C {path} fetch`) and reproduce again"
            )
        git(target, "checkout", "-q", "--detach", commit)
        if sub.get("diff"):
            _apply(target, read(str(sub["diff"])), path)


def _kind(sub: dict[str, Any]) -> str:
    return "the git repository" if sub.get("nested") else "submodule"


def _apply(where: Path, patch: bytes, path: str) -> None:
    try:
        git(where, "apply", "--binary", "--whitespace=nowarn", "-", stdin=patch)
    except GitError as exc:
        raise GitError(f"submodule {path}'s recorded diff no longer applies: {exc}") from None
