"""Each project's git repository, mirrored bare on the server: what lives in git (commits, the
tracked data's pointer files) is read from the mirror, never from a client's word.

A URL is someone else's input: it may not start with ``-``, and git may use only the file, git,
http(s) and ssh transports for it (``ext::`` would run a command). A revision is checked the same
way before it reaches ``git rev-parse --end-of-options``.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import Any

from tether.errors import FormatError, GitError, UsageError
from tether.gitio.repo import git, git_maybe, pointer_files, show
from tether.workspace.pointer import PointerFile

REV = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._/@^~{}-]{0,199}")
TIMEOUT_S = 300
SAFE_ENV = {"GIT_ALLOW_PROTOCOL": "file:git:http:https:ssh", "GIT_TERMINAL_PROMPT": "0"}


class Mirrors:
    def __init__(self, folder: Path, *, follow_logs: bool = False) -> None:
        self.folder = folder
        self.follow_logs = follow_logs

    def path(self, project: str) -> Path:
        return self.folder / f"{project}.git"

    def _env(self) -> dict[str, str]:
        return {**os.environ, **SAFE_ENV}

    def create(self, project: str, url: str = "") -> None:
        """The project's repository on the server: a mirror of ``url``, or an empty one that
        clones push registry and prompt events to; either way behind the door."""
        if url.startswith("-") or "\n" in url:
            raise UsageError(f"{url[:100]!r} is not a git URL or path")
        self.folder.mkdir(parents=True, exist_ok=True)
        target = self.path(project)
        if url:
            try:
                git(
                    self.folder,
                    "clone", "--bare", "--quiet", "--", url, str(target),
                    env=self._env(), timeout=TIMEOUT_S,
                )  # fmt: skip
                self._take_logs(target, url, check=not self.follow_logs)
            except BaseException:
                import shutil

                shutil.rmtree(target, ignore_errors=True)  # no half-made project stays behind
                raise
        else:
            git(self.folder, "init", "--bare", "--quiet", str(target))
        for key, value in (
            ("receive.denyDeletes", "true"),
            ("receive.denyNonFastForwards", "true"),
            ("http.receivepack", "true"),
        ):
            git(target, "config", key, value)
        hook = target / "hooks" / "pre-receive"
        hook.write_text(f"#!/bin/sh\nexec '{sys.executable}' -m tether.team.door\n")
        hook.chmod(0o755)

    def _take_logs(self, target: Path, url: str, *, check: bool = True) -> None:
        """The repository's registry and prompt logs (with the signed head and checkpoint)
        come along, and with its tags are checked as the door checks a push: else the server
        would hold label tags with no event behind them and decide as if the project had no
        root of trust. What the door would refuse makes no project (``check``: except on
        `tether ui`'s server, which shows the repository as it is, problems included)."""
        from tether.team.door import KEPT, ZERO, refusals, root_problems, unbacked_marks

        listed = git(target, "ls-remote", "--", url, *sorted(KEPT), env=self._env()).decode()
        if listed.strip():
            wanted = [f"+{r}:{r}" for r in {ln.split("\t")[1] for ln in listed.splitlines()}]
            git(target, "fetch", "--quiet", "--", url, *sorted(wanted),
                env=self._env(), timeout=TIMEOUT_S)  # fmt: skip
        if not check:  # `tether ui`: the repository's own server shows it as it is
            return
        out = git(target, "for-each-ref", "--format=%(objectname) %(refname)", "refs/")
        taken = dict(line.split(" ", 1)[::-1] for line in out.decode().splitlines() if line)
        logs = {ref: new for ref, new in taken.items() if ref.startswith("refs/tether/")}
        problems = [
            p for ref, new in logs.items() for p in refusals(target, ZERO, new, ref, roles=False)
        ]
        problems += root_problems(target, logs) + unbacked_marks(target, taken)
        if problems:
            raise UsageError(
                f"{url[:200]} holds what the server's door refuses, so no project was made of "
                "it: " + "; ".join(problems[:3])
            )

    def has(self, project: str) -> bool:
        return self.path(project).is_dir()

    def fetch(self, project: str) -> None:
        """Bring the mirror's branches and tags up to date with the project's repository
        (branches pruned; tags and Tether's event refs, which clones push here, kept)."""
        self._need(project)
        root = self.path(project)
        if git_maybe(root, "config", "remote.origin.url") is None:
            raise UsageError(f"project {project} was created without --git: nothing to fetch")
        fetches = [
            ("--prune", "origin", "+refs/heads/*:refs/heads/*"),
            ("origin", "refs/tags/*:refs/tags/*"),
        ]
        if self.follow_logs:  # the server of one repository (`tether ui`): its logs as they are
            fetches.append(("origin", "+refs/tether/events/*:refs/tether/events/*"))
        for args in fetches:
            git(root, "fetch", "--quiet", *args, env=self._env(), timeout=TIMEOUT_S)

    def commit(self, project: str, rev: str) -> dict[str, Any]:
        sha = self.resolve(project, rev)
        out = git(self.path(project), "show", "-s", "--format=%H%x00%an%x00%aI%x00%s", sha)
        full, author, date, subject = out.decode().rstrip("\n").split("\0", 3)
        return {"sha": full, "author": author, "date": date, "subject": subject}

    def resolve(self, project: str, rev: str) -> str:
        self._need(project)
        if not REV.fullmatch(rev) or ".." in rev:
            raise UsageError(f"{rev[:100]!r} is not a revision: a branch, a tag or a commit id")
        try:
            out = git(
                self.path(project), "rev-parse", "--verify", "--end-of-options", f"{rev}^{{commit}}"
            )
        except GitError:
            raise UsageError(
                f"the project's repository has no commit {rev!r}: "
                f"`POST …/git/fetch` brings the mirror up to date"
            ) from None
        return out.decode().strip()

    def data_at(self, project: str, rev: str) -> list[dict[str, Any]]:
        """The tracked data at ``rev``: each pointer file's target, kind, id and size; a pointer
        that cannot be read is listed with its error, never guessed."""
        sha = self.resolve(project, rev)
        root = self.path(project)
        found: list[dict[str, Any]] = []
        for pointer in pointer_files(root, sha):
            try:
                ptr = PointerFile.parse(show(root, sha, pointer), f"{pointer} at {sha[:10]}")
            except (FormatError, GitError) as exc:
                found.append({"pointer": pointer, "error": str(exc)})
                continue
            folder = os.path.dirname(pointer)
            found.append(
                {
                    "pointer": pointer,
                    "path": f"{folder}/{ptr.path}" if folder else ptr.path,
                    "kind": ptr.kind,
                    "id": ptr.id,
                    "size": ptr.size,
                    "files": ptr.files,
                }
            )
        return found

    def _need(self, project: str) -> None:
        if not self.has(project):
            raise UsageError(
                f"project {project} has no git repository bound: create it with --git URL"
            )
