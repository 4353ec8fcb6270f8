"""The index queries lineage needs, asked of the project's :class:`~tether.meta.store.MetaStore`:
this clone's SQL index, or the team server's when one is set (the whole team's runs)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from tether.meta.lineage import INPUT, OUTPUT, DataRow
from tether.runs.index import open_index
from tether.workspace.repo import Workspace

if TYPE_CHECKING:
    from tether.meta.store import MetaStore

__all__ = ["INPUT", "OUTPUT", "DataRow"]


def index_for(ws: Workspace) -> MetaStore:
    """The team server's index when the project has one, else this clone's."""
    if ws.config.get("server.url"):
        from tether.teamclient import sync as team
        from tether.teamclient.client import HttpMetaStore

        where = team.target(ws)
        if where is not None:
            return HttpMetaStore(where)
    return open_index(ws)


def runs_with_objects(index: MetaStore, role: str, ids: Iterable[str]) -> list[DataRow]:
    """Rows of runs that logged any of ``ids`` as an input (or output), oldest run first."""
    return index.data_rows(role, objects=ids)


def runs_with_paths(index: MetaStore, role: str, paths: Iterable[str]) -> list[DataRow]:
    """Rows of runs that logged any of ``paths`` (whatever its content) in ``role``."""
    return index.data_rows(role, paths=paths)


def runs_under_folder(index: MetaStore, role: str, folder: str) -> list[DataRow]:
    """Rows of runs that logged a path inside ``folder`` (``folder/...``) in ``role``."""
    return index.data_rows(role, folder=folder)


def children(index: MetaStore, run_ids: Sequence[str]) -> list[tuple[str, str]]:
    """(parent, child) for every run whose parent is one of ``run_ids``, oldest child first."""
    return index.children(run_ids)


def objects_with_prefix(index: MetaStore, prefix: str, limit: int = 20) -> list[str]:
    return index.objects_with_prefix(prefix, limit)


def run_ids(index: MetaStore) -> list[str]:
    """Every run the index shows (not deleted), oldest first."""
    return index.visible_run_ids()


def ancestors(path: str) -> list[str]:
    """``a/b/c`` -> ``["a", "a/b"]``: the folders a path sits in."""
    parts = path.split("/")
    return ["/".join(parts[:i]) for i in range(1, len(parts))]
