"""The logging side of a live run: :class:`LiveRun`, what ``tether.start_run`` returns.

``log_metric`` is the hot path: it validates a key once per key and appends to the journal's
buffer (see ``journal.py``). A process started by ``tether run`` *attaches* to its parent's run
(found through ``TETHER_RUN_ID``): it logs into the same run and the parent seals it.
"""

from __future__ import annotations

import math
import os
import random
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

from tether.errors import RunError, TetherError
from tether.runs import lifecycle
from tether.runs.index import redactor_for
from tether.runs.journal import Journal, check_key, read_events, text
from tether.runs.streaming import LiveStream, start_stream
from tether.workspace.repo import Workspace

MAX_STEP = 1 << 63
ENV_RUN_ID = "TETHER_RUN_ID"
ENV_RUN_DIR = "TETHER_RUN_DIR"


class LiveRun:
    """A run being logged to. As a context manager it ends the run: ``finished`` on success,
    ``failed`` on an exception, ``killed`` on Ctrl-C."""

    def __init__(self, ws: Workspace, run_id: str, folder: Path, *, owner: bool, lock_fd: int = -1):
        self.ws = ws
        self.id = run_id
        self.folder = folder
        self.owner = owner  # this process started it and seals it
        self._lock_fd = lock_fd
        self._journal = Journal(folder)
        self._kept: list[str] = []
        self._points = self._journal._points
        self._keys: set[str] = set()
        self._redactor = redactor_for(ws)
        start = lifecycle.read_start(folder)
        self.name: str = start["name"]
        self.experiment: str = start["experiment"]
        known = read_events(folder) if not owner else None
        self._params: dict[str, str] = {**start["params"], **(known.params if known else {})}
        self._tags: dict[str, str] = {}
        self._stream: LiveStream | None = None
        self._streamed = False
        self.status = "running"

    # -- params and tags -------------------------------------------------------------------
    def _check(self) -> None:
        if self.status != "running":
            raise RunError(f"run {self.id} has ended ({self.status}): start a new run to log more")

    def log_param(self, key: str, value: object) -> None:
        self._check()
        check_key(key, "param name")
        shown = self._redactor.redact_value(key, _stringify(value))
        old = self._params.get(key)
        if old is not None and not same_value(old, shown):
            raise RunError(
                f"param {key!r} was already logged as {old!r} in run {self.id}; params are "
                f"immutable, so {shown!r} is refused: log it under another name or start a new run"
            )
        if old is None:
            self._params[key] = shown
            self._journal.event("p", key, text(shown))

    def log_params(self, params: Mapping[str, object]) -> None:
        for key, value in params.items():
            self.log_param(key, value)

    def set_tag(self, key: str, value: object) -> None:
        self._check()
        check_key(key, "tag name")
        shown = self._redactor.redact_value(key, _stringify(value))
        self._tags[key] = shown
        self._journal.event("t", key, text(shown))

    def set_tags(self, tags: Mapping[str, object]) -> None:
        for key, value in tags.items():
            self.set_tag(key, value)

    def note(self, message: str) -> None:
        self._journal.event("n", text(self._redactor.redact(message)))

    # -- metrics ---------------------------------------------------------------------------
    def log_metric(
        self, key: str, value: float, step: int | None = None, timestamp: float | None = None
    ) -> None:
        if key not in self._keys:
            self._check()
            check_key(key, "metric name")
            self._keys.add(key)
            if not self._streamed:  # the first metric: the team sees the run live from now
                self._streamed = True
                self._stream = start_stream(
                    self.ws, self.folder, self._journal, self._params, self._tags
                )
        elif self.status != "running":
            self._check()
        if step:
            step = int(step)
            if not -MAX_STEP <= step < MAX_STEP:
                raise RunError(f"step {step} is out of range (a 64-bit integer)")
        self._points.append(
            (key, float(value), step or 0, time.time() if timestamp is None else float(timestamp))
        )

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        now = time.time()
        for key, value in metrics.items():
            self.log_metric(key, value, step, now)

    # -- data and artifacts ----------------------------------------------------------------
    def log_input(self, path: str | os.PathLike[str]) -> str:
        """Record ``path`` as an input, by content id (stored in the object store)."""
        return self._log_path("i", path)

    def log_output(self, path: str | os.PathLike[str]) -> str:
        return self._log_path("o", path)

    def log_artifact(self, path: str | os.PathLike[str], name: str | None = None) -> str:
        oid = self._store(path)
        self._journal.event("a", text(name or Path(path).name), oid)
        return oid

    def _log_path(self, kind: str, path: str | os.PathLike[str]) -> str:
        oid = self._store(path)
        try:
            shown = self.ws.rel(path)
        except TetherError:
            shown = str(Path(path).absolute())
        self._journal.event(kind, text(shown), oid)
        return oid

    def _store(self, path: str | os.PathLike[str]) -> str:
        """Store a file or folder and keep it alive (a live ref) until the run is sealed:
        ``tether gc`` meanwhile must not take what the record will name."""
        from tether.workspace.add import store_path

        self._check()
        refuse_keys(path)
        with self.ws.writing():
            oid = store_path(self.ws, path)
            self._kept.append(oid)
            self.ws.refs.set(lifecycle.live_ref(self.id, self._journal.token), self._kept)
        return oid

    def seed(self, value: int) -> int:
        """Seed ``random`` (and numpy, torch when already imported) and record the seed."""
        value = int(value)
        random.seed(value)
        numpy = sys.modules.get("numpy")
        if numpy is not None:
            numpy.random.seed(value % 2**32)
        torch = sys.modules.get("torch")
        if torch is not None:
            torch.manual_seed(value)
        self._journal.event("s", str(value))
        return value

    # -- ending ----------------------------------------------------------------------------
    def flush(self) -> None:
        self._journal.flush()

    def end(self, status: str = "finished", *, exit_code: int | None = None) -> str | None:
        """Close this process's journal; the owner seals the run (the record's id)."""
        if self.status != "running":
            return None
        if self._stream is not None:
            self._stream.stop()
        self._journal.close()
        self.status = status
        if not self.owner:
            return None
        try:
            return lifecycle.seal(self.ws, self.folder, status, exit_code=exit_code)
        finally:
            os.close(self._lock_fd)

    def __enter__(self) -> LiveRun:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.end("finished")
        elif issubclass(exc_type, KeyboardInterrupt):
            self.end("killed")
        else:
            self.end("failed")


def same_value(a: str, b: str) -> bool:
    """``1`` on the command line and ``1.0`` logged by the script are the same param."""
    if a == b or a.lower() == b.lower() in ("true", "false"):
        return True
    try:
        return float(a) == float(b)
    except ValueError:
        return False


def _stringify(value: object) -> str:
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    return value if isinstance(value, str) else str(value)


def start(ws: Workspace, **kwargs: Any) -> LiveRun:
    started = lifecycle.begin(ws, **kwargs)
    return LiveRun(ws, started.id, started.folder, owner=True, lock_fd=started.lock_fd)


def attach(ws: Workspace) -> LiveRun | None:
    """The run a parent ``tether run`` started for this process, if any."""
    run_id = os.environ.get(ENV_RUN_ID)
    folder = os.environ.get(ENV_RUN_DIR)
    if not run_id or not folder:
        return None
    if not (Path(folder) / "start.json").exists():
        raise RunError(
            f"{ENV_RUN_ID}={run_id} names a run that is not live (its folder {folder} is gone): "
            f"unset {ENV_RUN_ID} and {ENV_RUN_DIR} to start runs of your own"
        )
    lifecycle.contribute_environment(ws, run_id, Path(folder))  # the script's own interpreter
    return LiveRun(ws, run_id, Path(folder), owner=False)


def refuse_keys(path: str | os.PathLike[str], keys: str | os.PathLike[str] | None = None) -> None:
    """Nothing in Tether's keys folder (``keys``, else this process's) is ever stored, as an
    input, output or artifact: a path in it, or a folder holding it, is refused."""
    from tether.signing import default_keys_dir

    folder = os.path.realpath(keys if keys is not None else default_keys_dir())
    here = os.path.realpath(path)
    if (
        here == folder
        or folder.startswith(here.rstrip(os.sep) + os.sep)
        or here.startswith(folder.rstrip(os.sep) + os.sep)
    ):
        raise RunError(
            f"{path} is in, or holds, Tether's keys folder ({folder}): signing keys are never "
            "recorded as a run's data"
        )
