"""The facade: :class:`Project` and its verbs. ``cli/`` (and later ``server/``) call only this.

Every verb returns values and reports progress through an optional fsspec-style callback; nothing
here prints.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tether._api_data import DataVerbs
from tether._api_functions import check_commit_message as check_commit_message
from tether._api_functions import check_commits as check_commits
from tether._api_functions import generate_key as generate_key
from tether._api_functions import install_hooks as install_hooks
from tether._api_functions import keys_here as keys_here
from tether._api_functions import lineage_formats as lineage_formats
from tether._api_functions import metric_value as metric_value
from tether._api_functions import openlineage_ndjson as openlineage_ndjson
from tether._api_functions import pipeline_is_fresh as pipeline_is_fresh
from tether._api_functions import pipeline_states as pipeline_states
from tether._api_functions import prompts_here as prompts_here
from tether._api_functions import prov_json as prov_json
from tether._api_functions import refused_staged_files as refused_staged_files
from tether._api_functions import render_lineage as render_lineage
from tether._api_functions import trust_key as trust_key
from tether._api_functions import uninstall_hooks as uninstall_hooks
from tether._api_team import TeamVerbs
from tether._api_team import duration_seconds as duration_seconds
from tether._api_team import write_private as write_private
from tether.errors import NotARepositoryError, UsageError


def __getattr__(name: str) -> Any:
    """``HOOK_NAMES`` and ``COMMIT_SPEC_URL`` (the Conventional Commits rules), loaded only by
    the commands that show them: `tether status` and a no-op `tether repro` never pay for git
    hooks and commit parsing."""
    if name == "HOOK_NAMES":
        from tether.gitio.hooks import HOOK_NAMES

        return HOOK_NAMES
    if name == "COMMIT_SPEC_URL":
        from tether.gitio.commits import SPEC_URL

        return SPEC_URL
    if name in _TEAM:  # the team server's domain: only `tether server` and its clients load it
        import importlib

        module, attr = _TEAM[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


_TEAM = {
    "Hub": ("tether.team.hub", "Hub"),
    "ServerSettings": ("tether.team.hub", "Settings"),
    "OidcSettings": ("tether.team.oidc", "OidcSettings"),
    "run_document": ("tether.teamclient.client", "run_document"),
    "is_git_push": ("tether.team.githttp", "is_push"),
    "RunUpload": ("tether.team.runs", "RunUpload"),
    "Identity": ("tether.team.accounts", "Identity"),
    "ANONYMOUS": ("tether.team.accounts", "ANONYMOUS"),
    "ROLES": ("tether.team.accounts", "ROLES"),
    "pack_bytes": ("tether.teamclient.packs", "pack_bytes"),
    "BrowserDecision": ("tether._api_browser", "BrowserDecision"),
    "decide_for_browser": ("tether._api_browser", "decide_for_browser"),
    "open_gates_for_browser": ("tether._api_browser", "open_gates_for_browser"),
    "DECISION_ROLES": ("tether._api_browser", "DECISION_ROLES"),
}

if TYPE_CHECKING:  # the verbs' modules load when first used: `tether status` stays fast
    from tether._api_browser import DECISION_ROLES as DECISION_ROLES
    from tether._api_browser import BrowserDecision as BrowserDecision
    from tether._api_browser import decide_for_browser as decide_for_browser
    from tether._api_browser import open_gates_for_browser as open_gates_for_browser
    from tether._api_models import ModelRegistry as ModelRegistry
    from tether._api_models import RootOfTrust as RootOfTrust
    from tether._api_prompts import PromptLibrary as PromptLibrary
    from tether.lineage import graph as _lineage_graph
    from tether.meta.store import IndexedRun as IndexedRun
    from tether.pipelines import plan as _plan
    from tether.registry.roots import Proposal as Proposal
    from tether.repro import reproduce as _reproduce
    from tether.repro.reproduce import Verdict as Verdict
    from tether.repro.review import Review as Review
    from tether.runs import amend as _amend
    from tether.runs import catalog as _catalog
    from tether.runs import compare as _compare
    from tether.runs import determinism as _determinism
    from tether.runs import launch as _launch
    from tether.runs.compare import Comparison as Comparison
    from tether.runs.compare import EnvDiff as EnvDiff
    from tether.runs.compare import RunDiff as RunDiff
    from tether.runs.live import LiveRun
    from tether.team.accounts import ANONYMOUS as ANONYMOUS
    from tether.team.accounts import ROLES as ROLES
    from tether.team.accounts import Identity as Identity
    from tether.team.hub import Hub as Hub
    from tether.team.hub import Settings as _ServerSettings
    from tether.team.oidc import OidcSettings as OidcSettings
    from tether.team.runs import RunUpload as RunUpload
    from tether.teamclient.client import run_document as run_document
    from tether.teamclient.packs import pack_bytes as pack_bytes

    ServerSettings = _ServerSettings
    from tether.workspace.repo import Workspace


class Project(DataVerbs, TeamVerbs):
    """A Tether project: a git work tree with ``tether.toml``."""

    def __init__(self, ws: Workspace) -> None:
        self.ws = ws

    @classmethod
    def open(cls, path: str | os.PathLike[str] | None = None) -> Project:
        from tether.workspace.repo import Workspace

        return cls(Workspace.open(Path(path) if path else None))

    @classmethod
    def init(cls, path: str | os.PathLike[str] | None = None) -> Project:
        from tether.gitio.repo import find_root
        from tether.workspace.repo import Workspace

        start = Path(path) if path else Path.cwd()
        try:
            root = find_root(start)
        except NotARepositoryError:
            raise NotARepositoryError(
                f"{start.resolve()} is not inside a git repository: run `git init` there first, "
                "or `tether new NAME` to create a project with git and Tether set up"
            ) from None
        return cls(Workspace.init(root))

    @property
    def root(self) -> Path:
        return self.ws.root

    def close(self) -> None:
        """Release the stat cache's database connection (a Project is also a context manager)."""
        self.ws.close()

    def __enter__(self) -> Project:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- runs ------------------------------------------------------------------------------
    def start_run(
        self,
        name: str | None = None,
        experiment: str | None = None,
        tags: dict[str, str] | None = None,
    ) -> LiveRun:
        from tether.runs import live

        return live.start(self.ws, name=name, experiment=experiment, tags=tags)

    def run(self, command: list[str], **kwargs: Any) -> _launch.Launched:
        """Run ``command`` as a child process, recorded as a run (``tether run``)."""
        from tether.runs import launch

        return launch.launch(self.ws, command, **kwargs)

    def check_determinism(
        self, command: list[str], **kwargs: Any
    ) -> _determinism.DeterminismReport:
        """Run ``command`` twice as two runs and compare their outputs and metrics."""
        from tether.runs import determinism

        return determinism.check_determinism(self.ws, command, **kwargs)

    def search_runs(
        self,
        where: str | None = None,
        *,
        sort: str | None = None,
        limit: int | None = None,
        include_deleted: bool = False,
        source: str = "auto",
    ) -> list[IndexedRun]:
        """Runs matching ``where``. ``source``: ``local`` (this clone's index), ``server`` (the
        team server's, every teammate's runs), or ``auto``: the server when one is set."""
        from tether.runs import catalog

        if source != "local":
            from tether.teamclient import sync as _team

            where_to = _team.target(self.ws)
            if where_to is None and source == "server":
                raise UsageError(_team.no_server(self.ws))
            if where_to is not None:
                from tether.errors import ServerUnavailableError
                from tether.teamclient.client import HttpMetaStore

                try:
                    with HttpMetaStore(where_to) as index:
                        return index.search(where, sort, limit, include_deleted=include_deleted)
                except ServerUnavailableError as exc:
                    raise ServerUnavailableError(
                        f"{exc}. This clone's own runs: `tether runs list --local`"
                    ) from None
        return catalog.search(self.ws, where, sort, limit, include_deleted=include_deleted)

    def resolve_run(self, ref: str) -> str:
        from tether.runs import catalog

        return catalog.resolve(self.ws, ref)

    def pick_run(self, ref: str) -> _catalog.Picked:
        """The run ``ref`` names, and how (a name several runs bear: ``.notice`` says which)."""
        from tether.runs import catalog

        return catalog.pick(self.ws, ref)

    def get_run(self, ref: str) -> dict[str, Any]:
        """A run's full record (a live run: what is known so far)."""
        from tether.runs import catalog

        return catalog.load(self.ws, catalog.resolve(self.ws, ref))

    def run_series(self, ref: str) -> dict[str, list[tuple[int, float, float]]]:
        """A run's full metric history: key -> [(step, time, value)]."""
        from tether.runs import compare

        return compare.series(self.ws, self.get_run(ref))

    def compare_runs(self, refs: list[str]) -> _compare.Comparison:
        from tether.runs import compare

        return compare.compare(self.ws, [self.get_run(r) for r in refs])

    def diff_runs(self, ref_a: str, ref_b: str) -> _compare.RunDiff:
        from tether.runs import compare

        return compare.diff(self.ws, self.get_run(ref_a), self.get_run(ref_b))

    def amend_run(
        self,
        ref: str,
        *,
        tags: dict[str, str] | None = None,
        untag: list[str] | None = None,
        note: str | None = None,
    ) -> str:
        from tether.runs import amend

        return amend.amend(self.ws, ref, tags=tags, untag=untag, note=note)

    def delete_run(self, ref: str, reason: str = "") -> str:
        from tether.runs import amend

        return amend.delete(self.ws, ref, reason)

    def purge_runs(self, *, dry_run: bool = False, remote: str | None = None) -> _amend.PurgeResult:
        """Free what only deleted runs keep, here and (``remote``: a name, "" for the default)
        on a remote."""
        from tether.runs import amend

        return amend.purge(self.ws, dry_run=dry_run, remote=remote)

    def reindex(self) -> _catalog.Reindexed:
        """Rebuild the run index from the sealed records."""
        from tether.runs import catalog

        return catalog.reindex(self.ws)

    def export_env(self, ref: str, fmt: str) -> str:
        from tether.capture.export import export_environment
        from tether.runs import compare

        return export_environment(compare.environment(self.ws, self.get_run(ref)), fmt)

    def export_runs_yaml(self, refs: list[str]) -> str:
        from tether.runs import ledger

        return ledger.to_yaml([self.get_run(r) for r in refs])

    def commit_log(self, ref: str) -> str:
        """Append the run to ``experiment_log.yaml`` and commit it; the commit id."""
        from tether.runs import ledger

        return ledger.commit_entry(self.ws, self.get_run(ref))

    # -- pipelines -------------------------------------------------------------------------
    def repro(
        self,
        stages: list[str] | None = None,
        *,
        jobs: int = 1,
        force: bool = False,
        dry_run: bool = False,
        report: Callable[[str, str], None] | None = None,
        executor: str | None = None,
        run_cache: bool = True,
    ) -> _plan.ReproResult:
        """Run the stale stages of ``pipeline.yaml`` (``tether repro``). Planning imports
        little: an up-to-date pipeline costs a few stats per dep, not the run machinery.
        ``run_cache=False`` runs stages the run cache could restore (``force`` implies it)."""
        from tether import __version__
        from tether.pipelines import plan, uptodate

        the_plan = plan.plan(self.ws, stages or None, force=force, run_cache=run_cache)
        dropped = [] if dry_run or the_plan.todo else plan.drop_stale(self.ws, the_plan)
        if dropped:  # the lock just changed: plan again, so the state remembered is this one
            the_plan = plan.plan(self.ws, stages or None, force=force, run_cache=run_cache)
        if dry_run or not the_plan.todo:
            if not the_plan.todo and not stages and the_plan.seen is not None:
                uptodate.remember(self.ws.dot, the_plan.seen, __version__)
            return plan.ReproResult(the_plan, dropped=dropped)
        from tether.pipelines import execute

        uptodate.forget(self.ws.dot)
        result = execute.repro(
            self.ws,
            the_plan,
            stages or None,
            jobs=jobs,
            report=report or (lambda _s, _m: None),
            executor=executor,
            use_cache=run_cache,
        )
        if result.ok and not stages:  # the next no-op answers from stat calls
            after = plan.plan(self.ws)
            if not after.todo and after.seen is not None:
                uptodate.remember(self.ws.dot, after.seen, __version__)
        return result

    # -- lineage -----------------------------------------------------------------------------
    def lineage(
        self, target: str, *, direction: str = "up", depth: int | None = None
    ) -> _lineage_graph.LineageGraph:
        """What ``target`` (a path, an object id, a run) came from, or what was built from it."""
        from tether import lineage

        return lineage.trace(self.ws, target, direction=direction, depth=depth)

    def openlineage_events(self, refs: list[str] | None = None) -> list[dict[str, Any]]:
        """OpenLineage RunEvents (START and COMPLETE/FAIL/ABORT) for sealed runs."""
        from tether import lineage

        return lineage.openlineage_events(self.ws, refs or ())

    def send_openlineage(
        self, url: str, events: list[dict[str, Any]], *, api_key: str | None = None
    ) -> int:
        from tether import lineage

        return lineage.send_events(url, events, api_key=api_key)

    def prov_document(self, refs: list[str] | None = None) -> dict[str, Any]:
        """A W3C PROV-JSON document of the runs and what they used and generated."""
        from tether import lineage

        return lineage.prov_document(self.ws, refs or ())

    # -- reproduce ---------------------------------------------------------------------------
    def review_reproduction(
        self,
        ref: str,
        *,
        env: str = "current",
        allow_sources: bool = False,
        pass_env: Sequence[str] = (),
    ) -> Review:
        """What reproducing ``ref`` would run, install and withhold, and who recorded it:
        ask before :meth:`reproduce` runs someone else's code (``tether reproduce`` does)."""
        from tether.repro.review import review

        return review(self.ws, ref, env=env, allow_sources=allow_sources, pass_env=pass_env)

    def reproduce(
        self,
        ref: str,
        *,
        tolerances: Mapping[str, float | str] | None = None,
        modes: dict[str, str] | None = None,
        keep: bool = False,
        env: str = "current",
        pass_env: Sequence[str] = (),
        allow_sources: bool = False,
    ) -> _reproduce.Verdict:
        """Rebuild run ``ref`` in a clean worktree, re-run it, compare (``tether reproduce``).
        The re-run gets your environment less credentials (``pass_env`` names ones it gets
        anyway); it does not ask first (:meth:`review_reproduction` says what it will run)."""
        from tether.repro import reproduce
        from tether.workspace import sync as _sync

        return reproduce.reproduce(
            self.ws,
            ref,
            tolerances=tolerances,
            modes=modes,
            keep=keep,
            fetch=lambda ids: _sync.fetch_ids(self.ws, ids),
            env=env,
            pass_env=pass_env,
            allow_sources=allow_sources,
        )

    # -- config ----------------------------------------------------------------------------
    def config_get(self, key: str) -> Any:
        return self.ws.config.get(key)

    def config_items(self, *, mask_secrets: bool = False) -> list[tuple[str, Any]]:
        """Every setting after all layers; with ``mask_secrets`` credentials read ``****``."""
        from tether import config as _config

        items = _config.all_items(self.ws.config)
        if mask_secrets:
            return [(k, "****" if _config.is_secret(k, v) else v) for k, v in items]
        return items

    def write_ci(self, kind: str) -> Path:
        """Write the CI workflow ``kind`` (github, gitlab) runs `tether repro` and a diff in."""
        from tether.templates import write_ci

        return write_ci(self.root, kind)

    # -- models and prompts: their verbs live beside this module -----------------------------
    @property
    def models(self) -> ModelRegistry:
        """The model registry's verbs: register, request, approve, sign, verify, audit..."""
        from tether._api_models import ModelRegistry

        return ModelRegistry(self.ws)

    @property
    def trust(self) -> RootOfTrust:
        """The root of trust: keys, roles and policies as signed metadata (``tether trust``)."""
        from tether._api_models import RootOfTrust

        return RootOfTrust(self.ws)

    @property
    def prompts(self) -> PromptLibrary:
        """The prompt templates' verbs: new, bump, render, register, eval, promote..."""
        from tether._api_prompts import PromptLibrary

        return PromptLibrary(self.root, self.ws)

    def config_set(self, key: str, value: str, *, local: bool = False) -> Path:
        from tether import config as _config

        path = _config.set_value(self.root, key, _config.parse_value(value), local=local)
        self.ws.__dict__.pop("config", None)
        return path


def new_project(name: str, parent: str | os.PathLike[str] | None = None) -> Project:
    """Create ``NAME/`` from the project template, with git and Tether initialised."""
    from tether.gitio.repo import init_repo
    from tether.templates import render_project

    target = Path(parent or Path.cwd()) / name
    if target.exists():
        raise UsageError(f"{target} already exists: choose another name or remove it")
    render_project(target, name)
    init_repo(target)
    return Project.init(target)
