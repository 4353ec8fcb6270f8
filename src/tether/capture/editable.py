"""Editable installs of source trees outside the repository: the code pillar holds none of
their code, so each is recorded by the commit and dirty flag of the git repository holding it."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from tether.gitio import git_maybe


def mark_editables(env: dict[str, Any], root: Path) -> None:
    """Give each editable install of a source tree outside the repository (the code pillar
    holds none of it) the ``commit`` and ``dirty`` flag of the git repository holding it, when
    there is one: one ``git status`` each, none in the common case (no such install)."""
    for name, info in (env.get("packages") or {}).items():
        source = info.get("source") if isinstance(info, dict) else None
        where = _editable_folder(source, root) if name != "tether-ml" else None
        if source is None or where is None:
            continue
        status = git_maybe(Path(where), "--no-optional-locks", "status", "--porcelain=v2",
                           "--branch", "--untracked-files=no", "-z")  # fmt: skip
        if status is None:
            continue  # not in a git repository: named by `tether diff` as not captured
        records = status.decode("utf-8", "surrogateescape").split("\0")
        oid = next((r.split(" ", 2)[2] for r in records if r.startswith("# branch.oid ")), None)
        source["commit"] = None if oid in (None, "(initial)") else oid
        source["dirty"] = any(r and not r.startswith("#") for r in records)


def _editable_folder(source: Any, root: Path) -> str | None:
    if not isinstance(source, dict) or not source.get("editable"):
        return None
    url = str(source.get("url") or "")
    if not url.startswith("file://"):
        return None
    from urllib.parse import unquote, urlparse

    where = unquote(urlparse(url).path)
    try:
        Path(where).resolve().relative_to(root.resolve())
    except (ValueError, OSError):
        return where if os.path.isdir(where) else None
    return None  # inside the repository: the code pillar has it
