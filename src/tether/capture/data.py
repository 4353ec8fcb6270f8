"""The data pillar's part of a run's start that the work tree holds outside its pointers:
tracked paths edited (or deleted) since they were added, and the ids of untracked files too big
for the code diff."""

from __future__ import annotations

from collections.abc import Mapping

from tether.workspace.repo import Tracked, Workspace


def edited_tracked(ws: Workspace, tracked: list[Tracked]) -> dict[str, str | None]:
    """Tracked paths edited since their pointer was written (``tether status``: modified), by
    their real content, stored: what the run reads is that, not what the pointer names (None:
    the path is missing). The stat cache keeps this to a walk when nothing changed."""
    from tether.workspace.add import store_path
    from tether.workspace.status import content_id

    out: dict[str, str | None] = {}
    for t in tracked:
        now = content_id(ws, t.target)
        if now is None:
            out[t.target] = None
        elif now != t.ptr.id:
            out[t.target] = store_path(ws, ws.abs(t.target))
    return out


def skipped_ids(ws: Workspace, skipped: Mapping[str, int]) -> dict[str, str | None]:
    """The content ids of untracked files too big for the diff (hashed, not stored)."""
    from tether.workspace.status import content_id

    return {rel: content_id(ws, rel) for rel in skipped}
