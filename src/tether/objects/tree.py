"""Directory manifests ("trees"): the sorted list of files of a folder; its hash is the folder's id.

Serialised as compact JSON::

    {"tether":"tree","format":1,"entries":[[path, id, size, mode], ...]}

``mode`` is 0o644 or 0o755 for files; a symlink inside the folder is ``[path, id, size,
0o120777, target]`` where id hashes the target text. Paths are POSIX and relative.
"""

from __future__ import annotations

import json
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property
from typing import NamedTuple

from tether._documents import read_document
from tether.hashing import hash_bytes

FORMAT = 1
HEADER = b'{"tether":"tree"'
SYMLINK_MODE = 0o120777


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
        doc = read_document(data, "tree", FORMAT, f"folder manifest {oid or '?'}")
        return cls(tuple(TreeEntry(*r) for r in doc["entries"]))


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
