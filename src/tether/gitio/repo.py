"""Git operations Tether needs, each one ``git`` call (no GitPython: it is slow to import)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tether._fs import atomic_write
from tether.errors import GitError, NotARepositoryError

POINTER_SUFFIX = ".tether"
DOT = ".tether"  # the folder at the top of the work tree: cache, index, refs, runs


def find_root(start: Path | None = None) -> Path:
    """The top of the git work tree containing ``start`` (walks up; no subprocess)."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / ".git").exists():
            return folder
    raise NotARepositoryError(
        f"{here} is not inside a git repository: run `git init` first "
        "(or `tether new NAME` to start a project from a template)"
    )


def git(
    root: Path, *args: str, stdin: bytes | None = None, env: dict[str, str] | None = None
) -> bytes:
    try:
        proc = subprocess.run(
            ["git", *args], cwd=root, input=stdin, capture_output=True, check=False, env=env
        )
    except FileNotFoundError as exc:
        raise GitError("git is not installed: install git and run again") from exc
    if proc.returncode != 0:
        raise GitError(f"git {' '.join(args)} failed: {proc.stderr.decode().strip()}")
    return proc.stdout


def git_maybe(root: Path, *args: str) -> bytes | None:
    """``git`` for questions whose answer may be "none" (exit 1): None instead of an error."""
    try:
        return git(root, *args)
    except GitError:
        return None


def committer_email(root: Path) -> str | None:
    """The e-mail git would commit as here (GIT_COMMITTER_EMAIL, then user.email), if any."""
    ident = (git_maybe(root, "var", "GIT_COMMITTER_IDENT") or b"").decode()
    return ident.partition("<")[2].partition(">")[0].strip() or None


def init_repo(path: Path) -> None:
    git(path, "init", "-q")


POINTER_LISTING = ("ls-files", "-z", "-co", "--exclude-standard", "--", f"*{POINTER_SUFFIX}")


def git_many(root: Path, *commands: tuple[str, ...]) -> list[bytes | None]:
    """Several read-only ``git`` commands at once (each costs a few ms of process start-up,
    mostly waiting): their outputs in order, None for one that failed."""
    try:
        procs = [
            subprocess.Popen(
                ["git", *args], cwd=root, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
            )
            for args in commands
        ]
    except FileNotFoundError as exc:
        raise GitError("git is not installed: install git and run again") from exc
    outs = [proc.communicate()[0] for proc in procs]
    return [out if proc.returncode == 0 else None for out, proc in zip(outs, procs, strict=True)]


def parse_pointer_listing(out: bytes) -> list[str]:
    return sorted(p for p in out.decode().split("\0") if p.endswith(POINTER_SUFFIX))


def pointer_files(root: Path, rev: str | None = None) -> list[str]:
    """Repository-relative paths of pointer files in the work tree (``rev=None``) or at ``rev``."""
    if rev is None:
        out = git(root, *POINTER_LISTING)
    else:
        out = git(root, "ls-tree", "-r", "-z", "--name-only", rev)
    return parse_pointer_listing(out)


def show(root: Path, rev: str, path: str) -> bytes:
    return git(root, "show", f"{rev}:{path}")


def all_pointer_blobs(root: Path) -> dict[str, bytes]:
    """Every pointer file in every commit reachable from any ref: blob id -> content."""
    try:
        listing = git(root, "rev-list", "--all", "--objects").decode()
    except GitError:
        return {}  # no commits yet
    blobs = sorted(
        {
            line.split(" ", 1)[0]
            for line in listing.splitlines()
            if " " in line and line.endswith(POINTER_SUFFIX)
        }
    )
    if not blobs:
        return {}
    out = git(root, "cat-file", "--batch", stdin=("\n".join(blobs) + "\n").encode())
    result: dict[str, bytes] = {}
    pos = 0
    for blob in blobs:
        header_end = out.index(b"\n", pos)
        size = int(out[pos:header_end].split()[2])
        start = header_end + 1
        result[blob] = out[start : start + size]
        pos = start + size + 1
    return result


def ensure_ignored(folder: Path, name: str) -> bool:
    """Add ``/name`` to ``folder/.gitignore`` unless it is there; True when a line was added."""
    path = folder / ".gitignore"
    line = f"/{name}"
    try:
        text = path.read_text()
    except FileNotFoundError:
        text = ""
    if line in text.splitlines():
        return False
    if text and not text.endswith("\n"):
        text += "\n"
    atomic_write(path, (text + line + "\n").encode(), mode=0o644)
    return True


def is_commit(root: Path, rev: str) -> bool:
    proc = subprocess.run(
        ["git", "rev-parse", "--verify", "-q", f"{rev}^{{commit}}"], cwd=root, capture_output=True
    )
    return proc.returncode == 0
