"""``tether reproduce RUN``: rebuild a past run exactly and say whether it comes out the same.

A clean git worktree at the run's commit gets the recorded diff applied, its tracked data
checked out and its logged inputs restored by id (fetched from the remote when the cache lacks
them); the environment is compared with the recorded one; the recorded command re-runs there,
in the folder it was started in and with the ``--dep``/``--out`` it declared, as a new run
tagged ``reproduction_of``; outputs are compared by their ``compare`` mode and metrics within
tolerances. A pipeline stage's run re-runs through the pipeline, a whole pipeline run as a whole
(see ``repro/pipeline.py``). Only a finished run is reproduced. The verdict is REPRODUCED,
DIFFERENT (with the four-pillar explanation) or FAILED (with the reason).

A run is other people's code: the re-run gets this process's environment without credentials
(``repro/scrub.py``); a patch redaction altered, or ``--env fresh`` packages from outside the
configured index, are refused before anything is built (``repro/review.py``).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tether._fs import remove_path
from tether.capture.code import lacking
from tether.capture.env import capture_environment
from tether.capture.interpreter import command_env, read_interpreter, with_interpreter
from tether.capture.submodules import restore_submodules
from tether.errors import (
    GitError,
    LaunchError,
    MissingObjectError,
    TetherError,
    UnsafePathError,
    UsageError,
)
from tether.gitio import git, is_commit
from tether.gitio.repo import DOT
from tether.redact import MASK
from tether.repro import freshenv, scrub
from tether.repro.gitignore import hidden_from_git
from tether.repro.options import options, tolerance
from tether.repro.pipeline import reproduce_pipeline, rerun_stage, stage_modes, with_sources
from tether.repro.restore import check_record, in_tree, outside, restore_data, run_folder, unseen
from tether.repro.review import (
    blocked,
    environment,
    index_url,
    masked_note,
    passing_notes,
    redactions,
)
from tether.repro.verdict import (
    DIFFERENT,
    EXIT,
    FAILED,
    MODES,
    REPRODUCED,
    Failed,
    MetricCheck,
    OutCheck,
    Verdict,
    judge,
    stop_if_interrupted,
)
from tether.runs import catalog, compare, launch
from tether.runs.index import redactor_for
from tether.workspace.repo import Workspace

__all__ = [  # what callers import from here
    "DIFFERENT",
    "EXIT",
    "FAILED",
    "MODES",
    "REPRODUCED",
    "Failed",
    "MetricCheck",
    "OutCheck",
    "Verdict",
    "reproduce",
    "tolerance",
]


def reproduce(
    ws: Workspace,
    ref: str,
    *,
    tolerances: Mapping[str, float | str] | None = None,
    modes: Mapping[str, str] | None = None,
    keep: bool = False,
    fetch: Any = None,
    env: str = "current",
    cwd: str | Path | None = None,
    pass_env: Iterable[str] = (),
    allow_sources: bool = False,
) -> Verdict:
    """Rebuild and re-run ``ref``; ``fetch(ids)`` brings missing objects from a remote.
    ``env="fresh"`` re-runs in a new virtual environment built from the recorded packages,
    from your configured package indexes only (``allow_sources``: also the record's direct
    URL, VCS and local sources). A tolerance is relative: ``0.01`` or ``"1%"``; a mode is one
    of :data:`MODES`. Their paths are taken from ``cwd`` (the current folder), as ``tether run
    --out`` takes its paths, or from the top of the repository.

    The re-run gets this process's environment less credentials (``repro/scrub.py``); the
    names in ``pass_env`` it gets anyway, and naming any lets a patch that redaction altered
    run (see ``repro/review.py``). Nothing here asks: :func:`tether.repro.review.review`
    says what will run, for a caller to ask about."""
    typed = options(tolerances, modes, env, os.getcwd() if cwd is None else cwd, ws.root)
    limits, how = typed.judged_limits, typed.judged_modes
    run_id = catalog.resolve(ws, ref)
    record = catalog.load(ws, run_id)
    verdict = Verdict(FAILED, run_id)
    status = record.get("status")
    if status == "running":
        verdict.reason = "the run is still running: reproduce it once it has ended"
        return verdict
    if status != "finished":  # what it left is not a result a re-run could be judged against
        verdict.reason = (
            f"the run {status} (exit code {record.get('exit_code')}): only a finished run has a "
            "result to reproduce; `tether runs show` it to see why it stopped"
        )
        return verdict
    parent = record.get("parent")
    if parent and not (record.get("tags") or {}).get("stage"):
        top = catalog.load(ws, str(parent))
        verdict.reason = (
            f"{record['name']} is a run that {top['name']} ({str(parent)[:8]}) started inside: "
            f"reproduce {top['name']}, and the runs it starts are judged with it, matched by "
            "name and order"
        )
        return verdict
    check_record(record)  # its paths, before anything is written
    passed = list(pass_env)
    try:
        verdict.reason = blocked(ws, record, env, allow_sources=allow_sources, pass_env=passed)
    except MissingObjectError as exc:
        verdict.reason = f"the run's environment is gone from every cache: {exc}"
    if verdict.reason:
        return verdict
    scrubbed = environment(ws, passed)
    verdict.withheld = scrubbed.withheld
    run = _Rerun(limits, how, env, fetch, scrubbed, allow_sources)
    tree: Path | None = None
    try:
        tree = _worktree(ws, record)
        verdict.worktree = str(tree)
        _carry_out(ws, tree, verdict, record, run)
    except Failed as exc:
        verdict.verdict, verdict.reason = FAILED, str(exc)
    except UnsafePathError:  # hostile content, not a failed reproduction
        raise
    except MissingObjectError as exc:
        verdict.verdict = FAILED
        verdict.reason = f"inputs are gone from every cache and remote: {exc}"
    except TetherError as exc:  # the rebuilt tree could not run it (a stage's dep missing, ...)
        verdict.verdict, verdict.reason = FAILED, str(exc)
    finally:
        if tree is not None and not keep:
            _remove_worktree(ws, tree)
            verdict.worktree = None
        if verdict.fresh_env is not None and not keep:
            shutil.rmtree(verdict.fresh_env.root, ignore_errors=True)
    scrub.not_blamed(verdict.explanation, verdict.drift, verdict.withheld)
    if verdict.verdict != FAILED:
        verdict.reason = "; ".join(filter(None, [verdict.reason, typed.unused(verdict)]))
    if away := outside(record):
        note = f"{', '.join(away)}: outside the repository: not compared (never read here)"
        verdict.reason = "; ".join(filter(None, [verdict.reason, note]))
    notes = passing_notes(ws, record, scrubbed, ran=verdict.started)
    verdict.reason = "; ".join(filter(None, [verdict.reason, notes]))
    altered = redactions(ws, record.get("code") or {})
    if verdict.explanation is not None and altered:  # the likeliest cause of all
        verdict.explanation.causes.insert(0, masked_note(altered, ran=True))
    if verdict.verdict != REPRODUCED:  # what the rebuilt worktree lacked may be why
        verdict.reason = "\n".join(filter(None, [verdict.reason, lacking(record.get("code"))]))
    if verdict.reproduction:  # the verdict travels with the run (a registry gate asks for it)
        from tether.runs.amend import amend

        # (a pipeline's own run is tagged here: only its stage runs were tagged as they began)
        tags = {"verdict": verdict.verdict, "reproduction_of": run_id}
        if verdict.withheld:  # so `tether diff` later knows why they are set in A only
            tags[compare.WITHHELD_TAG] = ",".join(verdict.withheld)
        amend(ws, verdict.reproduction, tags=tags)
    return verdict


@dataclass(frozen=True)
class _Rerun:
    """How the re-run is judged, and what it runs with."""

    limits: dict[str, float]
    modes: dict[str, str]
    env: str  # current | fresh
    fetch: Any
    scrubbed: scrub.Scrubbed
    allow_sources: bool


def _carry_out(
    ws: Workspace, tree: Path, verdict: Verdict, record: dict[str, Any], run: _Rerun
) -> None:
    """In the rebuilt ``tree``: restore the data, then, in the scrubbed environment, re-run
    and judge."""
    if not (tree / "tether.toml").exists():  # never committed: the project's own will do
        shutil.copyfile(ws.root / "tether.toml", tree / "tether.toml")
    copy = Workspace.open(tree)
    try:
        modes = {**stage_modes(tree, record), **run.modes}
        limits = run.limits
        pipeline = (record.get("tags") or {}).get("kind") == "pipeline"
        restored = restore_data(  # with your credentials: the remote may need them
            ws, copy, with_sources(ws, tree, record) if pipeline else record, run.fetch
        )
        recorded = compare.environment(ws, record)
        pip_env = scrub.for_pip(run.scrubbed, os.environ)
        _ = copy.config, ws.config  # read now, with your TETHER_* settings
        new_data = unseen(record, restored)
        with scrub.applied(run.scrubbed):
            if run.env == "current":  # what the re-run will see (fresh: the new one's)
                verdict.drift = compare.env_drift(recorded, _env_now(copy, record, recorded))
            with (
                _environment(verdict, recorded, run, ws, pip_env),
                hidden_from_git(tree, new_data),
            ):
                _run_and_judge(ws, copy, verdict, record, limits, modes, recorded, pipeline)
    finally:
        copy.close()


def _run_and_judge(
    ws: Workspace,
    copy: Workspace,
    verdict: Verdict,
    record: dict[str, Any],
    limits: dict[str, float],
    modes: dict[str, str],
    recorded: dict[str, Any],
    pipeline: bool,
) -> None:
    if pipeline:
        verdict.started = True
        reproduce_pipeline(ws, copy, verdict, record, limits, modes)
        return
    verdict.reproduction = _rerun(ws, copy, record, recorded, verdict)
    again = catalog.load(ws, verdict.reproduction)
    judge(ws, verdict, record, again, limits, modes)
    if verdict.fresh_env is not None:
        _ran_fresh(ws, verdict, verdict.fresh_env.root, again)


@contextmanager
def _environment(
    verdict: Verdict,
    recorded: dict[str, Any],
    run: _Rerun,
    ws: Workspace,
    pip_env: dict[str, str],
) -> Iterator[None]:
    """The current environment, or (``fresh``) a new one built from the record and put first
    on PATH; its drift from the record is the verdict's."""
    if run.env == "current":
        yield
        return
    where = Path(tempfile.mkdtemp(prefix="tether-env-"))
    try:
        verdict.fresh_env = freshenv.build(
            recorded,
            where,
            index_url=index_url(ws),
            environ=pip_env,
            allow_sources=run.allow_sources,
        )
    except freshenv.EnvBuildError as exc:
        shutil.rmtree(where, ignore_errors=True)
        raise Failed(f"the recorded environment could not be rebuilt: {exc}") from exc
    except BaseException:  # Ctrl-C while pip installs: nothing left behind
        shutil.rmtree(where, ignore_errors=True)
        raise
    fresh = verdict.fresh_env
    now = {
        "python": {"version": fresh.interpreter},
        "platform": recorded.get("platform"),
        "packages": {n: {"version": v} for n, v in fresh.packages.items()},
        "lock_files": recorded.get("lock_files"),
        "determinism": recorded.get("determinism"),
    }
    plain = {
        **recorded,
        "packages": {
            n: {"version": i["version"]} for n, i in (recorded.get("packages") or {}).items()
        },
    }
    verdict.drift = compare.env_drift(plain, now)
    with freshenv.activated(fresh):
        yield


def _ran_fresh(ws: Workspace, verdict: Verdict, root: str, again: dict[str, Any]) -> None:
    """``--env fresh`` promised the fresh environment: the re-run's Python, as recorded, was
    it; one that was not fails the reproduction, one that cannot be known is said."""
    env = compare.environment(ws, again)
    info, prefix = env.get("interpreter") or {}, (env.get("python") or {}).get("prefix")
    if not info.get("known"):
        note = (
            f"the command's Python cannot be known ({info.get('reason')}), so it may not have "
            "run in the fresh environment: run a Python script by its interpreter "
            "(`python train.py`), or import tether in it"
        )
        verdict.reason = "; ".join(filter(None, [verdict.reason, note]))
    elif prefix and os.path.realpath(prefix) != os.path.realpath(root):
        raise Failed(
            f"the command did not run in the fresh environment: its Python was {prefix}'s "
            "(a script that names its interpreter by path, a shebang, or one that execs another)"
        )


def _rerun(
    ws: Workspace,
    copy: Workspace,
    record: dict[str, Any],
    recorded: dict[str, Any],
    verdict: Verdict,
) -> str:
    """Re-run as the original ran: a pipeline stage through the pipeline (its params, deps,
    outs and metrics files recorded the same way), anything else by its command."""
    run_id, fresh = verdict.run, verdict.fresh_env
    stage = (record.get("tags") or {}).get("stage")
    if stage:
        verdict.started = True
        return rerun_stage(copy, stage, run_id)
    folder = _folder(copy.root, record)
    command = _command(record, recorded, folder)
    if fresh is not None and Path(command[0]).name.startswith("python"):
        command = [fresh.python, *command[1:]]  # the fresh environment's interpreter
    else:
        command = [_program(command[0], folder, copy.root, ws.root), *command[1:]]
    deps, outs = _declared(copy.root, record)
    verdict.started = True  # (launch starts it, unless it cannot: then it did not)
    try:
        done = launch.launch(
            copy,
            command,
            name=f"{record['name']}-reproduction",
            experiment=record["experiment"],
            tags={"reproduction_of": run_id},
            cwd=folder,
            deps=deps,
            outs=outs,
        )
    except (LaunchError, UsageError) as exc:  # the command cannot start, or a --dep is missing
        verdict.started = False
        raise Failed(f"the re-run could not start: {exc}") from exc
    stop_if_interrupted(done.status, done.exit_code)  # Ctrl-C reached the process group
    if done.status != "finished":
        raise Failed(f"the re-run {done.status} (exit code {done.exit_code})")
    return done.run_id


def _declared(tree: Path, record: dict[str, Any]) -> tuple[list[str], list[str]]:
    """The run's ``--dep`` and ``--out`` paths in the tree. Each out is removed from the tree
    first (unless it is a dep too), so one the re-run does not write is missing, not whatever
    the commit or its diff held there. One outside the tree (recorded absolute, or reached
    through a link out of it) is left out: the reproduction never reads, stores or removes
    anything on your disk beyond the rebuilt tree (:func:`outside` names them)."""
    declared = record.get("declared")
    if declared is None:  # recorded before Tether kept --dep/--out: every output, again
        logged = (record.get("data") or {}).get("outputs") or {}
        declared = {"outs": [p for p in logged if not os.path.isabs(p)]}
    deps = _inside_tree(tree, declared.get("deps"))
    outs = _inside_tree(tree, declared.get("outs"))
    for out in outs:
        path = Path(out)
        if any(d == out or d.startswith(out + "/") or out.startswith(d + "/") for d in deps):
            continue
        remove_path(path)
    return deps, outs


def _inside_tree(tree: Path, paths: Any) -> list[str]:
    """``paths`` in the tree, less those outside it (absolute, or through a link out of it)."""
    top = tree.resolve()
    found = []
    for p in paths or []:
        if os.path.isabs(str(p)):
            continue
        path = in_tree(tree, str(p))
        if Path(path).resolve().is_relative_to(top):
            found.append(path)
    return found


def _folder(tree: Path, record: dict[str, Any]) -> Path:
    """Where the run was started, in the rebuilt tree (made when the commit has no such
    folder: one holding only ignored files). A record from before Tether kept it: the folder
    its entry point was named from (``sub/train.py`` run as ``train.py`` ran in ``sub``)."""
    # no "cwd": an older record; None: started outside the repository, re-run at the top
    rel = str(record["cwd"] or ".") if "cwd" in record else _folder_from_entry(record)
    return run_folder(tree, rel, record)


def _program(program: str, folder: Path, tree: Path, home: Path) -> str:
    """The program to run. One named by a relative path that the commit does not hold (an
    ignored ``.venv/bin/python``) is the current environment's: the work tree's own."""
    if os.path.isabs(program) or "/" not in program or (folder / program).exists():
        return program
    mine = home / folder.relative_to(tree) / program
    return str(mine) if mine.exists() else program


def _folder_from_entry(record: dict[str, Any]) -> str:
    entry = str((record.get("code") or {}).get("entry_point") or "")
    for arg in (record.get("command") or [])[:3]:
        name = os.path.normpath(arg) if not os.path.isabs(arg) else ""
        if name and not name.startswith("..") and entry.endswith("/" + name):
            return entry[: -len(name) - 1]
    return "."


def _worktree(ws: Workspace, record: dict[str, Any]) -> Path:
    code = record.get("code") or {}
    commit = code.get("commit")
    if not commit:
        raise Failed("the run was recorded outside any commit: there is nothing to check out")
    if not is_commit(ws.root, commit):
        raise Failed(f"commit {commit[:12]} no longer exists here: `git fetch` it, or restore it")
    tree = Path(tempfile.mkdtemp(prefix="tether-reproduce-"))
    try:
        git(ws.root, "worktree", "add", "-q", "--detach", str(tree), commit)
        _apply_diff(ws, tree, code.get("diff"))
        try:  # the commit's submodules, each at its recorded commit with its own diff
            restore_submodules(ws.root, tree, code.get("submodules") or [], ws.store.read_bytes)
        except GitError as exc:
            raise Failed(str(exc)) from exc
        if (tree / DOT).exists() or (tree / DOT).is_symlink():
            raise Failed(f"the commit itself holds a {DOT} folder: it cannot be rebuilt safely")
        (tree / DOT).symlink_to(ws.dot)  # the same cache, index and refs
    except BaseException:
        _remove_worktree(ws, tree)  # a failed rebuild leaves no worktree behind
        raise
    return tree


def _apply_diff(ws: Workspace, tree: Path, diff: str | None) -> None:
    if not diff:
        return
    try:
        patch = ws.store.read_bytes(diff)
    except MissingObjectError:
        raise Failed("the run's uncommitted diff is not in the cache: `tether pull`") from None
    try:  # a record made before capture left `.tether` out may hold the link: never apply it
        git(tree, "apply", "--binary", "--whitespace=nowarn", f"--exclude={DOT}", "-", stdin=patch)
    except GitError as exc:
        raise Failed(f"the recorded diff no longer applies: {exc}") from None


def _remove_worktree(ws: Workspace, tree: Path) -> None:
    if (tree / DOT).is_symlink():
        own = Workspace(tree).statcache_path  # the tree's own stat cache goes with it
        for part in (own, *(own.with_name(own.name + end) for end in ("-wal", "-shm"))):
            part.unlink(missing_ok=True)
        (tree / DOT).unlink()  # the link only: the cache it points at is the project's
    with contextlib.suppress(GitError):  # best effort: not one when `worktree add` failed
        git(ws.root, "worktree", "remove", "--force", str(tree))
    shutil.rmtree(tree, ignore_errors=True)
    git(ws.root, "worktree", "prune")


def _env_now(copy: Workspace, record: dict[str, Any], recorded: dict[str, Any]) -> dict[str, Any]:
    """The environment the re-run's command will run in (its interpreter's, as recorded),
    captured as a run's is: the project's allow-list, redacted, an ``env`` prefix applied."""
    allow = [str(v) for v in copy.config.get("runs.env_allow") or []]
    redact = redactor_for(copy).redact
    if (record.get("tags") or {}).keys() & {"stage", "kind"}:  # in Tether's process, as it ran
        return capture_environment(copy.root, copy.dot / "cache", allow_env=allow, redact=redact)
    try:
        folder = _folder(copy.root, record)
        command: list[str] | None = _command(record, recorded, folder)
    except Failed:
        folder, command = copy.root, None
    env = capture_environment(
        copy.root, copy.dot / "cache", allow_env=allow, redact=redact, environ=command_env(command)
    )
    if command is None:
        return env
    return with_interpreter(env, read_interpreter(command, folder, copy.dot / "cache"))


def _command(record: dict[str, Any], recorded: dict[str, Any], folder: Path) -> list[str]:
    """The command to run again. A script that logged its own run (``python train.py`` with
    ``tether.start_run()`` inside, no launcher) recorded its argv only: the Python that ran it
    runs it again. A command ``tether run`` launched runs as it is (a script's shebang is the
    kernel's to honour)."""
    argv = list(record.get("command") or [])
    if not argv or argv[0] in ("-c", "-m", ""):
        raise Failed("the run has no command to re-run (it was logged from an interactive session)")
    if any(MASK in a for a in argv):
        raise Failed("the recorded command has masked secrets: re-run it by hand with them")
    launched = bool(record.get("declared"))  # `tether run` records {"deps": .., "outs": ..}
    # a record without "declared" is older: launched or not, a shebang script ran itself
    own = "declared" in record or not _runs_itself(folder, argv[0])
    if argv[0].endswith(".py") and not launched and own:
        argv = [_recorded_python(recorded), *argv]
    return argv


def _runs_itself(folder: Path, program: str) -> bool:
    """An older record's ``./train.py``: executable, with a shebang line naming its own
    interpreter (it may have been launched by ``tether run`` before commands were kept)."""
    script = folder / program
    if "/" not in program or not os.access(script, os.X_OK):
        return False
    try:
        with open(script, "rb") as f:
            return f.read(2) == b"#!"
    except OSError:
        return False


def _recorded_python(recorded: dict[str, Any]) -> str:
    """The Python that ran a script logging its own run, when it is still here; else this one
    (the difference then shows as environment drift)."""
    path = str((recorded.get("python") or {}).get("executable") or "")
    return path if path and os.access(path, os.X_OK) else sys.executable
