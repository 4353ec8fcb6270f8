"""``tether.models.load``: a registered model's files on local disk, verified, with where they
came from.

    path, provenance = tether.models.load("churn", "production")

Serving code can stamp each prediction with ``provenance["version_id"]`` (see :func:`stamp`), so
``tether lineage`` can trace a prediction back to the data and commit behind it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any


def load(name: str, at: str = "production", *, path: str | os.PathLike[str] | None = None,
         out: str | os.PathLike[str] | None = None) -> tuple[Path, dict[str, Any]]:  # fmt: skip
    """``NAME@AT`` (a version ``vN``, a stage or an alias) written to ``out`` (new or empty;
    default: ``.tether/models/NAME/vN``, rebuilt whole each time) and checked; the local path
    of its file (or folder) and its provenance: version, object id, run, commit, stage,
    signer."""
    from tether._paths import check_path
    from tether.registry import release, store
    from tether.workspace.repo import Workspace

    ws = Workspace.open(Path(path) if path is not None else None)
    state = store.load_state(ws)
    v = state.resolve(f"{name}@{at}")
    if out is None:  # a name from the registry's log never leads out of .tether/models
        folder = ws.dot / "models" / check_path(f"{v.name}/v{v.number}", "the registry")
    else:
        folder = Path(out)
    # Tether's own folder is rebuilt whole at each load (a file dropped there is gone); a
    # folder the caller names must be new or empty
    done = release.get(ws, v.ref, folder, state, replace=out is None)
    files = release.files_of(ws, v)
    local = folder / files[0][0] if len(files) == 1 and files[0][1] == v.object else folder
    return local, {
        "version_id": f"{v.ref}#{v.object}",
        "name": v.name,
        "version": v.number,
        "object": v.object,
        "run": v.run,
        "commit": v.commit,
        "stage": v.stage,
        "aliases": sorted(v.aliases),
        "signed_by": done.signer or None,
    }


def stamp(prediction: dict[str, Any], provenance: dict[str, Any]) -> dict[str, Any]:
    """The prediction with the model version id that made it (``tether_model``)."""
    return {**prediction, "tether_model": provenance["version_id"]}
