"""``tether fsck``: find missing and corrupt objects and say which pointers and refs they break;
and pointers and folder manifests that a checkout would refuse (a pointer whose ``path:`` is
not its sibling, a manifest that is malformed or whose paths could write outside its folder)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from tether._types import NO_PROGRESS, Callback
from tether.errors import FormatError, PathError
from tether.gitio.repo import pointer_files
from tether.objects.graph import reachable
from tether.objects.store import ObjectStore
from tether.objects.tree import HEADER as TREE_HEADER
from tether.workspace.pointer import read_pointer
from tether.workspace.repo import Workspace


@dataclass
class FsckReport:
    objects: int = 0
    corrupt: dict[str, list[str]] = field(default_factory=dict)  # id -> what needs it
    missing: dict[str, list[str]] = field(default_factory=dict)
    bad_pointers: list[str] = field(default_factory=list)  # error messages
    bad_refs: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)  # manifests a checkout would refuse
    repaired: int = 0
    temp_files: int = 0

    @property
    def ok(self) -> bool:
        return not (
            self.corrupt or self.missing or self.bad_pointers or self.bad_refs or self.refused
        )


def fsck(ws: Workspace, *, repair: bool = False, callback: Callback = NO_PROGRESS) -> FsckReport:
    report = FsckReport()
    store = ws.store
    ws.statcache.forget_complete()  # objects may have been removed by hand: look again next time
    ids = list(store.iter_ids())
    report.objects = len(ids)
    callback.set_size(len(ids))

    def check(batch: list[str]) -> list[str]:
        bad = [oid for oid in batch if not store.verify(oid)]
        callback.relative_update(len(batch))
        return bad

    with ThreadPoolExecutor(max_workers=ws.jobs()) as pool:
        batches = [ids[i : i + 256] for i in range(0, len(ids), 256)]
        corrupt = {oid for bad in pool.map(check, batches) for oid in bad}
    labelled: list[tuple[str, str]] = []
    for rel in pointer_files(ws.root):
        try:
            labelled.append((rel, read_pointer(ws.root, rel).id))
        except FormatError as exc:
            report.bad_pointers.append(str(exc))
    try:
        labelled.extend((f"ref {name}", oid) for name, ids_ in ws.refs.items() for oid in ids_)
    except FormatError as exc:
        report.bad_refs.append(str(exc))
    checked: set[str] = set()
    for label, oid in labelled:
        try:
            live = reachable(store, [(label, oid)])
        except FormatError as exc:  # a malformed manifest on the way
            report.refused.append(f"{label}: {exc}")
            continue
        for tree in sorted(live.containers - checked):
            checked.add(tree)
            problem = _tree_problem(store, tree, label)
            if problem is not None:
                report.refused.append(problem)
        for m in live.missing:
            report.missing.setdefault(m, []).append(label)
        for c in live.ids & corrupt:
            report.corrupt.setdefault(c, []).append(label)
    for c in corrupt - report.corrupt.keys():
        report.corrupt[c] = []
    if repair:
        with ws.deleting():
            report.repaired = store.drop(corrupt)
            report.temp_files = store.clean_tmp()
    elif store.tmp.is_dir():
        report.temp_files = sum(1 for _ in store.tmp.iterdir())
    return report


def _tree_problem(store: ObjectStore, oid: str, label: str) -> str | None:
    """Why a checkout would refuse the folder manifest ``oid`` (None when it would not, or
    when ``oid`` is a record, not a manifest)."""
    if store.read_head(oid, len(TREE_HEADER)) != TREE_HEADER:
        return None
    try:
        store.load_tree(oid).check_paths(f"{label} (folder manifest {oid})")
    except (FormatError, PathError) as exc:
        return str(exc)
    return None
