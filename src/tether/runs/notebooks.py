"""A notebook's part of a run's start: its cells and file, redacted, stored as objects."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from tether.capture.notebook import NotebookState
from tether.redact import Redactor
from tether.workspace.repo import Workspace


def store_notebook(ws: Workspace, nb: NotebookState, redactor: Redactor) -> dict[str, str]:
    """The notebook's object ids (``cells``, ``file``) and its ``path``."""
    # each cell is redacted as text, before JSON escapes its quotes
    cells = [redactor.redact(c) for c in nb.cells]
    out = {"cells": ws.store.put_bytes(json.dumps(cells).encode())}
    if nb.content is not None:
        out["file"] = ws.store.put_bytes(_redacted_notebook(nb.content, redactor))
    if nb.path:
        out["path"] = nb.path
    return out


def _redacted_notebook(content: bytes, redactor: Redactor) -> bytes:
    """The .ipynb with every cell's source and outputs redacted as text."""
    try:
        doc = json.loads(content)
    except ValueError:
        return redactor.redact_bytes(content)

    def scrub(node: Any) -> Any:
        if isinstance(node, str):
            return redactor.redact(node)
        if isinstance(node, list):
            return [scrub(x) for x in node]
        if isinstance(node, dict):
            return {k: scrub(v) for k, v in node.items()}
        return node

    return json.dumps(scrub(doc), indent=1, ensure_ascii=False).encode()


def notebook_ids(nb: Mapping[str, str] | None) -> list[str]:
    return [v for k, v in (nb or {}).items() if k != "path"]
