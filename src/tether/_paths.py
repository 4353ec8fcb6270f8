"""Paths that come from content someone else wrote, checked before anything is written.

A folder manifest, a pointer file, a run record, a model or prompt bundle names paths; Tether
writes files there. Each such path is checked as git's ``verify_path`` checks the paths of a
tree (ARCHITECTURE principle 6): relative, normalised, no ``..``, no ``.git`` or ``.tether``
component in any spelling a filesystem could take for it (any case, trailing dots or spaces,
NTFS short names and streams, HFS+ ignorable code points), no two entries that one filesystem
would take for the same file (case or Unicode normalisation), and no file that is also a
folder. Where the write happens, :class:`WriteGuard` checks again that no folder on the way is a
symlink, so a link planted between plan and write cannot redirect it.
"""

from __future__ import annotations

import os
import re
import stat
import unicodedata
from collections.abc import Iterable, Mapping
from itertools import repeat
from operator import itemgetter
from pathlib import Path

from tether.errors import UnsafePathError

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# code points HFS+ ignores when it compares names (git's is_hfs_dotgit list)
_HFS_IGNORED = dict.fromkeys(
    [*range(0x200C, 0x2010), *range(0x202A, 0x202F), *range(0x206A, 0x2070), 0xFEFF]
)
_RESERVED = frozenset({".git", ".tether"})
_SHORT_NAME = re.compile(r"(?:git|tether)~[0-9]+")  # NTFS 8.3 names of .git and .tether


def is_reserved(name: str) -> bool:
    """Whether one path component names ``.git`` or ``.tether`` on some filesystem."""
    folded = name.translate(_HFS_IGNORED).split(":", 1)[0].rstrip(". ").casefold()
    return folded in _RESERVED or bool(_SHORT_NAME.fullmatch(folded))


def problem(path: str) -> str | None:
    """Why ``path`` (POSIX, relative) is unsafe to write, or None when it is safe."""
    if _plain(path):
        return None
    if not path:
        return "it is empty"
    if path.startswith("/"):
        return "it is absolute"
    for part in path.split("/"):
        if part in ("", "."):
            return "it is not normalised"
        if part == "..":
            return "it climbs out with '..'"
        if "\\" in part:
            return "it holds a backslash (a separator on Windows)"
        if _CONTROL.search(part):
            return "it holds a control character"
        if is_reserved(part):
            return f"it names {part!r}, which is reserved for git and Tether"
    return None


def _plain(path: str) -> bool:
    """No sign of anything :func:`problem` looks for (nearly every real path): a few substring
    searches in C, so checking 100k manifest entries stays cheap."""
    return (
        path.isascii()
        and path.isprintable()
        and path[:1] not in "./"  # also true of ""
        and path[-1] not in "./ "
        and "/." not in path
        and "//" not in path
        and "./" not in path
        and " /" not in path
        and "~" not in path
        and "\\" not in path
        and ":" not in path
    )


def check_path(path: str, where: str) -> str:
    """``path`` itself when it is safe; else :class:`UnsafePathError` naming ``where``."""
    why = problem(path)
    if why is not None:
        raise UnsafePathError(f"{where} names the path {path!r}, which Tether refuses: {why}")
    return path


def check_paths(paths: Iterable[str], where: str) -> None:
    """Every path safe, and no two of them the same file on some filesystem: equal under case
    folding or Unicode normalisation, or one a file and a folder both."""
    listed = list(paths)
    if not _all_plain_and_apart(listed):
        _check_each(listed, where)  # something to refuse (or to look at closer): say what


def _all_plain_and_apart(paths: list[str]) -> bool:
    """True when every path is plain (:func:`_plain`) and none collides with another: the
    checks of :func:`_check_each` for all paths at once, as a few searches in C, so 100k
    manifest entries cost milliseconds. The paths are joined by "/" (and framed by it), so the
    searches for "/.", "./", "//" and " /" also find an empty path and one that starts with
    "." or "/" or ends with ".", "/" or " ". False means "look path by path", not "refused"."""
    joined = "/" + "/".join(paths) + "/"
    if not (joined.isascii() and joined.isprintable()):
        return False
    if any(mark in joined for mark in _NOT_PLAIN):
        return False
    folded = list(map(str.lower, paths))
    unique = set(folded)
    if len(unique) != len(paths):
        return False
    parents = set(map(_HEAD, map(str.rpartition, folded, repeat("/"))))
    folders: set[str] = set()
    while parents:  # every folder on the way to a path, level by level
        folders |= parents
        parents = set(map(_HEAD, map(str.rpartition, parents, repeat("/")))) - folders
    folders.discard("")
    return folders.isdisjoint(unique)


_NOT_PLAIN = ("/.", "./", "//", " /", "~", "\\", ":")  # see _plain
_HEAD = itemgetter(0)


def _check_each(paths: list[str], where: str) -> None:
    seen: dict[str, str] = {}
    for path in paths:
        check_path(path, where)
        folded = _fold(path)
        other = seen.get(folded)
        if other == path:
            raise UnsafePathError(f"{where} names {path!r} twice")
        if other is not None:
            raise UnsafePathError(
                f"{where} names both {other!r} and {path!r}, which are the same file where case "
                "or Unicode normalisation is ignored (macOS, Windows)"
            )
        seen[folded] = path
    folders: set[str] = set()
    for folded, path in seen.items():
        parent = folded.rpartition("/")[0]
        while parent and parent not in folders:
            if parent in seen:
                raise UnsafePathError(
                    f"{where} names {seen[parent]!r} as a file and as a folder (of {path!r})"
                )
            folders.add(parent)
            parent = parent.rpartition("/")[0]


def _fold(path: str) -> str:
    if path.isascii():
        return path.lower()
    return unicodedata.normalize("NFC", path).casefold()


def check_link(path: str, target: str, where: str) -> None:
    """A symlink at ``path`` (relative to the top of what is written) may only point at
    something inside that top, by a relative target."""
    if not target or target.startswith("/") or "\\" in target or _CONTROL.search(target):
        raise UnsafePathError(
            f"{where} has a symlink {path!r} to {target!r}: only a relative link that stays "
            "inside is allowed"
        )
    depth = path.count("/")  # folders between the top and the link
    for part in target.split("/"):
        if part == "..":
            depth -= 1
            if depth < 0:
                raise UnsafePathError(
                    f"{where} has a symlink {path!r} to {target!r}, which points outside"
                )
        elif part not in ("", "."):
            if is_reserved(part):
                raise UnsafePathError(
                    f"{where} has a symlink {path!r} into {part!r}, which is reserved"
                )
            depth += 1


def check_links(links: Mapping[str, str], where: str) -> None:
    """The symlinks of one tree (path -> target, paths relative to its top): each checked by
    :func:`check_link`, and none leads through another (``a -> b/..`` where ``b`` is itself a
    link could go anywhere ``b`` goes); a link to a link, as its last step, is fine."""
    folded = {_fold(p) for p in links}
    for path, target in links.items():
        check_link(path, target, where)
        here = path.split("/")[:-1]
        steps = [p for p in target.split("/") if p not in ("", ".")]
        for step in steps[:-1]:
            if step == "..":
                here.pop()  # check_link made sure this never climbs above the top
                continue
            here.append(step)
            through = "/".join(here)
            if _fold(through) in folded:
                raise UnsafePathError(
                    f"{where} has a symlink {path!r} to {target!r}, which leads through the "
                    f"symlink {through!r}: a link may not lead through another"
                )


class WriteGuard:
    """Checks, at the moment of writing, that every folder between ``root`` and a file is a real
    folder (not a symlink) and creates the missing ones. Folders found good are remembered, so
    a checkout of 100k files in a few folders costs a few ``lstat`` calls."""

    def __init__(self, root: Path) -> None:
        self.root = os.fspath(root)
        self._good: set[str] = {""}

    def folder(self, rel: str) -> str:
        """Make the folder ``rel`` (repository-relative, checked) exist as a real folder;
        returns its absolute path."""
        if rel in self._good:
            return f"{self.root}/{rel}" if rel else self.root
        parent, _, name = rel.rpartition("/")
        _check_name(name, rel)
        self.folder(parent)
        here = f"{self.root}/{rel}"
        try:
            st = os.lstat(here)
        except FileNotFoundError:
            try:
                os.mkdir(here)
            except FileExistsError:
                pass  # another writer made it: checked below
            st = os.lstat(here)
        if not self._real_folder(rel, st):
            raise UnsafePathError(f"{rel} is a file where a folder must be: move it away first")
        return here

    def existing(self, rel: str) -> str | None:
        """The absolute path at which to remove ``rel`` when every folder on the way is a real
        folder; None when one is missing or a file (then nothing is there to remove). A symlink
        on the way raises: a delete never goes through one either."""
        parent, _, name = rel.rpartition("/")
        _check_name(name, rel)
        here = self._existing_folder(parent)
        return None if here is None else f"{here}/{name}"

    def _existing_folder(self, rel: str) -> str | None:
        if rel in self._good:
            return f"{self.root}/{rel}" if rel else self.root
        parent, _, name = rel.rpartition("/")
        _check_name(name, rel)
        if self._existing_folder(parent) is None:
            return None
        here = f"{self.root}/{rel}"
        try:
            st = os.lstat(here)
        except (FileNotFoundError, NotADirectoryError):
            return None
        return here if self._real_folder(rel, st) else None

    def _real_folder(self, rel: str, st: os.stat_result) -> bool:
        """Whether ``rel`` is a real folder (remembered); a symlink raises."""
        if stat.S_ISLNK(st.st_mode):
            raise UnsafePathError(
                f"{rel} is a symlink: Tether does not write or delete through it (it could lead "
                "outside the repository); remove the link (what it points to is left alone) and "
                "run again"
            )
        if not stat.S_ISDIR(st.st_mode):
            return False
        self._good.add(rel)
        return True

    def file(self, rel: str) -> str:
        """The absolute path to write ``rel`` at, after its folders are checked (the file itself
        may be a symlink: writers replace it, never write through it)."""
        parent, _, name = rel.rpartition("/")
        _check_name(name, rel)
        return f"{self.folder(parent)}/{name}"


def _check_name(name: str, rel: str) -> None:
    """The guard's own floor under :func:`problem`: no step of a path it walks is empty, ``.``
    or ``..`` (callers check paths first; this keeps a path that skipped that from climbing)."""
    if name in ("", ".", ".."):
        raise UnsafePathError(f"{rel!r} is not a normalised relative path: Tether refuses it")
