"""Refs: named files under ``.tether/refs/`` that keep objects alive.

A ref is a text file holding one or more object ids, one per line. Any feature that keeps objects
alive (run records, the run cache, the model registry, audit heads) writes a ref under its own
namespace (``runs/<id>``, ``registry/<name>``…); ``gc`` treats every id in every ref as a root and
never needs to know the feature. Refs under ``local/`` belong to this machine (a live run's
objects, say): they keep objects alive here but are never pushed or fetched.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

from tether._fs import atomic_write
from tether.errors import FormatError
from tether.hashing import is_object_id

LOCAL = "local/"
_NAME = re.compile(r"[A-Za-z0-9._@#+-]+(/[A-Za-z0-9._@#+-]+)*")


def check_ref_name(name: str) -> str:
    if not _NAME.fullmatch(name) or ".." in name.split("/"):  # (not even a trailing newline)
        raise FormatError(f"{name!r} is not a ref name (letters, digits, ._@#+- and /)")
    return name


def parse_ref(text: str, name: str = "?") -> tuple[str, ...]:
    ids = tuple(line.strip() for line in text.splitlines() if line.strip())
    bad = [i for i in ids if not is_object_id(i)]
    if bad or not ids:
        raise FormatError(f"ref {name} is corrupt (it must list object ids, one per line)")
    return ids


class RefStore:
    def __init__(self, root: Path) -> None:
        self.root = root  # .tether/refs

    def set(self, name: str, ids: tuple[str, ...] | list[str], *, durable: bool = True) -> None:
        path = self.root / check_ref_name(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, ("\n".join(ids) + "\n").encode(), durable=durable)

    def get(self, name: str) -> tuple[str, ...] | None:
        try:
            return parse_ref((self.root / check_ref_name(name)).read_text(), name)
        except FileNotFoundError:
            return None

    def delete(self, name: str) -> None:
        (self.root / check_ref_name(name)).unlink(missing_ok=True)

    def items(self, under: str = "") -> Iterator[tuple[str, tuple[str, ...]]]:
        top = self.root / check_ref_name(under) if under else self.root
        if not top.is_dir():
            return
        for dirpath, _dirs, files in os.walk(top):
            for fname in files:
                if fname.startswith("."):
                    continue
                path = Path(dirpath) / fname
                name = path.relative_to(self.root).as_posix()
                yield name, parse_ref(path.read_text(), name)
