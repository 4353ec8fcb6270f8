"""The facade's data verbs: :class:`DataVerbs`, which :class:`tether.api.Project` inherits
(add, status, checkout, the data diff, remotes with push, fetch and pull, gc and fsck)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tether._types import NO_PROGRESS, Callback
from tether.errors import UsageError

if TYPE_CHECKING:
    from tether.objects.transfer import TransferResult
    from tether.workspace import add as _add
    from tether.workspace import checkout as _checkout
    from tether.workspace import datadiff as _datadiff
    from tether.workspace import fsck as _fsck
    from tether.workspace import gc as _gc
    from tether.workspace import status as _status
    from tether.workspace import sync as _sync
    from tether.workspace.repo import Workspace


class DataVerbs:
    if TYPE_CHECKING:  # Project's
        ws: Workspace

        def _server_for_data(self, remote: str | None) -> Any: ...

    # -- data ------------------------------------------------------------------------------
    def add(
        self, paths: list[str], *, callback: Callback = NO_PROGRESS, jobs: int = 0
    ) -> list[_add.AddResult]:
        from tether.workspace import add as _add

        if not paths:
            raise UsageError("say what to add: tether add PATH...")
        return [_add.add_path(self.ws, p, callback=callback, jobs=jobs) for p in paths]

    def status(self, paths: list[str] | None = None) -> list[_status.PathStatus]:
        from tether.workspace import status as _status

        return _status.status(self.ws, paths)

    def plan_checkout(self, paths: list[str] | None = None) -> _checkout.CheckoutPlan:
        from tether.workspace import checkout as _checkout

        return _checkout.plan_checkout(self.ws, paths)

    def checkout(
        self,
        paths: list[str] | None = None,
        *,
        force: bool = False,
        callback: Callback = NO_PROGRESS,
    ) -> _checkout.CheckoutResult:
        from tether.workspace import checkout as _checkout

        plan = self.plan_checkout(paths)
        return _checkout.apply_checkout(self.ws, plan, force=force, callback=callback)

    def data_diff(
        self, rev_a: str = "HEAD", rev_b: str | None = None
    ) -> list[_datadiff.DataChange]:
        from tether.workspace import datadiff as _datadiff

        return _datadiff.data_diff(self.ws, rev_a, rev_b)

    # -- remotes ---------------------------------------------------------------------------
    def remotes(self) -> dict[str, str]:
        from tether.workspace import sync as _sync

        return _sync.remotes(self.ws)

    def add_remote(self, name: str, url: str, *, default: bool = True) -> None:
        from tether.workspace import sync as _sync

        _sync.add_remote(self.ws, name, url, default=default)

    def push(
        self,
        remote: str | None = None,
        *,
        all_commits: bool = False,
        callback: Callback = NO_PROGRESS,
    ) -> _sync.PushResult:
        from tether.workspace import sync as _sync

        return _sync.push(self.ws, remote, all_commits=all_commits, callback=callback)

    def fetch(
        self,
        paths: list[str] | None = None,
        *,
        remote: str | None = None,
        callback: Callback = NO_PROGRESS,
    ) -> TransferResult:
        from tether.workspace import sync as _sync

        if (server := self._server_for_data(remote)) is not None:
            from tether.teamclient import fetch as _team_fetch

            return _team_fetch.fetch(self.ws, server, paths or None, callback=callback)
        result = _sync.fetch(self.ws, remote, paths or None, callback=callback)
        self._index_fetched(result, paths or None)
        return result

    def _index_fetched(self, result: TransferResult, paths: list[str] | None) -> None:
        """Index the runs a fetch brought; a fetch of the refs also catches up on runs an
        earlier fetch brought and could not index (a pull whose checkout refused)."""
        if result.refs or paths is None:
            from tether.runs import catalog

            catalog.sync_index(self.ws)

    def pull(
        self,
        paths: list[str] | None = None,
        *,
        remote: str | None = None,
        force: bool = False,
        callback: Callback = NO_PROGRESS,
        checkout_callback: Callback = NO_PROGRESS,
    ) -> tuple[TransferResult, _checkout.CheckoutResult]:
        from tether.workspace import sync as _sync

        if (server := self._server_for_data(remote)) is not None:
            from tether.teamclient import fetch as _team_fetch

            refused: dict[str, Any] = {}
            got = _team_fetch.fetch(
                self.ws, server, paths or None, callback=callback, refused=refused
            )
            from tether.workspace import checkout as _checkout

            plan = self.plan_checkout(paths)
            done = _checkout.apply_checkout(
                self.ws, plan, force=force, callback=checkout_callback, command="pull"
            )
            return got, done
        fetched, done = _sync.pull(
            self.ws,
            remote,
            paths or None,
            force=force,
            callback=callback,
            checkout_callback=checkout_callback,
            fetched_hook=lambda r: self._index_fetched(r, paths or None),
        )
        return fetched, done

    # -- maintenance -----------------------------------------------------------------------
    def gc(
        self, *, dry_run: bool = False, all_commits: bool = False, remote: str | None = None
    ) -> _gc.GcResult:
        from tether.workspace import gc as _gc

        if remote is not None:
            return _gc.gc_remote(self.ws, remote or None, dry_run=dry_run, all_commits=all_commits)
        return _gc.gc(self.ws, dry_run=dry_run, all_commits=all_commits)

    def fsck(self, *, repair: bool = False, callback: Callback = NO_PROGRESS) -> _fsck.FsckReport:
        from tether.workspace import fsck as _fsck

        return _fsck.fsck(self.ws, repair=repair, callback=callback)
