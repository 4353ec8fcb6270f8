"""What a commit may hold: a Conventional Commits message and no data meant for ``tether add``.

A message follows `Conventional Commits 1.0.0 <https://www.conventionalcommits.org/en/v1.0.0/>`_::

    type(scope)!: description        the header: ≤ 100 characters (configurable)

    body, free text, after one blank line

    BREAKING CHANGE: what breaks     footers: ``Token: value`` or ``Token #value``
    Refs #123

``type`` is one of :data:`DEFAULT_TYPES` (or the project's own list) and is compared without
regard to case, as the specification asks; ``scope`` matches ``[a-z0-9._/-]+``; ``!`` marks a
breaking change, as does a ``BREAKING CHANGE:`` (or ``BREAKING-CHANGE:``) footer, which must be
written in capitals.

Messages git (or a forge) writes by itself are allowed as they are, because nobody chose their
wording: see :data:`EXEMPT_PREFIXES`.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from tether.errors import GitError, UsageError
from tether.gitio.repo import POINTER_LISTING, POINTER_SUFFIX, git, git_many, is_commit

DEFAULT_TYPES = (
    "feat",
    "fix",
    "docs",
    "style",
    "refactor",
    "perf",
    "test",
    "build",
    "ci",
    "chore",
    "revert",
)
MAX_HEADER = 100
SPEC_URL = "https://www.conventionalcommits.org"
# git's ``commit -v`` cut line: it and everything below are dropped from the message
CUT_LINE = "------------------------ >8 ------------------------"

# header prefix -> why a message starting with it is allowed as it is
EXEMPT_PREFIXES: dict[str, str] = {
    # `git merge`'s default messages (`Merge branch 'x' into main`, ...) and the forges' own
    "Merge branch ": "merge",
    "Merge branches ": "merge",
    "Merge remote-tracking branch ": "merge",
    "Merge tag ": "merge",
    "Merge commit ": "merge",
    "Merge pull request ": "merge",  # GitHub
    # `git commit --fixup/--squash/--fixup=amend:` write these; `git rebase --autosquash` folds
    # them into the commit they name, whose own message is the one that lasts
    "fixup! ": "fixup",
    "squash! ": "fixup",
    "amend! ": "fixup",
}
# `git revert` writes `Revert "<subject>"`; reverting that revert writes `Reapply "<subject>"`
_GIT_REVERT = re.compile(r'^(Revert|Reapply) ".*"$')

_HEADER = re.compile(
    r"^(?P<type>\w+)(?:\((?P<scope>[^()\n]*)\))?(?P<bang>!)?:(?P<space>\s?)(?P<description>.*)$"
)
_SCOPE = re.compile(r"[a-z0-9._/-]+")
_FOOTER = re.compile(r"^(?P<token>BREAKING CHANGE|[A-Za-z0-9][A-Za-z0-9-]*)(?:: | #)(?P<value>.*)$")
_BREAKING_ANY_CASE = re.compile(r"^breaking[ -]change\s*:", re.IGNORECASE)
BREAKING_TOKENS = ("BREAKING CHANGE", "BREAKING-CHANGE")
# types people often write instead of the standard ones, for the example in a Problem
_NEAR_TYPES = {
    "feature": "feat",
    "features": "feat",
    "add": "feat",
    "bugfix": "fix",
    "bug": "fix",
    "hotfix": "fix",
    "fixed": "fix",
    "doc": "docs",
    "tests": "test",
    "testing": "test",
    "refactoring": "refactor",
    "performance": "perf",
    "chores": "chore",
}


@dataclass(frozen=True)
class Footer:
    token: str  # "BREAKING CHANGE", "Refs", "Signed-off-by"
    value: str  # may span lines


@dataclass(frozen=True)
class Parsed:
    """A message that passes. ``exempt`` names why one was allowed unchecked ("merge", "fixup",
    "revert"); it is "" for a message that follows Conventional Commits, and then the other
    fields hold its parts."""

    type: str = ""
    scope: str | None = None
    breaking: bool = False
    description: str = ""
    body: str = ""
    footers: tuple[Footer, ...] = ()
    exempt: str = ""


@dataclass(frozen=True)
class Problem:
    """Why a message does not pass, and a message that would (``example``; its first line is a
    valid header)."""

    message: str
    example: str


@dataclass(frozen=True)
class Finding:
    """A commit whose message does not pass: its full id, its header and what is wrong."""

    commit: str
    header: str
    problem: Problem


@dataclass(frozen=True)
class StagedFile:
    """A staged file a commit must not hold: over the size limit, or data a ``.tether`` pointer
    already tracks (``pointer`` names it)."""

    path: str
    size: int
    pointer: str | None = None


def cleanup(message: str, comment_char: str = "#") -> str:
    """The message as ``git commit`` stores it with ``commit.cleanup=strip`` (its default when an
    editor was used): everything from the ``commit -v`` scissors line down removed, then comment
    lines, then trailing spaces, runs of blank lines and blank lines at either end."""
    lines = message.replace("\r\n", "\n").split("\n")
    scissors = f"{comment_char} {CUT_LINE}"
    if scissors in lines:
        lines = lines[: lines.index(scissors)]
    out: list[str] = []
    for line in lines:
        if line.startswith(comment_char):
            continue
        line = line.rstrip()
        if line or (out and out[-1]):
            out.append(line)
    while out and not out[-1]:
        out.pop()
    return "\n".join(out) + "\n" if out else ""


def parse(
    message: str, *, types: tuple[str, ...] = DEFAULT_TYPES, max_header: int = MAX_HEADER
) -> Parsed | Problem:
    """Check one message (already cleaned up, as git stores it) against Conventional Commits."""
    lines = message.strip("\n").split("\n")
    header = lines[0].rstrip()
    if not header.strip():
        return Problem("the message is empty", f"{types[0]}: describe the change in a few words")
    exempt = _exemption(header)
    if exempt:
        return Parsed(description=header, exempt=exempt)
    parts = _HEADER.match(header)
    if parts is None:
        return Problem(
            f"the header does not start with a type: begin it with one of {', '.join(types)} "
            "and a colon",
            _example(types, None, header, max_header),
        )
    kind, scope = parts["type"], parts["scope"]
    description = parts["description"].strip()
    problem = _header_problem(parts, types, max_header, header)
    if problem is not None:
        return Problem(problem, _example(types, scope, description, max_header, kind))
    body_lines = lines[1:]
    if body_lines and body_lines[0].strip():
        return Problem(
            "the body must start after one blank line below the header",
            f"{header}\n\n{body_lines[0].strip()}",
        )
    body, footers, problem = _body_and_footers(body_lines)
    if problem is not None:
        return Problem(problem, f"{header}\n\nBREAKING CHANGE: what users must change")
    return Parsed(
        type=kind.lower(),
        scope=scope,
        breaking=bool(parts["bang"]) or any(f.token in BREAKING_TOKENS for f in footers),
        description=description,
        body=body,
        footers=footers,
    )


def _exemption(header: str) -> str:
    for prefix, reason in EXEMPT_PREFIXES.items():
        if header.startswith(prefix):
            return reason
    return "revert" if _GIT_REVERT.match(header) else ""


def _header_problem(
    parts: re.Match[str], types: tuple[str, ...], max_header: int, header: str
) -> str | None:
    kind, scope = parts["type"], parts["scope"]
    if kind.lower() not in types:
        return f"{kind!r} is not a commit type here: use one of {', '.join(types)}"
    if scope is not None and not _SCOPE.fullmatch(scope):
        what = "is empty" if not scope else f"{scope!r} has characters outside a-z 0-9 . _ / -"
        return f"the scope {what}: name the part changed in lower case, or leave out the ()"
    if not parts["description"].strip():
        return "the description after the colon is empty: say what the commit does"
    if parts["space"] != " ":
        return "put one space (and nothing else) between the colon and the description"
    if len(header) > max_header:
        return (
            f"the header is {len(header)} characters, over the limit of {max_header}: "
            "shorten it and move the detail to the body"
        )
    return None


def _body_and_footers(lines: list[str]) -> tuple[str, tuple[Footer, ...], str | None]:
    """Split what follows the header: footers are the trailing paragraphs that each start with a
    ``Token: value`` or ``Token #value`` line; other lines in them continue a footer's value."""
    paragraphs: list[list[str]] = []
    for line in lines:
        if not line.strip():
            paragraphs.append([])
        elif paragraphs:
            paragraphs[-1].append(line)
        else:
            paragraphs.append([line])
    paragraphs = [p for p in paragraphs if p]
    start = len(paragraphs)
    while start > 0 and _FOOTER.match(paragraphs[start - 1][0]):
        start -= 1
    for paragraph in paragraphs:
        for line in paragraph:
            if _BREAKING_ANY_CASE.match(line) and not line.startswith(BREAKING_TOKENS):
                return "", (), "write BREAKING CHANGE in capitals, as the footer token requires"
    footers: list[tuple[str, list[str]]] = []
    for paragraph in paragraphs[start:]:
        for line in paragraph:
            m = _FOOTER.match(line)
            if m is not None:
                footers.append((m["token"], [m["value"]]))
            else:
                footers[-1][1].append(line)
    parsed = tuple(Footer(token, "\n".join(value).strip()) for token, value in footers)
    if any(f.token in BREAKING_TOKENS and not f.value for f in parsed):
        return "", (), "the BREAKING CHANGE footer is empty: say what breaks and what to do"
    body = "\n\n".join("\n".join(p) for p in paragraphs[:start])
    return body, parsed, None


def _example(
    types: tuple[str, ...],
    scope: str | None,
    description: str,
    max_header: int,
    kind: str = "",
) -> str:
    kind = kind.lower()
    if kind not in types:
        near = _NEAR_TYPES.get(kind, "")
        kind = near if near in types else types[0]
    scope = scope.lower() if scope else ""
    scope_part = f"({scope})" if scope and _SCOPE.fullmatch(scope) else ""
    prefix = f"{kind}{scope_part}: "
    text = description.strip() or "describe the change in a few words"
    room = max(max_header - len(prefix), 10)
    if len(text) > room:
        text = text[: room - 1].rstrip() + "…"
    return prefix + text


def default_range(root: Path) -> str | None:
    """``@{upstream}..HEAD`` (the commits not yet pushed) when the branch has an upstream, else
    ``HEAD`` (every commit on it); None before the first commit."""
    fmt = "--format=%(HEAD)%(upstream)%00%(upstream:track)"  # "*" marks the current branch
    branches = git(root, "for-each-ref", fmt, "refs/heads/")
    current = next((ln[1:] for ln in branches.decode().splitlines() if ln.startswith("*")), "")
    upstream, _, track = current.partition("\0")
    if upstream and track != "[gone]":
        return "@{upstream}..HEAD"
    return "HEAD" if is_commit(root, "HEAD") else None


def log_messages(root: Path, rev_range: str | None = None) -> list[tuple[str, str]]:
    """``(commit id, message)`` for each commit in ``rev_range`` (see :func:`default_range`),
    newest first, in one ``git log`` call."""
    if rev_range is None:
        rev_range = default_range(root)
        if rev_range is None:
            return []
    if rev_range.startswith("-"):
        raise UsageError(f"{rev_range!r} is not a revision range: give one like origin/main..HEAD")
    try:
        out = git(root, "log", "--format=%H%x00%B%x00", rev_range, "--")
    except GitError as exc:
        raise UsageError(
            f"git cannot read the range {rev_range!r} ({exc}): give a commit or a range like "
            "origin/main..HEAD"
        ) from exc
    fields = out.decode("utf-8", "replace").split("\0")
    return [
        (fields[i].strip(), fields[i + 1])
        for i in range(0, len(fields) - 1, 2)
        if fields[i].strip()
    ]


def check_messages(
    commits: list[tuple[str, str]],
    *,
    types: tuple[str, ...] = DEFAULT_TYPES,
    max_header: int = MAX_HEADER,
) -> list[Finding]:
    findings = []
    for commit, message in commits:
        result = parse(message, types=types, max_header=max_header)
        if isinstance(result, Problem):
            header = message.strip("\n").split("\n")[0]
            findings.append(Finding(commit, header, result))
    return findings


def check_range(
    root: Path,
    rev_range: str | None = None,
    *,
    types: tuple[str, ...] = DEFAULT_TYPES,
    max_header: int = MAX_HEADER,
) -> list[Finding]:
    """The commits in ``rev_range`` whose messages do not pass, newest first."""
    commits = log_messages(root, rev_range)
    return check_messages(commits, types=types, max_header=max_header)


def check_staged(root: Path, *, max_bytes: int) -> list[StagedFile]:
    """Staged (added or modified) files over ``max_bytes``, and staged files inside what a
    ``*.tether`` pointer tracks, whatever their size. Sizes are of the staged content."""
    staged_out, pointers_out = git_many(
        root, ("diff", "--cached", "--name-only", "-z", "--diff-filter=AM"), POINTER_LISTING
    )
    if staged_out is None:
        raise GitError("git could not list the staged files: run `git diff --cached` to see why")
    staged = [p for p in os.fsdecode(staged_out).split("\0") if p]
    if not staged:
        return []
    targets = {
        p[: -len(POINTER_SUFFIX)]: p
        for p in os.fsdecode(pointers_out or b"").split("\0")
        if p.endswith(POINTER_SUFFIX) and PurePosixPath(p).name != POINTER_SUFFIX
    }
    sizes = _staged_sizes(root, staged)
    found = []
    for path, size in zip(staged, sizes, strict=True):
        pointer = next(
            (targets[t] for t in (path, *map(str, PurePosixPath(path).parents)) if t in targets),
            None,
        )
        if pointer is not None or size > max_bytes:
            found.append(StagedFile(path, size, pointer))
    return found


def _staged_sizes(root: Path, paths: list[str]) -> list[int]:
    """Sizes of the staged blobs (``:0:path`` in the index), 0 for what is not a blob (a
    submodule); the work-tree size for a name with a newline, which batch input cannot carry."""
    asked = [p for p in paths if "\n" not in p]
    query = "".join(f":0:{p}\n" for p in asked)
    out = git(
        root, "cat-file", "--batch-check=%(objecttype) %(objectsize)", stdin=os.fsencode(query)
    )
    blob_sizes: dict[str, int] = {}
    for path, line in zip(asked, out.decode().splitlines(), strict=True):
        kind, _, size = line.partition(" ")
        blob_sizes[path] = int(size) if kind == "blob" else 0
    sizes = []
    for path in paths:
        if path in blob_sizes:
            sizes.append(blob_sizes[path])
        else:
            try:
                sizes.append((root / path).lstat().st_size)
            except OSError:
                sizes.append(0)
    return sizes
