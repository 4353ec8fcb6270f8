"""Registered prompt versions: an annotated git tag ``NAME@vX.Y.Z`` on the commit that holds the
version's files, whose message pins the content id. A registered version is immutable: once its
files differ from what was registered, ``render``, ``eval`` and ``promote`` refuse it and say to
bump a new version instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tether.gitio.repo import git
from tether.prompts.templates import PROMPTS_DIR, Prompt, PromptError, version_key

CONTENT = "content: "
_TAGS_FORMAT = "%(refname:strip=2)%00%(objecttype)%00%(*objectname)%00%(contents)%00%00"


@dataclass(frozen=True)
class Registered:
    name: str
    version: str
    content_id: str
    commit: str


def tag_of(name: str, version: str) -> str:
    return f"{name}@{version}"


def annotated_tags(root: Path, *patterns: str) -> dict[str, tuple[str, str]]:
    """Annotated tags matching ``patterns``: name -> (the commit it points at, its message)
    (one git call; a lightweight tag carries no message, so it is left out)."""
    out = git(root, "for-each-ref", f"--format={_TAGS_FORMAT}", *patterns)
    found = {}
    for record in out.decode("utf-8", "replace").split("\0\0"):
        parts = record.strip("\n").split("\0", 3)
        if len(parts) == 4 and parts[0] and parts[1] == "tag" and parts[2]:
            found[parts[0]] = (parts[2], parts[3])
    return found


def tag_field(message: str, key: str) -> str | None:
    """The value of a ``key: value`` line of a tag message (``key`` with its ``: ``)."""
    return next((ln[len(key) :].strip() for ln in message.splitlines() if ln.startswith(key)), None)


def registered(root: Path, name: str) -> dict[str, Registered]:
    """The registered versions of ``name`` by version (one git call)."""
    found = {}
    for tag, (commit, message) in annotated_tags(root, f"refs/tags/{name}@v*").items():
        version = tag.partition("@")[2]
        content = tag_field(message, CONTENT)
        if _is_version(version) and content:
            found[version] = Registered(name, version, content, commit)
    return found


def _is_version(text: str) -> bool:
    try:
        version_key(text)
    except PromptError:
        return False
    return True


def register(root: Path, prompt: Prompt) -> Registered:
    """Tag the commit holding ``prompt``'s files, pinning its content id. The files must be
    committed as they are: a tag on a commit without them would pin nothing."""
    known = registered(root, prompt.name).get(prompt.version)
    if known is not None:
        if known.content_id == prompt.content_id:
            return known
        raise PromptError(_changed(prompt, known))
    rel = f"{PROMPTS_DIR}/{prompt.name}/{prompt.version}"
    dirty = git(root, "status", "--porcelain", "--untracked-files=all", "--", rel).strip()
    if dirty:
        raise PromptError(f"commit {rel} before registering it: git status shows changes there")
    if not git(root, "ls-files", "--", rel).strip():
        raise PromptError(f"commit {rel} before registering it: git does not track it")
    commit = git(root, "rev-parse", "HEAD").decode().strip()
    message = f"register {prompt.ref}\n\n{CONTENT}{prompt.content_id}\n"
    git(root, "tag", "-a", tag_of(prompt.name, prompt.version), "-m", message, commit)
    return Registered(prompt.name, prompt.version, prompt.content_id, commit)


def check_unchanged(root: Path, prompt: Prompt) -> Registered | None:
    """Refuse a registered version whose files changed since; its registration (or None)."""
    known = registered(root, prompt.name).get(prompt.version)
    if known is not None and known.content_id != prompt.content_id:
        raise PromptError(_changed(prompt, known))
    return known


def _changed(prompt: Prompt, known: Registered) -> str:
    return (
        f"{prompt.ref} is registered (content {known.content_id[:19]}) and its files changed "
        f"since (now {prompt.content_id[:19]}): registered versions are immutable, so put the "
        f"change in a new version with `tether prompt bump {prompt.name}` and restore "
        f"{PROMPTS_DIR}/{prompt.name}/{prompt.version} with `git checkout {known.commit[:12]} -- "
        f"{PROMPTS_DIR}/{prompt.name}/{prompt.version}`"
    )
