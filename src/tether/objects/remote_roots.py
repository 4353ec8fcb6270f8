"""Published roots: the ids each push relied on, kept on the remote for the grace period.

A push writes ``roots/<hash>``: every id its pointers name (``ids``, with those of refs that
never travel) and its shared refs by name (``refs``), including what the remote already had.
A gc keeps what these reach while the file is younger than ``gc.grace`` by the store's clock,
so data pushed for a branch that is not yet in git (or that the collecting clone has not
fetched) is never collected as garbage. The name is the hash of the content: pushing the same
roots again rewrites the same file, which renews its time. A gc removes older files.

A published ref that the remote no longer has was removed on purpose (``tether runs purge``
removes a purged run's refs): its ids protect nothing, and what only they reach is deleted at
once rather than quarantined, so purged data does not linger for the grace period.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from tether._documents import read_document
from tether.errors import FormatError
from tether.hashing import hash_bytes, is_object_id
from tether.objects.remote import ROOTS, Inventory, Remote

KIND = "roots"
FORMAT = 1


@dataclass
class Published:
    ids: set[str] = field(default_factory=set)
    refs: dict[str, set[str]] = field(default_factory=dict)  # ref name -> ids

    def split(self, present: Iterable[str]) -> tuple[set[str], set[str]]:
        """(ids that protect: pointers' and refs the remote still has; ids of refs removed
        since, that nothing else published names)."""
        here = set(present)
        keep = set(self.ids)
        for name, ids in self.refs.items():
            if name in here:
                keep |= ids
        gone = {oid for name, ids in self.refs.items() if name not in here for oid in ids}
        return keep, gone - keep


def publish(
    remote: Remote, ids: Iterable[str], refs: Mapping[str, Iterable[str]] | None = None
) -> str:
    """Write the roots file for ``ids`` and ``refs``; its path on the remote."""
    doc = {
        "tether": KIND,
        "format": FORMAT,
        "ids": sorted(set(ids)),
        "refs": {name: sorted(set(v)) for name, v in sorted((refs or {}).items())},
    }
    body = json.dumps(doc, separators=(",", ":")).encode()
    rel = f"{ROOTS}/{hash_bytes(body).split(':', 1)[1][:32]}"
    remote.write_bytes(rel, body)
    return rel


def split_by_age(inv: Inventory, now: float, grace: float) -> tuple[list[str], list[str]]:
    """(files still within the grace period, files older than it)."""
    fresh = sorted(rel for rel, t in inv.roots.items() if now - t < grace)
    old = sorted(rel for rel, t in inv.roots.items() if now - t >= grace)
    return fresh, old


def read_roots(remote: Remote, rels: list[str]) -> Published:
    """Everything the files name. One that cannot be read stops gc: it must never guess."""
    out = Published()
    for rel, data in remote.read_many(rels).items():
        what = f"published roots {rel} on remote {remote.name}"
        doc = read_document(data, KIND, FORMAT, what)
        ids, refs = doc.get("ids") or [], doc.get("refs", {})
        if not _ids(ids) or not isinstance(refs, dict) or not all(map(_ids, refs.values())):
            raise FormatError(
                f"{what} is corrupt (it must list object ids): gc stops rather than guess what "
                "it kept alive; remove that file from the remote and push again from the clones "
                "whose data it named"
            )
        out.ids.update(ids)
        for name, named in refs.items():
            out.refs.setdefault(str(name), set()).update(named)
    return out


def _ids(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(i, str) and is_object_id(i) for i in value)
