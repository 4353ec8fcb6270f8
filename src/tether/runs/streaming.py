"""A running run's metrics, shown on the team server while it runs: best effort, from a thread
of its own. Every ``INTERVAL_S`` it sends the run's params, tags and metric summaries (kept by
the journal's flusher, never on the logging path); a slow or down server costs the run nothing
but a skipped update. The sealed record, uploaded when the run ends, is what counts."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

from tether.errors import TetherError
from tether.meta.store import MetricSummary
from tether.runs import lifecycle
from tether.runs.journal import Journal
from tether.workspace.repo import Workspace

INTERVAL_S = 2.0
TIMEOUT_S = 2.0


class LiveStream:
    def __init__(
        self,
        ws: Workspace,
        folder: Path,
        journal: Journal,
        params: Mapping[str, str],
        tags: Mapping[str, str],
    ) -> None:
        from tether.teamclient import sync as team
        from tether.teamclient.client import ServerClient

        where = team.target(ws, timeout=TIMEOUT_S)
        if where is None:
            raise TetherError("no team server is set")
        if team.server_down(ws, where.key):
            raise TetherError("the team server did not answer a moment ago")
        self.client = ServerClient(where, retries=0)
        self.row = lifecycle._running_row(lifecycle.read_start(folder))
        self.journal, self.params, self.tags = journal, params, tags
        journal.summary = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="tether-live", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(INTERVAL_S):
            self.send()

    def send(self) -> None:
        with self.journal._lock:
            summary = {k: list(v) for k, v in (self.journal.summary or {}).items()}
        row = replace(
            self.row,
            params={**self.row.params, **self.params},
            tags={**self.row.tags, **self.tags},
            metrics={
                k: MetricSummary(v[0], v[1], v[2], int(v[3]), int(v[4])) for k, v in summary.items()
            },
        )
        try:
            self.client.put_live(row)
        except (TetherError, OSError):
            pass  # best effort: the sealed record is uploaded when the run ends

    def stop(self) -> None:
        """Stop sending (never waits on the server: the thread is a daemon)."""
        self._stop.set()


def start_stream(
    ws: Workspace,
    folder: Path,
    journal: Journal,
    params: Mapping[str, str],
    tags: Mapping[str, str],
) -> LiveStream | None:
    """A live view on the team server when one is set; None otherwise or when it cannot."""
    if not ws.config.get("server.url"):
        return None
    try:
        return LiveStream(ws, folder, journal, params, tags)
    except (TetherError, OSError):
        return None
