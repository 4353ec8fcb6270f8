"""The root set: what keeps objects alive. Pointers (in the working tree, or in every commit)
and every ref under ``.tether/refs/``. Features that keep objects register refs; nothing here
needs to know them."""

from __future__ import annotations

from typing import NamedTuple

from tether.gitio.repo import all_pointer_blobs
from tether.workspace.pointer import PointerFile
from tether.workspace.repo import Workspace


class Root(NamedTuple):
    label: str  # what the user knows it by: a pointer file, a commit's pointer, a ref
    id: str
    kind: str  # "file" or "dir" (a pointer's kind) or "ref"

    @property
    def may_contain(self) -> bool:
        """True when the object may name others (a folder manifest or a record)."""
        return self.kind != "file"


def roots(ws: Workspace, *, all_commits: bool = False) -> list[Root]:
    """Every root; a pointer that cannot be read raises (gc must never guess)."""
    out = [Root(t.pointer, t.ptr.id, t.ptr.kind) for t in ws.pointers()]
    if all_commits:
        for blob, data in all_pointer_blobs(ws.root).items():
            ptr = PointerFile.parse(data, f"git blob {blob}")
            out.append(Root(f"commit blob {blob[:10]}", ptr.id, ptr.kind))
    for name, ids in ws.refs.items():
        out.extend(Root(f"ref {name}", oid, "ref") for oid in ids)
    return out


def pairs(rs: list[Root]) -> list[tuple[str, str]]:
    return [(r.label, r.id) for r in rs]
