"""Tether: every machine-learning result tied to its code, data, environment and parameters.

The public API is ``__all__`` below; everything else is internal. Names load lazily, so
``import tether`` stays light (no SQLAlchemy, fsspec or rich until a verb needs them).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = ["Project", "TetherError", "__version__", "new_project"]

_LAZY = {
    "Project": "tether.api",
    "new_project": "tether.api",
    "TetherError": "tether.errors",
}

if TYPE_CHECKING:
    from tether.api import Project, new_project
    from tether.errors import TetherError


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'tether' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
