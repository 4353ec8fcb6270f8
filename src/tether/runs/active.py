"""The module-level API, familiar to MLflow users: ``tether.start_run``, ``tether.log_metric``…

One run is active per process, or a stack of them with ``start_run(nested=True)``: logging goes
to the innermost. Each thread has its own innermost run; a thread that started none logs to the
main thread's, and nests under it (trials of a thread pool under the study). Logging with no
active run starts one (as MLflow does); runs left active when the interpreter exits are ended
``finished`` (``failed`` after an uncaught exception), children first. Inside ``tether run``,
logging with no ``start_run`` goes to the launched run (see ``live.attach``), and each
``start_run`` is a child of it, with its own name.
"""

from __future__ import annotations

import atexit
import os
import sys
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from tether.errors import RunError, TetherError, UsageError
from tether.runs import lifecycle, live
from tether.workspace.repo import Workspace

if TYPE_CHECKING:
    from tether.meta.store import IndexedRun

_lock = threading.Lock()
# the runs of this process, outermost first, each with the thread that started it (None for the
# run a parent `tether run` launched, which belongs to every thread)
_stack: list[tuple[int | None, live.LiveRun]] = []
_MAIN = threading.main_thread().ident
_changes = 0  # bumped when _stack changes: each thread's cached innermost run is then looked up
# this thread's innermost run (`run`) as of `_changes == seen`: the hot path reads only this
_cache = threading.local()
_hooked = False
_failed = False
_adopted = False  # a start_run stood for the run a `tether reproduce` re-runs


def start_run(
    name: str | None = None,
    experiment: str | None = None,
    tags: Mapping[str, object] | None = None,
    *,
    nested: bool = False,
    path: str | os.PathLike[str] | None = None,
    run_name: str | None = None,
    experiment_id: str | None = None,
    description: str | None = None,
) -> live.LiveRun:
    """Start a run in the project containing ``path`` (default: the current folder).

    With ``nested=True`` inside an active run, the new run is a child of it (its record's
    ``parent``), in the parent's experiment unless ``experiment`` says otherwise. In a process
    launched by ``tether run``, every ``start_run`` is a child of the launched run.
    MLflow's names work too: ``run_name`` (``name``), ``experiment_id`` (an experiment's id is
    its name) and ``description`` (a note on the run)."""
    name = _one("name", name, "run_name", run_name, str)
    experiment = _one("experiment", experiment, "experiment_id", experiment_id, str)
    run = _start(name, experiment, tags, nested, path)
    if description:
        run.note(description)
    return run


def _start(
    name: str | None,
    experiment: str | None,
    tags: Mapping[str, object] | None,
    nested: bool,
    path: str | os.PathLike[str] | None,
) -> live.LiveRun:
    with _lock:
        parent = _innermost()
        if parent is not None and not nested and parent.owner:
            raise RunError(
                f"run {parent.name} ({parent.id}) is already active in this process: pass "
                "nested=True to start a child run of it, or end it first (leave its `with` "
                "block or call tether.end_run())"
            )
        ws = Workspace.open(None if path is None else Path(path))
        if parent is None:
            parent = live.attach(ws)  # the run of a parent `tether run`, if any
            if parent is not None:
                _push(None, parent)
        if parent is not None and parent.ws.root != ws.root:
            raise RunError(
                f"run {parent.id} is active in {parent.ws.root}: a run in {ws.root} cannot be its "
                "child; end it first, or start this run from its own process"
            )
        if parent is not None and _stands_for_reproduced(parent, name):
            if tags:
                parent.set_tags(tags)
            _install_hooks()  # its journal is flushed at exit, `with` or not
            return parent
        run = live.start(
            ws,
            name=name,
            experiment=experiment or (parent.experiment if parent is not None else None),
            tags={k: str(v) for k, v in (tags or {}).items()},
            parent=None if parent is None else parent.id,
        )
        _push(threading.get_ident(), run)
        _install_hooks()
        return run


def _stands_for_reproduced(launched: live.LiveRun, name: str | None) -> bool:
    """Whether this ``start_run`` is, in a ``tether reproduce`` re-run, the run being
    reproduced: that run was made by ``start_run`` in its script (no exit code: nothing
    launched it), and this call gives its name (or none, when it had a made-up name). Then
    the launched reproduction is that run, once per process; any other ``start_run`` under
    ``tether run`` is a child."""
    global _adopted
    if launched.owner or _adopted:
        return False
    original_id = lifecycle.read_start(launched.folder)["tags"].get("reproduction_of")
    if not original_id:
        return False
    from tether.runs import catalog

    try:
        original = catalog.load(launched.ws, original_id)
    except TetherError:
        return False
    made_up = str(original.get("name", "")).endswith(f"-{original_id[-6:]}")
    if original.get("exit_code") is None and (
        name == original.get("name") or (name is None and made_up)
    ):
        _adopted = True
    return _adopted


def _cached() -> live.LiveRun | None:
    """This thread's innermost run if nothing changed since it was looked up (the hot path)."""
    try:
        run: live.LiveRun | None = _cache.run
        if run is not None and _cache.seen == _changes and run.status == "running":
            return run
    except AttributeError:  # this thread never looked
        pass
    return None


def _push(thread: int | None, run: live.LiveRun) -> None:
    global _changes
    _stack.append((thread, run))
    _changes += 1


def _innermost() -> live.LiveRun | None:
    """This thread's innermost running run; a thread that started none logs to the main
    thread's (a trial in a thread pool nests under the study, a helper thread logs into the
    training run). Runs that ended leave the stack. Called with ``_lock`` held."""
    global _changes
    kept = [(thread, run) for thread, run in _stack if run.status == "running"]
    if len(kept) != len(_stack):
        _stack[:] = kept
        _changes += 1
    me = threading.get_ident()
    found = next((run for thread, run in reversed(_stack) if thread == me), None)
    if found is None:
        found = next((r for thread, r in reversed(_stack) if thread in (_MAIN, None)), None)
    _cache.run, _cache.seen = found, _changes
    return found


def active_run() -> live.LiveRun | None:
    """The innermost running run of this thread (see ``_innermost``), attaching to a parent
    ``tether run``'s run when there is none."""
    run = _cached()
    if run is not None:
        return run
    with _lock:
        run = _innermost()
        if run is None and os.environ.get(live.ENV_RUN_ID):
            run = live.attach(Workspace.open())
            if run is not None:
                _push(None, run)
                _install_hooks()
                run = _innermost()
        return run


def end_run(status: str = "finished") -> str | None:
    """End the innermost run (its record's id when this process sealed it). ``status`` is
    finished, failed or killed, in any case (MLflow's ``"FAILED"`` too)."""
    run = active_run()
    if run is None:
        return None
    record = run.end(status.lower())
    with _lock:
        _innermost()
    return record


def _run() -> live.LiveRun:
    return active_run() or start_run()


def log_param(key: str, value: object) -> None:
    _run().log_param(key, value)


def log_params(params: Mapping[str, object]) -> None:
    _run().log_params(params)


def log_metric(key: str, value: float, step: int | None = None) -> None:
    try:  # _cached() inlined: this is the hot path
        run = _cache.run
        if run is None or _cache.seen != _changes or run.status != "running":
            run = _run()
    except AttributeError:  # this thread never looked
        run = _run()
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
    filter_string: str | None = None,
    order_by: Sequence[str] | None = None,
    max_results: int | None = None,
    experiment_names: Sequence[str] | None = None,
    experiment_ids: Sequence[str] | None = None,
    run_view_type: object = None,
    output_format: str = "list",
) -> list[IndexedRun]:
    """Runs matching ``where`` (the query language of ``tether runs list --where``), ordered by
    ``sort``, at most ``limit`` of them; newest first by default.

    MLflow's argument names work too: ``filter_string`` and ``order_by=["metrics.loss DESC"]``
    in MLflow's search syntax, ``max_results``, ``experiment_names`` (or ``experiment_ids``:
    an experiment's id is its name), ``run_view_type`` (``ACTIVE_ONLY``, ``DELETED_ONLY``,
    ``ALL``). The result is a list of runs, never a DataFrame."""
    from tether.runs import catalog
    from tether.runs import search as mlflow

    if where is not None and not isinstance(where, str):
        raise UsageError(
            f"where is a query string, not {where!r}: MLflow's first argument is experiment_ids; "
            f"pass experiment_ids={where!r} by name"
        )
    if output_format != "list":
        raise UsageError(
            f"output_format={output_format!r}: search_runs returns a list of runs; build a "
            "DataFrame from their params and metrics if you need one"
        )
    where = _one("where", where, "filter_string", filter_string, mlflow.translate)
    sort = _one("sort", sort, "order_by", order_by, mlflow.order_clause)
    limit = _one("limit", limit, "max_results", max_results, int)
    experiments = [
        name
        for names in (experiment_names, experiment_ids)
        for name in ([names] if isinstance(names, str) else names or [])  # one name, or a list
    ]
    if experiments:
        clause = mlflow.experiment_clause(experiments)
        where = clause if where is None else f"({where}) and {clause}"
    shown = mlflow.view(run_view_type)
    ws = Workspace.open(None if path is None else Path(path))
    try:
        if shown != "deleted":
            return catalog.search(ws, where, sort, limit, include_deleted=shown == "all")
        found = catalog.search(ws, where, sort, None, include_deleted=True)
        return [r for r in found if r.deleted][:limit]
    finally:
        ws.close()


def _one(name: str, value: Any, mlflow_name: str, mlflow_value: Any, convert: Any) -> Any:
    """Tether's argument, or MLflow's of the same meaning converted; never both."""
    if mlflow_value is None:
        return value
    if value is not None:
        raise UsageError(f"give either {name} or {mlflow_name}, not both")
    return convert(mlflow_value)


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
    for _thread, run in reversed(_stack):  # children before their parents
        if run.status == "running":
            run.end("failed" if _failed else "finished")
