"""``tether pull`` from the team server, for a project that has one and no remote: the objects
the tracked data needs, each checked against its id as it arrives (a server is trusted for
nothing), folder manifests first, then the files they list."""

from __future__ import annotations

from tether._types import NO_PROGRESS, Callback
from tether.errors import FormatError, TetherError
from tether.objects.transfer import TransferResult
from tether.teamclient.client import ServerClient, Target
from tether.workspace.repo import Workspace


def fetch(
    ws: Workspace,
    where: Target,
    paths: list[str] | None = None,
    *,
    callback: Callback = NO_PROGRESS,
    refused: dict[str, TetherError] | None = None,
) -> TransferResult:
    skipped: dict[str, TetherError] = {} if refused is None else refused
    selected = ws.select(paths, refused=skipped)
    result = TransferResult()
    with ServerClient(where) as client, ws.writing():
        _get(ws, client, {t.ptr.id for t, _ in selected if t.ptr.kind == "dir"}, result)
        blobs: set[str] = set()
        for t, sub in selected:
            if t.ptr.kind != "dir":
                blobs.add(t.ptr.id)
                continue
            try:
                blobs |= ws.store.load_tree(t.ptr.id).under(sub).blob_ids()
            except (FormatError, FileNotFoundError) as exc:
                skipped[t.pointer] = FormatError(f"{t.pointer}: {exc}")
        _get(ws, client, blobs, result, callback)
    if skipped and refused is None:
        raise next(iter(skipped.values()))
    return result


def fetch_object(ws: Workspace, where: Target, oid: str) -> TransferResult:
    """One object from the server, and for a folder (a tree) every file in it: what a
    teammate's run wrote, when a command needs its bytes here (`model register`)."""
    result = TransferResult()
    with ServerClient(where) as client, ws.writing():
        _get(ws, client, {oid}, result)
        try:
            blobs = ws.store.load_tree(oid).blob_ids()
        except FormatError:
            return result  # a file, not a folder
        _get(ws, client, set(blobs), result)
    return result


def _get(
    ws: Workspace,
    client: ServerClient,
    ids: set[str],
    result: TransferResult,
    callback: Callback = NO_PROGRESS,
) -> None:
    wanted = sorted(ws.store.missing(ids))
    result.already += len(ids) - len(wanted)
    callback.set_size(len(wanted))
    for oid in wanted:
        data = client.get_object(oid)
        ws.store.put_bytes(data, oid)
        result.objects += 1
        result.bytes += len(data)
        result.requests += 1
        callback.relative_update(1)
    ws.store.barrier()
