"""Progress bars (rich) behind the library's callback shape; drawn only on a terminal."""

from __future__ import annotations

import sys
from types import TracebackType
from typing import Any


class Bar:
    """An fsspec-style callback drawing one rich progress bar on stderr.

    Off a terminal it draws nothing and does not even import rich (40 ms of start-up).
    """

    def __init__(self, description: str) -> None:
        self.progress: Any = None
        if not sys.stderr.isatty():
            return
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )

        console = Console(stderr=True)
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=console,
            transient=True,
            disable=not console.is_terminal,
        )
        self.task = self.progress.add_task(description, total=None)

    def set_size(self, size: int | None) -> None:
        if self.progress is not None:
            self.progress.update(self.task, total=size, completed=0)

    def relative_update(self, inc: int = 1) -> None:
        if self.progress is not None:
            self.progress.advance(self.task, inc)

    def __enter__(self) -> Bar:
        if self.progress is not None:
            self.progress.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> Any:
        if self.progress is not None:
            self.progress.stop()
        return None
