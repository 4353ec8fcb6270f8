"""The facade's verbs that need no :class:`~tether.api.Project`: signing keys, lineage formats,
the pipeline's no-op check. ``tether.api`` re-exports them; ``cli/`` imports them from there.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from tether.errors import NotARepositoryError

if TYPE_CHECKING:
    from tether._api_prompts import PromptLibrary
    from tether.gitio.commits import Problem, StagedFile
    from tether.gitio.hooks import CommitsChecked, HookChanges
    from tether.lineage.graph import LineageGraph
    from tether.signing import KeyInfo, TrustedKey


def lineage_formats() -> tuple[str, ...]:
    """The ways :func:`render_lineage` draws a graph: tree, mermaid, dot, json."""
    from tether.lineage.formats import FORMATS

    return tuple(FORMATS)


def render_lineage(graph: LineageGraph, fmt: str) -> str:
    from tether import lineage

    return lineage.render(graph, fmt)


def openlineage_ndjson(events: list[dict[str, Any]]) -> str:
    """OpenLineage events as JSON lines (what an OpenLineage file holds)."""
    from tether import lineage

    return lineage.to_ndjson(events)


def prov_json(document: dict[str, Any]) -> str:
    from tether import lineage

    return lineage.prov_json(document)


def pipeline_is_fresh() -> bool:
    """Whether nothing that the last up-to-date plan of the pipeline here read has changed:
    a few stat calls, so a no-op `tether repro` loads neither the run index nor git."""
    from tether._version import __version__
    from tether.pipelines.uptodate import fresh_here

    return fresh_here(__version__)


def metric_value(value: float | str | None) -> float:
    """A metric as a run record stores it (``"Infinity"``, ``"NaN"``, None) as a float."""
    from tether.runs.record import number

    return number(value)


# -- signing keys: they belong to a person, not to a project ---------------------------------
def generate_key(identity: str, keys_dir: Path | None = None) -> KeyInfo:
    """A new Ed25519 key for ``identity`` in the keys folder (outside every repository)."""
    from tether.signing import generate

    return generate(identity, keys_dir)


def trust_key(
    public_pem: str, identity: str, roles: tuple[str, ...] = (), *, local: bool = False
) -> tuple[TrustedKey, Path, Path]:
    """Trust a public key as ``identity`` in tether.toml (``local``: .tether/config.toml) of
    the project here: the key, the file written and the project root."""
    from tether.config import LOCAL_FILE, PROJECT_FILE
    from tether.gitio.repo import find_root
    from tether.keyconfig import trust_key as _trust

    root = find_root()
    if not (root / PROJECT_FILE).exists():
        raise NotARepositoryError(f"{root} is not a Tether project: run `tether init` there")
    if not local:
        _refuse_under_a_root(root)
    path = root / (LOCAL_FILE if local else PROJECT_FILE)
    mode = 0o600 if local else 0o644
    return _trust(path, public_pem, identity, roles, new_file_mode=mode), path, root


def _refuse_under_a_root(root: Path) -> None:
    """With a root of trust, tether.toml's keys decide nothing: adding one there is refused."""
    from tether.errors import TrustError
    from tether.registry.store import load_state
    from tether.workspace.repo import Workspace

    found = load_state(Workspace.open(root)).root
    if found is not None:
        raise TrustError(
            f"this project has a root of trust (version {found.version}): a key gets its roles "
            "from it, with `tether trust add FILE --identity EMAIL --role ROLE` (an admin signs); "
            "`tether keys trust --local` trusts a key for verifying on this clone only"
        )


def keys_here(keys_dir: Path | None = None) -> tuple[dict[str, TrustedKey], Path, list[KeyInfo]]:
    """The keys the project here trusts (none outside a project), the keys folder, and the
    private keys in it."""
    from tether.config import PROJECT_FILE, Config
    from tether.gitio.repo import find_root
    from tether.keyconfig import trusted_keys
    from tether.signing import default_keys_dir, local_keys

    trusted = {}
    try:
        root = find_root()
        if (root / PROJECT_FILE).exists():
            trusted = trusted_keys(Config.load(root).data)
    except NotARepositoryError:
        pass  # outside a repository there is no tether.toml: only the local keys are listed
    folder = keys_dir or default_keys_dir()
    return trusted, folder, local_keys(folder)


def prompts_here(path: Path | None = None) -> PromptLibrary:
    """The prompt templates of the git repository holding ``path`` (default: the working
    directory); a Tether project is opened only for what needs one (labels, evals)."""
    from tether._api_prompts import PromptLibrary
    from tether.gitio.repo import find_root

    return PromptLibrary(find_root(path))


# -- git hooks: they run on every commit, so they need only git, never the project's index --------
def install_hooks(path: Path | None = None, *, force: bool = False) -> HookChanges:
    """The commit-msg and pre-commit hooks in the repository holding ``path``; a hook Tether
    did not write is refused, or with ``force`` kept as ``HOOK.bak``."""
    from tether.gitio import hooks
    from tether.gitio.repo import find_root

    return hooks.install_hooks(find_root(path), force=force)


def uninstall_hooks(path: Path | None = None) -> HookChanges:
    from tether.gitio import hooks
    from tether.gitio.repo import find_root

    return hooks.uninstall_hooks(find_root(path))


def check_commits(
    rev_range: str | None = None, types: str | None = None, max_header: int | None = None
) -> CommitsChecked:
    """Conventional Commits over ``rev_range`` (default: what is not pushed yet)."""
    from tether.gitio import hooks
    from tether.gitio.repo import find_root

    return hooks.check_commits(find_root(), rev_range, types, max_header)


def check_commit_message(message_file: Path) -> tuple[str, Problem] | None:
    from tether.gitio import hooks
    from tether.gitio.repo import find_root

    return hooks.check_message_file(find_root(), message_file)


def refused_staged_files() -> tuple[list[StagedFile], int]:
    from tether.gitio import hooks
    from tether.gitio.repo import find_root

    return hooks.refused_staged(find_root())


def pipeline_states(root: Path) -> list[dict[str, Any]]:
    """The stages of the pipeline in the work tree ``root`` as ``tether repro --dry-run``
    plans them, in run order: each one's ``state`` (up to date, runs, or restored from the run
    cache), why, its command, deps and outs (with the ids its last run recorded). Empty when
    there is no ``pipeline.yaml``."""
    from tether.pipelines import plan
    from tether.pipelines.spec import PIPELINE_FILE
    from tether.workspace.repo import Workspace

    if not (root / PIPELINE_FILE).is_file():
        return []
    the_plan = plan.plan(Workspace.open(root))
    states = {"none": "up to date", "run": "stale: runs", "restore": "stale: restored from cache"}
    out = []
    for sp in the_plan.stages:
        locked = the_plan.lock.get(sp.stage.name)
        outs = [*sp.stage.out_paths, *sp.stage.metrics]
        recorded = {} if locked is None else {**locked.outs, **locked.metrics}
        out.append(
            {
                "name": sp.stage.name,
                "state": states.get(sp.action, sp.action),
                "fresh": sp.action == "none",
                "reasons": list(sp.reasons),
                "cmd": sp.stage.cmd,
                "deps": list(sp.stage.deps),
                "outs": [(path, recorded.get(path)) for path in outs],
            }
        )
    return out
