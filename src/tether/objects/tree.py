"""Directory manifests ("trees"): the sorted list of files of a folder; its hash is the folder's id.

Serialised as compact JSON::

    {"tether":"tree","format":1,"entries":[[path, id, size, mode], ...]}

``mode`` is 0o644 or 0o755 for files; a symlink inside the folder is ``[path, id, size,
0o120777, target]`` where id hashes the target text. Paths are POSIX and relative.

A manifest may come from anyone's clone. :meth:`Tree.from_bytes` refuses one whose rows are not
of that shape (a :class:`FormatError` naming it); :meth:`Tree.check_paths` refuses one whose
paths or link targets could write outside the folder or into ``.git`` (``tether._paths``).
The second runs where a manifest is written out (checkout, materialize) and where one is made
(``tether add``), not on every read: ``status`` only compares paths, it never writes them.
"""

from __future__ import annotations

import gc
import json
import stat
from collections import deque
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property, partial
from itertools import repeat
from operator import itemgetter
from typing import Any, NamedTuple

from tether._documents import read_document, shown
from tether._paths import check_links
from tether._paths import check_paths as _check_paths
from tether.errors import FormatError
from tether.hashing import PREFIX, hash_bytes, is_object_id

FORMAT = 1
HEADER = b'{"tether":"tree"'
SYMLINK_MODE = 0o120777
FILE_MODES = frozenset({0o644, 0o755})
MODES = FILE_MODES | {SYMLINK_MODE}
_HEX = b"0123456789abcdef"
_PREFIX_REST = PREFIX.encode().translate(None, _HEX)  # b"lk:": the prefix less its hex letters


class TreeEntry(NamedTuple):
    """One file of a folder (a tuple: 100k of them are built on every ``status``)."""

    path: str
    id: str
    size: int
    mode: int = 0o644
    target: str | None = None  # symlink target (relative, inside the folder)

    @property
    def is_symlink(self) -> bool:
        return self.target is not None


def file_mode(st_mode: int) -> int:
    """Normalise a file's permission bits to what a tree keeps: executable or not."""
    return 0o755 if st_mode & stat.S_IXUSR else 0o644


@dataclass(frozen=True)
class Tree:
    entries: tuple[TreeEntry, ...]

    @classmethod
    def build(cls, entries: Iterable[TreeEntry]) -> Tree:
        return cls(tuple(sorted(entries)))  # paths are unique, so this sorts by path

    @cached_property
    def data(self) -> bytes:
        rows = [e if e.target is not None else e[:4] for e in self.entries]
        doc = {"tether": "tree", "format": FORMAT, "entries": rows}
        return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()

    @cached_property
    def id(self) -> str:
        return hash_bytes(self.data)

    @cached_property
    def by_path(self) -> dict[str, TreeEntry]:
        return {e.path: e for e in self.entries}

    @property
    def size(self) -> int:
        return sum(e.size for e in self.entries if not e.is_symlink)

    def blob_ids(self) -> set[str]:
        return {e.id for e in self.entries if not e.is_symlink}

    def under(self, prefix: str) -> Tree:
        """The entries at or below ``prefix`` (a relative POSIX path; "" means all)."""
        if not prefix:
            return self
        p = prefix.rstrip("/")
        return Tree(tuple(e for e in self.entries if e.path == p or e.path.startswith(p + "/")))

    @classmethod
    def from_bytes(cls, data: bytes, oid: str = "") -> Tree:
        """The manifest in ``data``; one whose rows are not ``[path, id, size, mode]`` (or a
        symlink's five) of the right types raises :class:`FormatError` naming it."""
        where = f"folder manifest {oid or '?'}"
        with _collector_paused():
            doc = read_document(data, "tree", FORMAT, where)
            return cls(_entries(doc.get("entries"), where))

    def check_paths(self, where: str) -> None:
        """Refuse (:class:`UnsafePathError`, naming ``where`` and the entry) a manifest that
        could write outside its folder: a path that is not relative and normalised, climbs with
        ``..`` or names ``.git``/``.tether`` in any spelling; two paths one filesystem takes for
        the same file; a path that is a file and a folder; a symlink that leads outside."""
        _check_paths(list(map(_PATH, self.entries)), where)
        if set(map(_TARGET, self.entries)) - {None}:  # any symlinks (in C: no loop for none)
            links = {e.path: e.target for e in self.entries if e.target is not None}
            check_links(links, where)


_new_entry = partial(tuple.__new__, TreeEntry)  # a row of five, without a Python-level call


def _entries(rows: Any, where: str) -> tuple[TreeEntry, ...]:
    """Rows checked column by column: a few passes in C and no object per row beyond the entry
    itself (a manifest of 100k files is read on every ``status`` that finds a change)."""
    if type(rows) is not list or not set(map(type, rows)) <= {list}:
        raise FormatError(f"{where} is corrupt: its entries are not a list of rows")
    lengths = set(map(len, rows))
    if not lengths <= {4, 5}:
        raise FormatError(
            f"{where} is corrupt: a row has {sorted(lengths - {4, 5})[0]} fields, not 4 "
            "(path, id, size, mode) or 5 (a symlink's, with its target)"
        )
    if lengths == {4}:
        deque(map(list.append, rows, repeat(None)), 0)  # the target field, in C
    elif 4 in lengths:
        rows = [r if len(r) == 5 else [*r, None] for r in rows]
    entries = tuple(map(_new_entry, rows))
    if not entries:
        return entries
    if not set(map(type, map(_PATH, entries))) <= {str}:
        bad = next(e for e in entries if type(e.path) is not str)
        raise FormatError(f"{where} is corrupt: a row's path is {shown(bad.path)}, not a string")
    sizes = list(map(_SIZE, entries))
    if not (set(map(type, sizes)) <= {int} and min(sizes) >= 0 and max(sizes) < 1 << 63):
        bad = next(e for e in entries if type(e.size) is not int or not 0 <= e.size < 1 << 63)
        raise FormatError(
            f"{where} is corrupt: {bad.path!r} has size {shown(bad.size)}, not a number of bytes"
        )
    modes = set(map(_MODE, entries))
    if not (set(map(type, modes)) <= {int} and modes <= MODES):
        bad = next(e for e in entries if type(e.mode) is not int or e.mode not in MODES)
        raise FormatError(
            f"{where} is corrupt: {bad.path!r} has mode {shown(bad.mode)} (a file's is 0o644 "
            "or 0o755, a symlink's 0o120777)"
        )
    _check_ids(entries, where)
    if SYMLINK_MODE in modes or set(map(_TARGET, entries)) != {None}:
        for e in entries:
            if (e.mode == SYMLINK_MODE) != (type(e.target) is str):
                raise FormatError(
                    f"{where} is corrupt: {e.path!r} has mode {e.mode:o} and target "
                    f"{shown(e.target)} (a symlink has mode 120777 and a target; a file has "
                    "neither)"
                )
    return entries


_PATH, _ID, _SIZE, _MODE, _TARGET = map(itemgetter, range(5))


def _check_ids(entries: tuple[TreeEntry, ...], where: str) -> None:
    """Every id ``blake3:`` and 64 lowercase hex digits, checked all at once: each is 71
    characters long; joined, every 71st character from the first spells the prefix; and once
    every hex digit is deleted, what is left is the prefix's other letters (``lk:``) once per
    id, so the 64 after each prefix are hex digits."""
    ids = list(map(_ID, entries))
    n, width = len(ids), len(PREFIX) + 64
    if set(map(type, ids)) <= {str} and set(map(len, ids)) == {width}:
        joined = "".join(ids)  # id k starts at k * width
        if (
            joined.isascii()
            and all(joined[i::width] == c * n for i, c in enumerate(PREFIX))
            and joined.encode().translate(None, _HEX) == _PREFIX_REST * n
        ):
            return
    bad = next(e for e in entries if not (type(e.id) is str and is_object_id(e.id)))
    raise FormatError(
        f"{where} is corrupt: {bad.path!r} has id {shown(bad.id)}, not blake3: and 64 hex digits"
    )


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Reading 100k rows makes 300k container objects, and the cyclic garbage collector would
    walk the growing heap again and again while they are made (more than half the time of
    reading a manifest; none of them can form a cycle). Paused meanwhile, as Mercurial's
    ``util.nogc`` does for the same reason."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


@dataclass(frozen=True)
class TreeDiff:
    added: tuple[str, ...]
    removed: tuple[str, ...]
    modified: tuple[str, ...]

    @property
    def clean(self) -> bool:
        return not (self.added or self.removed or self.modified)


def diff_trees(old: Tree, new: Tree) -> TreeDiff:
    a, b = old.by_path, new.by_path
    added = tuple(sorted(b.keys() - a.keys()))
    removed = tuple(sorted(a.keys() - b.keys()))
    # whole entries compare in C: equal ids imply equal sizes, so this compares id, mode, target
    modified = tuple(sorted(p for p in a.keys() & b.keys() if a[p] != b[p]))
    return TreeDiff(added, removed, modified)
