"""Inside Jupyter: the notebook's file and the cells executed so far, in order.

The kernel's shell keeps every executed cell in ``In``; the notebook's path comes from
``JPY_SESSION_NAME`` (Jupyter Server 2) or ``__vsc_ipynb_file__`` (VS Code). IPython is never
imported here: only a kernel that is already running is asked.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path


@dataclass
class NotebookState:
    path: str | None
    content: bytes | None  # the .ipynb file as saved
    cells: list[str]  # the executed cells' sources, in order


def capture_notebook() -> NotebookState | None:
    ipython = sys.modules.get("IPython")
    get = getattr(ipython, "get_ipython", None)
    shell = get() if callable(get) else None
    if shell is None:
        return None
    ns = getattr(shell, "user_ns", {}) or {}
    cells = [str(c) for c in ns.get("In", []) if c]
    path = os.environ.get("JPY_SESSION_NAME") or ns.get("__vsc_ipynb_file__")
    content = None
    if path and Path(path).is_file():
        content = Path(path).read_bytes()
    return NotebookState(str(path) if path else None, content, cells)
