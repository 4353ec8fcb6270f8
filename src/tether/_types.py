"""Small shared types: the progress callback shape the library reports through."""

from __future__ import annotations

from typing import Protocol


class Callback(Protocol):
    """fsspec's ``Callback`` shape: the library reports progress, the CLI draws it."""

    def set_size(self, size: int | None) -> None: ...

    def relative_update(self, inc: int = 1) -> None: ...


class NoProgress:
    """A callback that ignores everything (the default)."""

    def set_size(self, size: int | None) -> None:
        pass

    def relative_update(self, inc: int = 1) -> None:
        pass


NO_PROGRESS = NoProgress()
