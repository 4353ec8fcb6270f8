"""Tether: every machine-learning result tied to its code, data, environment and parameters.

The public API is ``__all__`` below; everything else is internal. Names load lazily, so
``import tether`` stays light (no SQLAlchemy, fsspec or rich until a verb needs them).

Run tracking reads like MLflow's fluent API::

    with tether.start_run(experiment="sentiment"):
        tether.log_param("lr", 0.1)
        tether.log_metric("acc", 0.91, step=3)
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from tether._version import __version__

__all__ = [
    "Project",
    "TetherError",
    "__version__",
    "active_run",
    "end_run",
    "log_artifact",
    "log_input",
    "log_metric",
    "log_metrics",
    "log_output",
    "log_param",
    "log_params",
    "new_project",
    "search_runs",
    "seed",
    "set_tag",
    "set_tags",
    "start_run",
]

_LAZY = {
    "Project": "tether.api",
    "new_project": "tether.api",
    "TetherError": "tether.errors",
    "active_run": "tether.runs.active",
    "end_run": "tether.runs.active",
    "log_artifact": "tether.runs.active",
    "log_input": "tether.runs.active",
    "log_metric": "tether.runs.active",
    "log_metrics": "tether.runs.active",
    "log_output": "tether.runs.active",
    "log_param": "tether.runs.active",
    "log_params": "tether.runs.active",
    "search_runs": "tether.runs.active",
    "seed": "tether.runs.active",
    "set_tag": "tether.runs.active",
    "set_tags": "tether.runs.active",
    "start_run": "tether.runs.active",
}

# submodules a script reaches as ``tether.prompts.load(...)`` after a plain ``import tether``
_SUBMODULES = ("models", "prompts")

if TYPE_CHECKING:
    from tether.api import Project, new_project
    from tether.errors import TetherError
    from tether.runs.active import (
        active_run,
        end_run,
        log_artifact,
        log_input,
        log_metric,
        log_metrics,
        log_output,
        log_param,
        log_params,
        search_runs,
        seed,
        set_tag,
        set_tags,
        start_run,
    )


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f"tether.{name}")  # the import binds it here
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'tether' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY, *_SUBMODULES})
