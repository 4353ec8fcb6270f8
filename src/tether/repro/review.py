"""What ``tether reproduce RUN`` is about to do, before it does it: who recorded the run, the
command it runs, what the recorded patch changes, the packages ``--env fresh`` installs, the
variables the re-run does not get, and why it must not run at all.

A run record is other people's content: a teammate's, or anyone's who can push to the remote.
Its identity (the e-mail git committed as, ``email``, compared; the OS ``user`` is shown only, as
it is ``root`` for everyone in a container) is whatever their Tether wrote, so a run that names
you is only *probably* yours, and one that names no e-mail is taken as someone else's. The
prompt a run of someone else's gets is a courtesy, and what keeps your credentials out of
reach is the scrubbed environment (``repro/scrub.py``) every re-run gets, the package indexes
``--env fresh`` is held to (``repro/freshenv.py``), and running untrusted reproductions in a job
that holds no signing key.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from tether.errors import GitError, MissingObjectError
from tether.gitio import git
from tether.gitio.repo import committer_email
from tether.redact import MASK, Redactor
from tether.repro import freshenv
from tether.repro.restore import outside, reads
from tether.repro.scrub import Scrubbed, scrub
from tether.runs import catalog, compare
from tether.runs.ids import user
from tether.runs.index import redactor_for
from tether.workspace.repo import Workspace

INDEX_KEY = "reproduce.index_url"
_HUNK = re.compile(rb"^@@ -\d+(?:,\d+)? \+(\d+)(?:,\d+)? @@")


@dataclass(frozen=True)
class FileChange:
    path: str
    added: int | None  # None: a binary file
    removed: int | None


@dataclass(frozen=True)
class Redaction:
    """A line of the recorded patch that redaction rewrote: not the code that ran."""

    file: str
    line: int
    rule: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line} ({self.rule})"


@dataclass
class Review:
    run: str
    name: str
    recorded_by: str  # the record's user and e-mail: "" when it names none
    you: str  # your user and the e-mail git commits as here
    command: list[str]
    commit: str | None
    pipeline: bool  # its commands are the stages of pipeline.yaml at the commit
    changes: list[FileChange] | None  # None: the patch is not here to read
    redactions: list[Redaction]
    env: str  # current | fresh
    packages: list[str] = field(default_factory=list)  # what --env fresh installs
    index: str = ""  # where from
    refused: str = ""  # why --env fresh will not build it ("" when it will)
    withheld: list[str] = field(default_factory=list)  # variable names the re-run does not get
    reads: list[str] = field(default_factory=list)  # its --dep paths and inputs
    passes: list[str] = field(default_factory=list)  # --pass-env names set here (those count)
    outside: list[str] = field(default_factory=list)  # those of them outside the repository

    recorded_email: str | None = None  # the identity compared: git's e-mail at run time
    your_email: str | None = None

    @property
    def someone_else(self) -> bool:
        """Recorded by another identity, or by one that cannot be confirmed as yours: the
        record names no e-mail (an older Tether's), or you have none set. The OS user name is
        not compared: it is ``root`` for everyone in a container. A record's identity is a
        claim, so this only decides when to ask: the scrubbed environment protects anyway."""
        mine = (self.your_email or "").strip().lower()
        return not mine or (self.recorded_email or "").strip().lower() != mine


def review(
    ws: Workspace,
    ref: str,
    *,
    env: str = "current",
    allow_sources: bool = False,
    pass_env: Iterable[str] = (),
) -> Review:
    """What reproducing ``ref`` would run, install and withhold (nothing is run or built)."""
    run_id = catalog.resolve(ws, ref)
    record = catalog.load(ws, run_id)
    code = record.get("code") or {}
    tags = record.get("tags") or {}
    email = record.get("email") if isinstance(record.get("email"), str) else None
    mine = committer_email(ws.root)
    seen = Review(
        run=run_id,
        name=str(record.get("name") or ""),
        recorded_by=_who(str(record.get("user") or ""), email),
        you=_who(user(), mine),
        recorded_email=email,
        your_email=mine,
        command=[str(a) for a in record.get("command") or []],
        commit=code.get("commit"),
        pipeline=bool(tags.get("stage") or tags.get("kind") == "pipeline"),
        changes=changes(ws, code),
        redactions=redactions(ws, code),
        env=env,
        withheld=environment(ws, pass_env).withheld,
        reads=reads(record),
        outside=outside(record),
        passes=set_here(pass_env),
    )
    if env == "fresh":
        try:
            wanted = freshenv.requirements(
                compare.environment(ws, record), allow_sources=allow_sources
            )
        except MissingObjectError as exc:
            seen.refused = str(exc)
        else:
            seen.packages = wanted.pins + wanted.local
            seen.refused = wanted.refusal()
        seen.index = index_shown(ws)
    return seen


def _who(name: str, email: str | None) -> str:
    return f"{name} <{email}>" if email else name


def environment(ws: Workspace, pass_env: Iterable[str] = ()) -> Scrubbed:
    """This process's environment, as a re-run in ``ws`` gets it."""
    return scrub(os.environ, redactor_for(ws), pass_env)


def set_here(pass_env: Iterable[str]) -> list[str]:
    """The ``--pass-env`` names set in this environment: only those pass anything on."""
    return [n for n in pass_env if n in os.environ]


def index_url(ws: Workspace) -> str | None:
    """The package index Tether's config names for ``--env fresh`` (your project's and local
    config, never the record's), or None: pip's own settings then choose."""
    return str(ws.config.get(INDEX_KEY) or "") or None


def index_shown(ws: Workspace) -> str:
    """Where ``--env fresh`` installs from, credentials masked."""
    url = index_url(ws)
    if url:
        return f"{Redactor().redact(url)} ({INDEX_KEY})"
    if os.environ.get("PIP_INDEX_URL"):
        return f"{Redactor().redact(os.environ['PIP_INDEX_URL'])} (PIP_INDEX_URL)"
    return "the index pip is configured with (pip.conf, else PyPI)"


def blocked(
    ws: Workspace,
    record: dict[str, Any],
    env: str,
    *,
    allow_sources: bool,
    pass_env: Iterable[str],
) -> str:
    """Why the run must not be reproduced as asked ("" when it may): a patch redaction altered,
    unless ``--pass-env`` names a variable set here for the value; with ``fresh``, packages
    from outside the configured indexes."""
    altered = redactions(ws, record.get("code") or {})
    if altered and not set_here(pass_env):
        unset = [n for n in pass_env if n not in os.environ]
        return (
            "the run's patch was altered by redaction, so it is not the code that ran: "
            + ", ".join(map(str, altered))
            + ". The patch was not applied and nothing ran"
            + (f" (--pass-env {', '.join(unset)}: not set here)" if unset else "")
            + ". Pass --pass-env NAME for a variable set here that holds that value at run "
            "time (the altered code then runs with the mask where the value was), or "
            "reproduce a run whose patch holds no secret"
        )
    if env == "fresh":
        return freshenv.requirements(
            compare.environment(ws, record), allow_sources=allow_sources
        ).refusal()
    return ""


def passing_notes(ws: Workspace, record: dict[str, Any], scrubbed: Scrubbed, *, ran: bool) -> str:
    """What the verdict says of ``--pass-env``: names not set here, and what became of the
    lines redaction altered (``ran``: whether the re-run's command started)."""
    notes = [f"--pass-env {n}: not set here" for n in scrubbed.unknown]
    if altered := redactions(ws, record.get("code") or {}):
        notes.append(masked_note(altered, ran=ran))
    return "; ".join(notes)


def masked_note(altered: list[Redaction], *, ran: bool) -> str:
    """What happened to the lines of a patch redaction altered."""
    where = ", ".join(map(str, altered))
    if ran:
        return (
            f"the code ran with the mask {MASK} at {where}, where redaction removed a value: "
            "not the code that was recorded"
        )
    return f"the lines redaction altered ({where}) did not run: nothing ran"


def changes(ws: Workspace, code: dict[str, Any]) -> list[FileChange] | None:
    """Each file the recorded patches change (a submodule's under its path), with its added
    and removed lines; None when a patch is not in the cache."""
    out: list[FileChange] = []
    for prefix, diff in _patches(code):
        try:
            patch = ws.store.read_bytes(diff)
        except (MissingObjectError, FileNotFoundError):
            return None
        try:
            stat = git(ws.root, "apply", "--numstat", "-z", "-", stdin=patch)
        except GitError:
            return None  # not a patch git reads: applying it will say so
        out += [FileChange(prefix + p, a, r) for p, a, r in _numstat(stat)]
    return out


def _numstat(out: bytes) -> list[tuple[str, int | None, int | None]]:
    """``git apply --numstat -z``: ``A\\tR\\tPATH\\0``, a rename ``A\\tR\\t\\0OLD\\0NEW\\0``."""
    parts = out.split(b"\0")
    rows = []
    i = 0
    while i < len(parts) and parts[i]:
        added, removed, path = [*parts[i].split(b"\t", 2), b"", b""][:3]
        if not path and i + 2 < len(parts):  # a rename: the new path
            path, i = parts[i + 2], i + 2
        i += 1
        rows.append(
            (
                path.decode("utf-8", "replace"),
                int(added) if added.isdigit() else None,
                int(removed) if removed.isdigit() else None,
            )
        )
    return rows


def _patches(code: dict[str, Any]) -> list[tuple[str, str]]:
    """(path prefix, diff id) of the run's patch and each submodule's."""
    found = [("", str(code["diff"]))] if code.get("diff") else []
    for sub in code.get("submodules") or []:
        if isinstance(sub, dict) and sub.get("diff") and sub.get("path"):
            found.append((f"{sub['path']}/", str(sub["diff"])))
    return found


def redactions(ws: Workspace, code: dict[str, Any]) -> list[Redaction]:
    """Lines of the recorded patch that redaction changed. A record that lists them
    (``code.redactions``: ``{"file", "line", "rule"}`` each) is taken at its word, an empty
    list meaning none; an older record's patches are searched for the mask on added lines."""
    if isinstance(code.get("redactions"), list):
        return _listed(code)
    found: list[Redaction] = []
    for prefix, diff in _patches(code):
        try:
            found += _masked(ws.store.read_bytes(diff), prefix)
        except (MissingObjectError, FileNotFoundError):
            continue  # rebuilding will say the patch is missing
    return found


def _listed(code: dict[str, Any]) -> list[Redaction]:
    subs = [s for s in code.get("submodules") or [] if isinstance(s, dict)]
    groups = [("", code.get("redactions"))]
    groups += [(f"{s.get('path')}/", s.get("redactions")) for s in subs]
    found = []
    for where, listed in groups:
        for item in listed if isinstance(listed, list) else []:
            if not isinstance(item, dict):
                continue
            line = item.get("line")
            found.append(
                Redaction(
                    where + str(item.get("file") or "?"),
                    line if isinstance(line, int) and not isinstance(line, bool) else 0,
                    str(item.get("rule") or "redaction"),
                )
            )
    return found


def _masked(patch: bytes, prefix: str) -> list[Redaction]:
    """Added lines holding the mask, by file and line in the patched file."""
    found = []
    mask = MASK.encode()
    target: str | None = None
    line, in_hunk = 0, False
    for text in patch.split(b"\n"):
        if in_hunk and text[:1] in (b" ", b"+"):
            if text.startswith(b"+") and mask in text and target is not None:
                found.append(Redaction(prefix + target, line, f"the mask {MASK}"))
            line += 1
            continue
        if in_hunk and text[:1] in (b"-", b"\\"):
            continue
        hunk = _HUNK.match(text)
        in_hunk, line = hunk is not None, int(hunk[1]) if hunk else 0
        if text.startswith(b"diff --git "):
            target = None
        elif text.startswith(b"+++ "):
            name = text[4:].decode("utf-8", "replace").strip().strip('"')
            target = name[2:] if name.startswith("b/") else None
    return found
