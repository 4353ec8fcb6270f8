"""The module-level API, familiar to MLflow users: ``tether.start_run``, ``tether.log_metric``…

One run is active per process. Logging with no active run starts one (as MLflow does); a run
left active when the interpreter exits is ended ``finished`` (``failed`` after an uncaught
exception). Inside ``tether run``, the active run is the parent's: see ``live.attach``.
"""

from __future__ import annotations

import atexit
import os
import sys
import threading
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from tether.errors import RunError
from tether.runs import live
from tether.workspace.repo import Workspace

if TYPE_CHECKING:
    from tether.meta.store import IndexedRun

_lock = threading.Lock()
_active: live.LiveRun | None = None
_hooked = False
_failed = False


def start_run(
    name: str | None = None,
    experiment: str | None = None,
    tags: Mapping[str, object] | None = None,
    *,
    path: str | os.PathLike[str] | None = None,
) -> live.LiveRun:
    """Start a run in the project containing ``path`` (default: the current folder)."""
    global _active
    with _lock:
        if _active is not None and _active.status == "running":
            raise RunError(
                f"run {_active.id} is already active in this process: end it first "
                "(leave its `with` block or call tether.end_run())"
            )
        ws = Workspace.open(None if path is None else Path(path))
        run = live.attach(ws)
        if run is None:
            run = live.start(
                ws,
                name=name,
                experiment=experiment,
                tags={k: str(v) for k, v in (tags or {}).items()},
            )
        elif tags:
            run.set_tags(tags)
        _active = run
        _install_hooks()
        return run


def active_run() -> live.LiveRun | None:
    """The running run of this process (attaching to a parent ``tether run`` if there is one)."""
    global _active
    if _active is not None and _active.status == "running":
        return _active
    if os.environ.get(live.ENV_RUN_ID):
        with _lock:
            if _active is None or _active.status != "running":
                _active = live.attach(Workspace.open())
                _install_hooks()
        return _active
    return None


def end_run(status: str = "finished") -> str | None:
    run = active_run()
    return run.end(status) if run is not None else None


def _run() -> live.LiveRun:
    return active_run() or start_run()


def log_param(key: str, value: object) -> None:
    _run().log_param(key, value)


def log_params(params: Mapping[str, object]) -> None:
    _run().log_params(params)


def log_metric(key: str, value: float, step: int | None = None) -> None:
    run = _active if _active is not None and _active.status == "running" else _run()
    run.log_metric(key, value, step)


def log_metrics(metrics: Mapping[str, float], step: int | None = None) -> None:
    _run().log_metrics(metrics, step)


def set_tag(key: str, value: object) -> None:
    _run().set_tag(key, value)


def set_tags(tags: Mapping[str, object]) -> None:
    _run().set_tags(tags)


def log_artifact(path: str | os.PathLike[str], name: str | None = None) -> str:
    return _run().log_artifact(path, name)


def log_input(path: str | os.PathLike[str]) -> str:
    return _run().log_input(path)


def log_output(path: str | os.PathLike[str]) -> str:
    return _run().log_output(path)


def seed(value: int) -> int:
    """Seed ``random`` (numpy and torch too when imported) and record it in the active run."""
    return _run().seed(value)


def search_runs(
    where: str | None = None,
    sort: str | None = None,
    limit: int | None = None,
    *,
    path: str | os.PathLike[str] | None = None,
) -> list[IndexedRun]:
    """Runs matching ``where`` (the query language of ``tether runs list --where``)."""
    from tether.runs import catalog

    ws = Workspace.open(None if path is None else Path(path))
    try:
        return catalog.search(ws, where, sort, limit)
    finally:
        ws.close()


def _install_hooks() -> None:
    global _hooked
    if _hooked:
        return
    _hooked = True
    previous = sys.excepthook

    def hook(kind: type[BaseException], exc: BaseException, tb: TracebackType | None) -> Any:
        global _failed
        _failed = True
        return previous(kind, exc, tb)

    sys.excepthook = hook
    atexit.register(_at_exit)


def _at_exit() -> None:
    run = _active
    if run is not None and run.status == "running":
        run.end("failed" if _failed else "finished")
