"""Git operations Tether needs, each one ``git`` call (no GitPython: it is slow to import)."""

from __future__ import annotations

import os
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
    root: Path,
    *args: str,
    stdin: bytes | None = None,
    env: dict[str, str] | None = None,
    timeout: float | None = None,
) -> bytes:
    proc = _run(root, args, stdin, env, timeout)
    if proc.returncode != 0:
        raise GitError(f"git {' '.join(args)} failed: {proc.stderr.decode().strip()}")
    return proc.stdout


def _run(
    root: Path,
    args: tuple[str, ...],
    stdin: bytes | None,
    env: dict[str, str] | None,
    timeout: float | None,
) -> subprocess.CompletedProcess[bytes]:
    try:
        return subprocess.run(
            ["git", *args],
            cwd=root,
            input=stdin,
            capture_output=True,
            check=False,
            env=env,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        raise GitError(
            f"git {' '.join(args)} did not finish within {timeout:g} s in {root}: "
            "check the repository (and the network, for a remote) and run again"
        ) from None
    except FileNotFoundError as exc:
        if exc.filename == "git":
            raise GitError("git is not installed: install git and run again") from exc
        raise GitError(f"cannot run git in {root}: {exc.strerror}") from exc
    except OSError as exc:  # the folder cannot be entered (permission denied)
        raise GitError(f"cannot run git in {root}: {exc.strerror}") from exc


def git_maybe(root: Path, *args: str, timeout: float | None = None) -> bytes | None:
    """``git`` for a question whose answer may be "no": None when git says so (exit 1, as
    ``rev-parse -q --verify`` for a missing ref or ``config`` for an unset key), or when ``root``
    is in no git repository (nor is a folder at all). A failure to answer raises ``GitError``:
    git missing, a damaged repository, permission denied, ``timeout`` seconds passed."""
    if not root.is_dir():
        return None
    proc = _run(root, args, None, None, timeout)
    if proc.returncode == 0:
        return proc.stdout
    if proc.returncode == 1 or not in_repository(root):
        return None
    raise GitError(
        f"git {' '.join(args)} failed in {root} (exit {proc.returncode}): "
        f"{proc.stderr.decode(errors='replace').strip() or 'no message'}"
    )


def in_repository(folder: Path) -> bool:
    """Whether ``folder`` is in a git repository as git finds one (no subprocess): ``$GIT_DIR``,
    a ``.git`` in it or a parent, or a bare repository."""
    if os.environ.get("GIT_DIR"):
        return True
    here = folder.resolve()
    for candidate in (here, *here.parents):
        if (candidate / ".git").exists():
            return True
        if (candidate / "HEAD").is_file() and (candidate / "objects").is_dir():
            return True  # a bare repository (or a .git folder itself)
    return False


def committer_email(root: Path) -> str | None:
    """The e-mail git would commit as here: ``$GIT_COMMITTER_EMAIL``, then ``committer.email``
    or ``user.email`` in git's config, then ``$EMAIL``; None when none is set."""
    given = os.environ.get("GIT_COMMITTER_EMAIL", "").strip()
    if given:
        return given
    out = git_maybe(root, "config", "--get-regexp", r"^(committer|user)\.email$")
    found = dict(
        line.partition(" ")[::2] for line in (out or b"").decode(errors="replace").splitlines()
    )
    email = found.get("committer.email") or found.get("user.email") or os.environ.get("EMAIL")
    return email.strip() if email and email.strip() else None


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
    """Whether ``rev`` names a commit here (a damaged repository raises ``GitError``)."""
    return git_maybe(root, "rev-parse", "--verify", "-q", f"{rev}^{{commit}}") is not None


def read_blob(root: Path, rev: str) -> bytes | None:
    """The bytes of the blob ``rev`` names (an id, maybe abbreviated, or a ref), or None when
    there is no such blob here; a damaged repository raises ``GitError``."""
    sha = git_maybe(root, "rev-parse", "--verify", "-q", f"{rev}^{{blob}}")
    return None if sha is None else git(root, "cat-file", "blob", sha.decode().strip())
