"""The code pillar: commit, branch, remote, dirty flag, and the uncommitted change as one patch.

The patch covers tracked edits *and* untracked, non-ignored files: it is made against a throwaway
copy of git's index with everything staged, so ``git apply`` on the commit rebuilds the exact
tree, binary files included, and the user's own index is never touched.

Untracked files named like secrets (``.env``, ``id_rsa``, ``*.pem``, ...) are left out of it and
named in the record; what redaction masks in it is recorded by file and line (in the new version
of the file), so a reproduction knows its code was altered and where.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tether.capture.submodules import SubmoduleState, capture_submodules, gitlinks
from tether.gitio import git, git_maybe
from tether.redact import Redactor, is_config_file, looks_like_secret_file

EMPTY_TREE = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"


@dataclass
class CodeState:
    commit: str | None
    branch: str | None
    remote: str | None
    dirty: bool
    changed: list[str] = field(default_factory=list)  # paths with uncommitted changes
    patch: bytes = b""  # redacted; stored as an object by the caller
    entry_point: str | None = None
    skipped: dict[str, int] = field(default_factory=dict)  # untracked files too big: path -> size
    submodules: list[SubmoduleState] = field(default_factory=list)
    left_out: list[str] = field(default_factory=list)  # untracked files that look like secrets
    redactions: list[dict[str, Any]] = field(default_factory=list)  # {file, line, rule}

    def to_record(
        self,
        patch_id: str | None,
        skipped_ids: dict[str, str | None] | None = None,
        submodule_ids: list[str | None] | None = None,
    ) -> dict[str, Any]:
        ids = skipped_ids or {}
        sub_ids = submodule_ids or [None] * len(self.submodules)
        return {
            "commit": self.commit,
            "branch": self.branch,
            "remote": self.remote,
            "dirty": self.dirty,
            "changed": self.changed,
            "diff": patch_id,
            "entry_point": self.entry_point,
            # named with size and id, never stored: too big for the record
            "skipped": {p: {"size": n, "id": ids.get(p)} for p, n in self.skipped.items()},
            "submodules": [s.to_record(i) for s, i in zip(self.submodules, sub_ids, strict=True)],
            # named only: never stored, never hashed
            "left_out": [{"path": p, "reason": LEFT_OUT_REASON} for p in self.left_out],
            "redactions": self.redactions,  # where the stored patch differs from the code that ran
        }


LEFT_OUT_REASON = "looks like a secret"

# an untracked file bigger than this (a data file someone forgot to ignore) is named in the record
# but left out of the patch: it would bloat the record and be copied into git's object store
MAX_UNTRACKED = 1 << 20

# --no-optional-locks: never take index.lock, so a run never makes the user's own git fail
STATUS = (
    "--no-optional-locks",
    "status",
    "--porcelain=v2",
    "--branch",
    "-z",
    "--untracked-files=all",
)
REMOTES = ("config", "--get-regexp", r"^remote\..*\.url$")


def capture_code(
    root: Path,
    redactor: Redactor,
    entry_point: str | None = None,
    *,
    ran: tuple[bytes, bytes | None] | None = None,
    max_file: int = MAX_UNTRACKED,
) -> CodeState:
    """The code's state. ``ran`` is the outputs of :data:`STATUS` and :data:`REMOTES` (None when
    there is no remote) when the caller ran them already, in parallel with other git commands."""
    out, remotes = ran if ran is not None else (git(root, *STATUS), git_maybe(root, *REMOTES))
    commit, branch, changed, untracked = _parse_status(out)
    state = CodeState(
        commit=commit,
        branch=branch,
        remote=_remote_url(remotes, redactor),
        dirty=bool(changed),
        changed=changed,
        entry_point=entry_point or _entry_point(root),
    )
    links = [p for p, _ in gitlinks(root)]
    nested = nested_repos(root, out, links)  # cloned inside, not submodules: captured alike
    links += nested
    if state.dirty:
        state.left_out, untracked = _secret_files(untracked)
        staged, _ = _secret_files(_added(out))  # `git add .env`, never committed: alike
        state.left_out = sorted(state.left_out + staged)
        state.skipped = _too_big(root, untracked, max_file)
        # a submodule's change is its own record's
        skip = sorted(state.skipped) + state.left_out + links
        state.patch, state.redactions = redact_patch(
            redactor, _patch(root, commit, skip, drop=staged)
        )
    if links:

        def one(sub: Path) -> tuple[str | None, list[str], bytes, dict[str, int]]:
            status = git(sub, *STATUS)
            head, _, changed, new = _parse_status(status)
            if not changed:
                return head, [], b"", {}
            name = sub.relative_to(root).as_posix()
            secret, new = _secret_files(new)
            staged, _ = _secret_files(_added(status))
            secret = sorted(secret + staged)
            state.left_out += [f"{name}/{p}" for p in secret]
            too_big = _too_big(sub, new, max_file)
            inner = [p for p, _ in gitlinks(sub)]
            patch, masked = redact_patch(
                redactor,
                _patch(sub, head, sorted(too_big) + secret + inner, drop=staged),
                f"{name}/",
            )
            state.redactions += masked
            return head, changed, patch, too_big

        state.submodules = capture_submodules(root, one, nested=nested)
        for sub in state.submodules:
            state.skipped.update(sub.skipped)
    return state


def _added(status: bytes) -> list[str]:
    """The files new relative to HEAD that are in the index (``git add`` or ``git add -N``, never
    committed): for the left-out rule they are untracked files."""
    out = []
    for rec in status.decode("utf-8", "surrogateescape").split("\0"):
        if rec.startswith("1 ") and "A" in rec[2:4]:
            out.append(rec.split(" ", 8)[8])
    return out


def _secret_files(untracked: list[str]) -> tuple[list[str], list[str]]:
    """(the untracked files named like secrets, sorted; the others)."""
    secret = sorted(u for u in untracked if looks_like_secret_file(u))
    return secret, [u for u in untracked if u not in set(secret)]


_HUNK = re.compile(r"@@ -\d+(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")
_QUOTED = {"a": 7, "b": 8, "t": 9, "n": 10, "v": 11, "f": 12, "r": 13, '"': 34, "\\": 92}


def redact_patch(
    redactor: Redactor, patch: bytes, prefix: str = ""
) -> tuple[bytes, list[dict[str, Any]]]:
    """The patch redacted, and each line masked: ``{"file", "line", "rule"}``, the line in the
    new version of the file. Only added lines (``+``, an untracked file's content too) are
    redacted: context lines, removed lines and the text after a hunk's ``@@`` come from the
    commit, are in git already, and must stay as they are for the patch to apply. Binary files'
    data is left alone (it is compressed: nothing there reads as text, and a mask would corrupt
    it). A file that is config (``.ini``, ``.env``, ...) has its bare values judged as
    literals."""
    if not patch:
        return patch, []
    lines = patch.decode("utf-8", "surrogateescape").split("\n")
    where = _added_lines(lines)
    found: set[tuple[str, int, str]] = set()
    changed = False
    first = 0
    while first < len(lines):
        here = where[first]
        if here is None:
            first += 1
            continue
        last = first
        while last + 1 < len(lines) and (nxt := where[last + 1]) is not None and nxt[0] == here[0]:
            last += 1
        text = "\n".join(line[1:] for line in lines[first : last + 1])
        new, masked = redactor.redact_lines(text, literal=is_config_file(here[0]))
        if new != text:
            lines[first : last + 1] = ["+" + line for line in new.split("\n")]
            changed = True
            for m in masked:
                path, number = where[first + m.line] or ("", 0)
                found.add((prefix + path, number, m.rule))
        first = last + 1
    out = "\n".join(lines).encode("utf-8", "surrogateescape") if changed else patch
    return out, [{"file": f, "line": n, "rule": r} for f, n, r in sorted(found)]


def _added_lines(lines: list[str]) -> list[tuple[str, int] | None]:
    """For each line of a git patch: (the file, its line number in the new version) for an added
    line of a hunk, None for any other line (headers, context, removed lines, binary data)."""
    out: list[tuple[str, int] | None] = []
    path, new, old_left, new_left, binary = "", 0, 0, 0, False
    for line in lines:
        if old_left > 0 or new_left > 0:  # inside a hunk: count as git apply does
            tag = line[:1]
            out.append((path, new) if tag == "+" else None)
            if tag != "\\":  # "\ No newline at end of file" is no line of either side
                old_left -= tag != "+"
                new_left -= tag != "-"
                new += tag != "-"
            continue
        out.append(None)
        if line.startswith("diff --git "):
            path, binary = _header_path(line), False
        elif binary:
            continue
        elif line == "GIT binary patch":
            binary = True
        elif hunk := _HUNK.match(line):
            old_left = int(hunk[1]) if hunk[1] is not None else 1
            new_left = int(hunk[3]) if hunk[3] is not None else 1
            new = int(hunk[2])
        elif line.startswith(("+++ ", "--- ")) and not line.endswith("/dev/null"):
            path = _strip_prefix(_unquote(line[4:].rstrip("\t")))
    return out


def _header_path(line: str) -> str:
    """``diff --git a/x b/x``: x (the ``+++`` line, when there is one, says it for sure)."""
    rest = line[len("diff --git ") :]
    if rest.startswith('"'):
        return _strip_prefix(_unquote(rest.split('" ', 1)[0] + '"'))
    half = (len(rest) - 1) // 2
    return _strip_prefix(rest[:half]) if rest[half : half + 1] == " " else rest


def _strip_prefix(path: str) -> str:
    return path[2:] if len(path) > 2 and path[1] == "/" else path


def _unquote(path: str) -> str:
    """A path as git quotes one with unusual bytes: ``"b/caf\\303\\251.py"``."""
    if not (len(path) >= 2 and path[0] == path[-1] == '"'):
        return path
    raw, body, i = bytearray(), path[1:-1], 0
    while i < len(body):
        c = body[i]
        if c == "\\" and i + 1 < len(body):
            nxt = body[i + 1]
            if nxt in "01234567":
                raw.append(int(body[i + 1 : i + 4], 8) & 0xFF)
                i += 4
                continue
            raw.append(_QUOTED.get(nxt, ord(nxt) & 0xFF))
            i += 2
            continue
        raw += c.encode("utf-8", "surrogateescape")
        i += 1
    return raw.decode("utf-8", "surrogateescape")


# `git config` costs a process per run; its answer changes only when .git/config does
_REMOTES: dict[tuple[str, int, int], bytes | None] = {}


def _config_stamp(root: Path) -> tuple[str, int, int] | None:
    config = root / ".git" / "config"
    try:
        st = config.stat()
    except OSError:
        return None  # a worktree or submodule (.git is a file): ask git every time
    return str(config), st.st_mtime_ns, st.st_size


def cached_remotes(root: Path) -> tuple[bool, bytes | None]:
    """(known, output of :data:`REMOTES`) from this process's cache."""
    stamp = _config_stamp(root)
    if stamp is not None and stamp in _REMOTES:
        return True, _REMOTES[stamp]
    return False, None


def remember_remotes(root: Path, out: bytes | None) -> None:
    stamp = _config_stamp(root)
    if stamp is not None:
        _REMOTES[stamp] = out


def _parse_status(out: bytes) -> tuple[str | None, str | None, list[str], list[str]]:
    commit = branch = None
    changed: list[str] = []
    untracked: list[str] = []
    records = out.decode("utf-8", "surrogateescape").split("\0")
    i = 0
    while i < len(records):
        rec = records[i]
        i += 1
        if rec.startswith("# branch.oid "):
            oid = rec.split(" ", 2)[2]
            commit = None if oid == "(initial)" else oid
        elif rec.startswith("# branch.head "):
            head = rec.split(" ", 2)[2]
            branch = None if head == "(detached)" else head
        elif rec.startswith("1 "):
            changed.append(rec.split(" ", 8)[8])
        elif rec.startswith("2 "):
            changed.append(rec.split(" ", 9)[9])
            i += 1  # a rename's original path follows as its own record
        elif rec.startswith("u "):
            changed.append(rec.split(" ", 10)[10])
        elif rec.startswith("? "):
            changed.append(rec[2:])
            untracked.append(rec[2:])
    # Tether's own folder is never code, even when a .gitignore forgot it
    changed = [c for c in changed if c != ".tether" and not c.startswith(".tether/")]
    untracked = [u for u in untracked if not u.startswith(".tether/")]
    return commit, branch, sorted(changed), untracked


def nested_repos(root: Path, status: bytes, links: list[str]) -> list[str]:
    """Git repositories inside the work tree that are no submodule: an untracked folder holding
    a ``.git`` (a clone made inside the project), or a gitlink with no ``.gitmodules`` entry
    (``git add ext`` of such a clone) that has changed. Read from ``git status``: no cost when
    there is none."""
    found = []
    for rec in status.decode("utf-8", "surrogateescape").split("\0"):
        path = None
        if rec.startswith("? ") and rec.endswith("/"):
            path = rec[2:].rstrip("/")
        elif rec.startswith("1 ") and rec.split(" ", 3)[2].startswith("S"):
            path = rec.split(" ", 8)[8]  # a gitlink that changed
        if path and path not in links and (root / path / ".git").exists():
            found.append(path)
    return sorted(found)


def _remote_url(out: bytes | None, redactor: Redactor) -> str | None:
    if not out:
        return None
    urls = dict(line.split(" ", 1) for line in out.decode().splitlines() if " " in line)
    url = urls.get("remote.origin.url") or next(iter(urls.values()))
    # a token used as the user name (https://<token>@github.com/...) is a credential too
    url = re.sub(r"^([a-zA-Z][\w+.-]*://)(?!git@)[^/@\s:]{20,}@", r"\1***@", url)
    return redactor.redact(url)


def _too_big(root: Path, untracked: list[str], limit: int) -> dict[str, int]:
    out = {}
    for rel in untracked:
        try:
            size = (root / rel).lstat().st_size
        except OSError:
            continue
        if size > limit:
            out[rel] = size
    return out


def _patch(root: Path, commit: str | None, skip: list[str], drop: Sequence[str] = ()) -> bytes:
    """Everything uncommitted, untracked files included (but ``skip``, and ``drop``: files in
    the index, new relative to HEAD, that are left out), as one binary-safe patch."""
    index = Path(git(root, "rev-parse", "--git-path", "index").decode().strip())
    index = index if index.is_absolute() else root / index
    with tempfile.TemporaryDirectory(prefix="tether-index-") as tmp:
        scratch = Path(tmp) / "index"
        if index.exists():
            shutil.copy2(index, scratch)  # its mtime too: git's racy-entry check reads it
        env = {**os.environ, "GIT_INDEX_FILE": str(scratch)}
        # Tether's folder, or the link to it a reproduction's worktree has, is never code
        never = (
            ":(exclude,glob)**/.tether/**",
            ":(exclude,glob)**/.tether",  # not literal: git refuses to name an ignored path
            *(f":(exclude,literal){p}" for p in skip),
        )
        git(root, "add", "-A", "--", ".", *never, env=env)
        if drop:  # only the scratch index loses them; the user's keeps them staged
            git(root, "update-index", "--force-remove", "--", *drop, env=env)
        return git(root, "diff", "--cached", "--binary", commit or EMPTY_TREE, env=env)


def skipped_files(code: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    """A record's untracked files that were too big to store: path -> {size, id} (a record
    written before ids were kept has a size only)."""
    out = {}
    for path, info in ((code or {}).get("skipped") or {}).items():
        out[path] = dict(info) if isinstance(info, dict) else {"size": info, "id": None}
    return out


def left_out_files(code: dict[str, Any] | None) -> list[str]:
    """A record's untracked files left out because they look like secrets."""
    items = (code or {}).get("left_out") or []
    return [str(i.get("path")) for i in items if isinstance(i, dict) and i.get("path")]


def lacking(code: dict[str, Any] | None) -> str:
    """What a rebuilt worktree lacks of the run's code, in a sentence ("" when nothing)."""
    out = []
    skipped = skipped_files(code)
    if skipped:
        named = ", ".join(f"{p} ({i.get('size')} bytes)" for p, i in sorted(skipped.items()))
        out.append(
            f"the rebuilt worktree lacked untracked {named}: too big for the recorded diff, "
            "it was not stored; commit it or `tether add` it so a reproduction has it"
        )
    secret = left_out_files(code)
    if secret:
        out.append(
            f"the rebuilt worktree lacked untracked {', '.join(secret)}: it looks like a "
            "secret and was left out of the recorded diff; give the reproduction its values "
            "another way (its environment)"
        )
    return "\n".join(out)


def _entry_point(root: Path) -> str | None:
    """The script being run, relative to the repository when inside it."""
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    if not path:
        return None
    try:
        return Path(path).resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return str(path)
