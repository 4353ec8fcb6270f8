"""Prompts at run time: ``load("sentiment", label="production")`` in a service.

Where a prompt comes from (its *source*), one of:

- the git repository containing the cwd (the default; no Tether workspace is needed);
- ``repo=``: another repository, e.g. one that holds only prompts: a local path (work tree or
  bare) or a git URL. A URL is mirrored (``git clone --mirror``) under ``$TETHER_PROMPTS_CACHE``
  (default ``~/.cache/tether/prompts``) and refreshed with ``git fetch`` when the TTL expires;
- ``bundle=``: a JSON file written by ``tether prompt bundle``, for services without git.

What is served, from git:

- ``label=L`` (default ``production``): the version named by the tag ``NAME#L#N`` with the
  highest N. Its files are read from the commit of its registration tag ``NAME@vX.Y.Z``, never
  from a work tree, and their content id must equal the one that tag pins (and the one the
  label tag names): otherwise the load is refused.
- ``version=vX.Y.Z``: that version, read and verified the same way when it is registered. A
  version not registered yet is read only when ``ref=`` (a branch, tag or commit) says where:
  its files at that commit, unverified, since nothing pins them. ``ref=`` is refused with a
  label (a label's files always come from the registration commit) and with a bundle.

Caching: one in-process entry per (name, label or version, repo, ref, bundle, and the cwd when
the source is found from it: the default repository or a relative path). An entry
younger than ``ttl`` seconds is returned as is (about a microsecond). An older one is refreshed:
the tags are read again (a changed bundle file re-read), and a version whose pin did not change
keeps its ``Prompt``. When the refresh fails (repository gone, git error, bundle unreadable or
tampered with), the last good prompt keeps being served, a ``StalePromptWarning`` is issued
through ``warnings.warn`` (``logging.captureWarnings(True)`` routes it to logging), and the
refresh is tried again once ``ttl`` has passed. A URL whose ``git fetch`` fails is served from
its mirror as last fetched, with the same warning.

Bundles are signed: their format and how a service verifies them are in ``bundles.py``.
"""

from __future__ import annotations

import os
import re
import shutil
import threading
import time
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from tether._paths import check_paths
from tether.errors import (
    FormatError,
    GitError,
    NotARepositoryError,
    TetherError,
    UnsafePathError,
)
from tether.gitio.repo import find_root, git
from tether.prompts.registry import CONTENT, annotated_tags, tag_field, tag_of
from tether.prompts.templates import (
    PROMPTS_DIR,
    Prompt,
    PromptError,
    content_id,
    from_files,
    parse_ref,
    version_key,
)

__all__ = ["Pin", "StalePromptWarning", "clear_cache", "load"]

DEFAULT_LABEL = "production"
BUNDLE_KIND = "prompt-bundle"
LABEL = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")  # labels.LABEL (importing labels costs ~15 ms)
_URL = re.compile(r"^[a-z][a-z0-9+.-]*://|^[\w.-]+@[\w.-]+:", re.IGNORECASE)
PathLike = str | os.PathLike[str]


class StalePromptWarning(UserWarning):
    """A refresh failed: the last good version of a prompt is still being served."""


@dataclass(frozen=True)
class Pin:
    """What a label or version resolves to: a version, the content id its registration pins
    (None for an unregistered version read at ``ref=``) and the commit its files come from."""

    name: str
    version: str
    content_id: str | None
    commit: str
    label: str | None = None
    tag: str | None = None  # the label's tag NAME#LABEL#N


@dataclass(frozen=True, slots=True)
class Entry:
    prompt: Prompt
    pin: Pin
    stamp: tuple[int, int, int] | None  # a bundle file's (mtime_ns, size, inode)
    fetched: float  # time.monotonic()


_CACHE: dict[tuple[Any, ...], Entry] = {}
_LOCKS: dict[tuple[Any, ...], threading.Lock] = {}
_RELATIVE: dict[tuple[Any, Any], bool] = {}  # (repo, bundle) -> found from the cwd?
_FETCHED: dict[str, float] = {}  # git URL -> when its mirror was last fetched


def load(
    name: str,
    *,
    label: str | None = None,
    version: str | None = None,
    repo: PathLike | None = None,
    ref: str | None = None,
    bundle: PathLike | None = None,
    ttl: float = 60.0,
    trust: Sequence[str | PathLike] | None = None,
) -> Prompt:
    """The prompt ``name`` at ``label`` (default ``production``) or at ``version``, from the
    cwd's repository, ``repo`` or ``bundle``; cached in-process for ``ttl`` seconds."""
    relative = _RELATIVE.get((repo, bundle))
    if relative is None:
        relative = _RELATIVE[repo, bundle] = _depends_on_cwd(repo, bundle)
    cwd = os.getcwd() if relative or (bundle is not None and trust is None) else None
    key = (name, label, version, repo, ref, bundle, cwd, None if trust is None else tuple(trust))
    hit = _CACHE.get(key)
    if hit is not None and time.monotonic() - hit.fetched < ttl:
        return hit.prompt
    return _refresh(key, ttl)


def _depends_on_cwd(repo: PathLike | None, bundle: PathLike | None) -> bool:
    """Whether the source is found from the cwd: the default repository or a relative path."""
    if bundle is not None:
        return not os.path.isabs(bundle)
    if repo is None:
        return True
    return not (isinstance(repo, str) and _URL.match(repo)) and not os.path.isabs(repo)


def clear_cache() -> None:
    """Forget every cached prompt and mirror fetch time (the next load reads its source)."""
    _CACHE.clear()
    _RELATIVE.clear()
    _FETCHED.clear()


def _refresh(key: tuple[Any, ...], ttl: float) -> Prompt:
    """Fetch the entry for ``key`` (one thread per key at a time); on failure keep the old."""
    with _LOCKS.setdefault(key, threading.Lock()):
        old = _CACHE.get(key)
        if old is not None and time.monotonic() - old.fetched < ttl:
            return old.prompt  # another thread refreshed it while this one waited
        try:
            entry = _fetch(key, old, ttl)
        except (TetherError, OSError, ValueError) as exc:
            if old is None:
                raise
            warnings.warn(
                f"cannot refresh {old.prompt.ref}"
                + (f" (label {old.pin.label})" if old.pin.label else "")
                + f": {exc}; still serving the version loaded before",
                StalePromptWarning,
                stacklevel=3,
            )
            entry = replace(old, fetched=time.monotonic())
        _CACHE[key] = entry
        return entry.prompt


def _fetch(key: tuple[Any, ...], old: Entry | None, ttl: float) -> Entry:
    name, label, version, repo, ref, bundle, _cwd, trust = key
    label = _check_request(name, label, version, repo, ref, bundle)
    if bundle is not None:
        from tether.prompts import bundles

        return bundles.entry(Path(bundle), name, label, version, old, trust)
    root, where = _git_dir(repo, ttl)
    if label is not None:
        pin = resolve_label(root, name, label, where)
    else:
        pin = resolve_version(root, name, str(version), ref, where)
    if old is not None and _same_files(old.pin, pin):
        return replace(old, pin=pin, fetched=time.monotonic())
    prompt = build(pin, files_at(root, pin), where)
    return Entry(prompt, pin, None, time.monotonic())


def _same_files(a: Pin, b: Pin) -> bool:
    """Whether two pins serve the same files (a label re-assigned to its version does)."""
    return replace(a, label=None, tag=None) == replace(b, label=None, tag=None)


def _check_request(
    name: str,
    label: str | None,
    version: str | None,
    repo: PathLike | None,
    ref: str | None,
    bundle: PathLike | None,
) -> str | None:
    """The label to resolve (None with a version), after refusing a malformed request."""
    if parse_ref(name)[1] is not None:
        raise PromptError(f"load({name!r}): give the name alone, and label= or version=")
    if label is not None and version is not None:
        raise PromptError(f"load({name!r}): give label= or version=, not both")
    if version is not None:
        version_key(version)
    else:
        label = label or DEFAULT_LABEL
        check_label(label)
    if bundle is not None and (repo is not None or ref is not None):
        raise PromptError("a bundle is a source by itself: give bundle= without repo= or ref=")
    if ref is not None and (not ref or ref.startswith("-")):
        raise PromptError(f"{ref!r} is not a branch, tag or commit")
    if ref is not None and label is not None:
        raise PromptError(
            f"ref= reads a version that is not registered yet (version=); {name}'s label "
            f"{label!r} is always read from its version's registration commit: drop ref="
        )
    return label


# -- git sources ----------------------------------------------------------------------------
def _git_dir(repo: PathLike | None, ttl: float) -> tuple[Path, str]:
    """The repository to run git in, and how to name it in messages."""
    if repo is None:
        try:
            root = find_root()
        except NotARepositoryError as exc:
            raise PromptError(f"{exc}; or pass repo= (a path or git URL) or bundle=") from exc
        return root, str(root)
    text = os.fspath(repo)
    if isinstance(repo, str) and _URL.match(text):
        return _mirror(text, ttl), text
    path = Path(text)
    if not path.is_dir():
        raise PromptError(f"no repository at {path}: pass repo= an existing path or a git URL")
    return path, text


def cache_root() -> Path:
    """``$TETHER_PROMPTS_CACHE``, else ``$XDG_CACHE_HOME/tether/prompts`` (``~/.cache``)."""
    given = os.environ.get("TETHER_PROMPTS_CACHE")
    if given:
        return Path(given)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "tether" / "prompts"


def _mirror(url: str, ttl: float) -> Path:
    """A bare mirror of ``url``, cloned once and fetched when older than ``ttl``."""
    import hashlib

    folder = cache_root() / (hashlib.sha256(url.encode()).hexdigest()[:32] + ".git")
    last = _FETCHED.get(url)
    now = time.monotonic()
    if last is not None and now - last < ttl and folder.is_dir():
        return folder
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", **_server_auth(url)}  # never wait for one
    if folder.is_dir() and not (folder / "HEAD").is_file():
        shutil.rmtree(folder)  # not a repository any more: clone it again
    if not folder.is_dir():
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = folder.with_name(f".{folder.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            git(folder.parent, "clone", "--mirror", "--quiet", url, str(tmp), env=env)
        except GitError as exc:
            raise PromptError(f"cannot clone the prompts repository {url}: {exc}") from exc
        try:
            tmp.rename(folder)
        except OSError:  # another process cloned it first
            shutil.rmtree(tmp, ignore_errors=True)
    else:
        try:
            git(folder, "fetch", "--quiet", "--prune", "origin", env=env)
        except GitError as exc:
            warnings.warn(
                f"cannot fetch the prompts repository {url} ({exc}): serving prompts from its "
                f"mirror as last fetched ({folder})",
                StalePromptWarning,
                stacklevel=6,
            )
    _FETCHED[url] = now
    return folder


def _server_auth(url: str) -> dict[str, str]:
    """git's environment to send ``TETHER_TOKEN`` to the team server at ``TETHER_SERVER_URL``
    (a service loading prompts from it); never to any other host."""
    server = os.environ.get("TETHER_SERVER_URL", "").rstrip("/")
    token = os.environ.get("TETHER_TOKEN")
    if not (server and token and url.startswith(server + "/git/")):
        return {}
    return {
        "GIT_CONFIG_COUNT": "1",
        "GIT_CONFIG_KEY_0": f"http.{server}/.extraHeader",
        "GIT_CONFIG_VALUE_0": f"Authorization: Bearer {token}",
    }


def check_label(label: str) -> None:
    if not LABEL.match(label):
        raise PromptError(f"{label!r} is not a label (lower-case letters, digits, - and _)")


def resolve_label(root: Path, name: str, label: str, where: str) -> Pin:
    """The version ``name``'s ``label`` points at now: its tag with the highest N, served only
    when the prompts log (its git mirror, ``refs/tether/events/prompts``) backs it with an
    assignment that holds (under a root of trust: signed by a promoter)."""
    from tether.events.gitmirror import read_from_git
    from tether.prompts import label_log

    tags = annotated_tags(root, f"refs/tags/{name}#{label}#*", f"refs/tags/{name}@v*")
    try:
        folded = label_log.fold(read_from_git(root, label_log.LOG))
    except FormatError as exc:
        raise PromptError(
            f"the prompts log in {where} is damaged ({exc}): refusing its labels"
        ) from None
    label_log.check_pin(folded, root / ".tether")
    held = label_log.backing(folded, name, label, tags)
    tag = f"{name}#{label}#{held.n}"
    version, content = held.version, held.content_id
    registration = tags.get(tag_of(name, version))
    pinned = tag_field(registration[1], CONTENT) if registration else None
    if registration is None or pinned is None:
        raise PromptError(
            f"tag {tag} in {where} names {name}@{version}, which is not registered there: "
            f"push its tag too (`tether prompt promote ... --push` sends both)"
        )
    if content != pinned:
        raise PromptError(
            f"tag {tag} in {where} says content {content}, but {name}@{version} is registered "
            f"with {pinned}: a tag was changed by hand (`tether prompt history {name}` shows it)"
        )
    return Pin(name, str(version), pinned, registration[0], label, tag)


def resolve_version(root: Path, name: str, version: str, ref: str | None, where: str) -> Pin:
    """``name@version`` as registered; else, when ``ref`` is given, as it is at ``ref``."""
    found = annotated_tags(root, f"refs/tags/{tag_of(name, version)}").get(tag_of(name, version))
    pinned = tag_field(found[1], CONTENT) if found else None
    if found is not None and pinned:
        return Pin(name, version, pinned, found[0])
    if ref is None:
        raise PromptError(
            f"{name}@{version} is not registered in {where}: register it with `tether prompt "
            f"register {name}@{version}`, or pass ref= (a branch or commit) to read it unverified"
        )
    try:
        commit = git(root, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
    except GitError:
        raise PromptError(f"{where} has no branch, tag or commit {ref!r}") from None
    return Pin(name, version, None, commit.decode().strip())


def registered_version(root: Path, name: str, version: str) -> Prompt:
    """``name@version`` read from its registration tag's commit and checked against the content
    id the tag pins: what was registered, whatever the work tree or a branch now holds."""
    where = "this repository"
    pin = resolve_version(root, name, version, None, where)
    return build(pin, files_at(root, pin), where)


def files_at(root: Path, pin: Pin) -> dict[str, bytes]:
    """The files of ``pin``'s version folder at its commit (what ``templates.load`` would read
    from the folder: its files, not its subfolders)."""
    rel = f"{PROMPTS_DIR}/{pin.name}/{pin.version}"
    listing = git(root, "ls-tree", "-z", pin.commit, f"{rel}/").decode()
    blobs = []
    for line in filter(None, listing.split("\0")):
        info, _, path = line.partition("\t")
        mode, kind, oid = info.split()
        if kind == "blob" and mode in ("100644", "100755"):
            blobs.append((path.rpartition("/")[2], oid))
    if not blobs:
        raise PromptError(f"commit {pin.commit[:12]} has no files in {rel}/")
    out = git(root, "cat-file", "--batch", stdin="".join(f"{oid}\n" for _, oid in blobs).encode())
    files, pos = {}, 0
    for file, _oid in blobs:
        header_end = out.index(b"\n", pos)
        size = int(out[pos:header_end].split()[2])
        files[file] = out[header_end + 1 : header_end + 1 + size]
        pos = header_end + 1 + size + 1
    return files


def verify_content(pin: Pin, files: dict[str, bytes], where: str) -> str:
    """The content id of ``files``, refused when it is not the one ``pin`` registered."""
    got = content_id(files)
    if pin.content_id is not None and got != pin.content_id:
        raise PromptError(
            f"{pin.name}@{pin.version} in {where}: its files at {pin.commit[:12]} have content "
            f"{got}, not the registered {pin.content_id}: refusing to serve them"
        )
    return got


def build(pin: Pin, files: dict[str, bytes], where: str) -> Prompt:
    """A ``Prompt`` from verified files, straight from memory."""
    check_names(pin, files, where)  # a bundle is not signed: its names are checked all the same
    verify_content(pin, files, where)
    return from_files(pin.name, pin.version, files, Path(PROMPTS_DIR, pin.name, pin.version))


def check_names(pin: Pin, names: Iterable[str], where: str) -> None:
    """A version's files are names in its own folder, each one git would check out (no
    ``..``, no ``.git``, no two that one filesystem takes for the same file): a commit or a
    bundle naming another is refused with :class:`UnsafePathError`."""
    what = f"{pin.name}@{pin.version} in {where}"
    names = sorted(names)
    for name in names:
        if "/" in name:
            raise UnsafePathError(f"{what} has a file {name!r} outside its own folder")
    check_paths(names, what)
