"""``tether run``, ``tether runs list|show|compare|tag|note|delete|purge|export``, ``tether diff``,
``tether reindex`` and ``tether env export``."""

from __future__ import annotations

from typing import Any

import click

from tether.cli import exitcodes
from tether.cli.render import echo_json, parse_pairs


# Options end where COMMAND begins (its own --flags are its own); an unknown option before it is
# Tether's usage error (125), never taken for the command to run.
@click.command(context_settings={"allow_interspersed_args": False})
@click.option("-n", "--name", help="The run's name (default: script name and id).")
@click.option("-e", "--experiment", help="The experiment it belongs to (default: runs.experiment).")
@click.option("-t", "--tag", "tags", multiple=True, metavar="KEY=VALUE", help="A tag; repeatable.")
@click.option(
    "--commit-log", is_flag=True, help="Append the run to experiment_log.yaml and commit it."
)
@click.option(
    "--dep",
    "deps",
    multiple=True,
    metavar="PATH",
    help="An input, recorded by content id before the run.",
)
@click.option(
    "--out",
    "outs",
    multiple=True,
    metavar="PATH",
    help="An output, recorded by content id after the run.",
)
@click.option(
    "--check-determinism",
    is_flag=True,
    help="Run the command twice (same --dep, --out) and say which outputs and metrics differ.",
)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print only a JSON summary on stdout (run_id, name, status, exit_code, record, "
    "missing_outs, unchanged_outs); the command's own stdout goes to stderr, still shown and kept.",
)
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
def run(
    name: str | None,
    experiment: str | None,
    tags: tuple[str, ...],
    commit_log: bool,
    deps: tuple[str, ...],
    outs: tuple[str, ...],
    check_determinism: bool,
    as_json: bool,
    command: tuple[str, ...],
) -> None:
    """Run COMMAND and record it: code, data, environment and parameters.

    `--key value` and `--key=value` arguments become params. The command's output is shown and
    kept; `tether.log_metric(...)` inside it logs into this run. Exits with the command's status
    (128+N when it dies of signal N, as a shell says), 127 when it is not found, 126 when it is
    not executable, 125 when Tether itself fails around the launch.

        tether run -- python train.py --lr 0.1 --epochs 3

    With --json, stdout holds one JSON object and nothing else, so a script can read the run's
    id: `tether run --json -- python train.py | jq -r .run_id`.
    """
    import sys

    from tether.api import Project

    project = Project.open()
    stdout = sys.stderr.buffer if as_json else None  # --json: stdout is the summary's alone
    if check_determinism:
        _determinism(
            project,
            list(command),
            as_json,
            name=name,
            experiment=experiment,
            tags=parse_pairs(tags),
            stdout=stdout,
            deps=list(deps),
            outs=list(outs),
        )
    done = project.run(
        list(command),
        name=name,
        experiment=experiment,
        tags=parse_pairs(tags),
        deps=list(deps),
        outs=list(outs),
        stdout=stdout,
    )
    for warning in done.warnings:
        click.secho(f"warning: {warning}", fg="yellow", err=True)
    for path in done.missing_outs:
        click.secho(f"warning: --out {path} was not written", fg="yellow", err=True)
    for path in done.unchanged_outs:
        click.secho(
            f"warning: --out {path} was not written by this run (unchanged since it started): "
            "not recorded as its output",
            fg="yellow",
            err=True,
        )
    colour = {"finished": "green", "failed": "red", "killed": "yellow"}[done.status]
    click.secho(f"run {done.run_id} ({done.name}): {done.status}", fg=colour, err=True)
    if commit_log:
        commit = project.commit_log(done.run_id)
        click.echo(f"logged in experiment_log.yaml, commit {commit[:10]}", err=True)
    if as_json:
        echo_json(_launched(done))
    raise SystemExit(done.exit_code)


def _launched(done: Any) -> dict[str, Any]:
    keys = ("run_id", "name", "status", "exit_code", "record", "missing_outs", "unchanged_outs")
    return {key: getattr(done, key) for key in keys}


_DETERMINISM_EXIT = {
    "deterministic": exitcodes.OK,
    "not deterministic": exitcodes.NEGATIVE,
    "nothing to compare": exitcodes.NOT_CARRIED_OUT,
    "failed": exitcodes.NOT_CARRIED_OUT,
}


def _determinism(project: Any, command: list[str], as_json: bool, **kwargs: Any) -> None:
    report = project.check_determinism(command, **kwargs)
    if as_json:
        outputs = {p: list(pair) for p, pair in report.outputs.items()}
        metrics = {k: list(pair) for k, pair in report.metrics.items()}
        runs = [_launched(r) for r in report.runs]
        echo_json(
            {
                "deterministic": report.deterministic,
                "verdict": report.verdict,
                "runs": runs,
                "outputs": outputs,
                "metrics": metrics,
                "compared": report.compared,
                "unwritten": report.unwritten,
            }
        )
        raise SystemExit(_DETERMINISM_EXIT[report.verdict])
    ids = " and ".join(r.run_id[:13] for r in report.runs)
    for path in report.unwritten:
        click.secho(f"warning: --out {path} was written by neither run", fg="yellow", err=True)
    if report.verdict == "nothing to compare":
        click.secho(
            f"nothing to compare: runs {ids} recorded no outputs and no metrics. Declare what "
            "the command writes with --out, or log it (tether.log_output, tether.log_metric).",
            fg="red",
        )
        raise SystemExit(exitcodes.NOT_CARRIED_OUT)
    if report.verdict == "failed":
        codes = " and ".join(str(r.exit_code) for r in report.runs)
        click.secho(f"could not check: the command failed both times (exit {codes})", fg="red")
        raise SystemExit(exitcodes.NOT_CARRIED_OUT)
    if report.deterministic:
        same = ", ".join(report.compared)
        click.secho(f"deterministic: runs {ids} gave the same {same}", fg="green")
        raise SystemExit(exitcodes.OK)
    click.secho(f"NOT deterministic: runs {ids} differ", fg="yellow")
    for path, (a, b) in report.outputs.items():
        click.echo(f"  output {path}: {str(a)[:19]} vs {str(b)[:19]}")
    for key, (x, y) in report.metrics.items():
        click.echo(f"  metric {key}: {x} vs {y}")
    failed = [r for r in report.runs if r.status != "finished"]
    for r in failed:
        click.echo(f"  run {r.run_id[:13]} {r.status} (exit {r.exit_code})")
    click.echo(
        "Look for an unseeded random generator: `tether.seed(n)` seeds random, numpy, torch."
    )
    raise SystemExit(exitcodes.NEGATIVE)


@click.group()
def runs() -> None:
    """List, show, compare, tag, delete and export runs."""


@runs.command("list")
@click.option(
    "-w", "--where", help="A filter: metrics.acc > 0.9 and params.lr = 0.01 and tags.team = 'nlp'."
)
@click.option(
    "-s",
    "--sort",
    help="Sort keys, comma-separated: metrics.acc desc, -started (default: newest first).",
)
@click.option(
    "-l",
    "--limit",
    type=int,
    default=50,
    show_default=True,
    help="At most this many runs (0: all).",
)
@click.option("--deleted", is_flag=True, help="Include runs hidden by `runs delete`.")
@click.option(
    "-p",
    "--parent",
    metavar="RUN",
    help="Only the child runs of RUN (an id, a prefix or a name): a sweep's trials, a "
    "pipeline's stages.",
)
@click.option(
    "--local",
    "source",
    flag_value="local",
    help="Only this clone's runs, even when a team server is set.",
)
@click.option(
    "--server",
    "source",
    flag_value="server",
    help="The team server's runs (the default when one is set).",
)
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
def list_runs(
    where: str | None,
    sort: str | None,
    limit: int,
    deleted: bool,
    parent: str | None,
    source: str | None,
    as_json: bool,
) -> None:
    """List runs, newest first, with their params and metrics (with a team server set, the
    whole team's: `tether server login`)."""
    from tether.api import Project
    from tether.cli.tables import runs_table

    project = Project.open()
    if parent is not None:
        children = f"parent = '{_pick(project, parent)}'"
        where = children if where is None else f"({where}) and {children}"
    found = project.search_runs(
        where, sort=sort, limit=limit or None, include_deleted=deleted, source=source or "auto"
    )
    if as_json:
        from dataclasses import asdict

        echo_json([asdict(r) for r in found])
        return
    if not found:
        click.echo("No runs match." if where else "No runs yet: `tether run -- python train.py`.")
        return
    runs_table(found)


@runs.command("show")
@click.argument("run")
@click.option("--json", "as_json", is_flag=True, help="Print the whole record as JSON.")
def show(run: str, as_json: bool) -> None:
    """Show one run's record: the four pillars, params, metrics, artifacts. RUN is an id, a
    unique id prefix or a name."""
    from tether.api import Project
    from tether.cli.tables import record_view

    project = Project.open()
    record = project.get_run(_pick(project, run))
    children = project.search_runs(f"parent = '{record['id']}'", sort="started", limit=None)
    if as_json:
        echo_json({**record, "children": [c.id for c in children]})
        return
    record_view(record)
    _family(project, record, children)


def _pick(project: Any, ref: str) -> str:
    """The id ``ref`` names, saying which run it took when a name is borne by several."""
    picked = project.pick_run(ref)
    if picked.notice:
        click.secho(picked.notice, fg="yellow", err=True)
    return str(picked.id)


def _family(project: Any, record: dict[str, Any], children: list[Any]) -> None:
    if record.get("parent"):
        found = project.search_runs(f"id = '{record['parent']}'", include_deleted=True)
        click.echo(f"parent     {found[0].name if found else '?'}  {record['parent']}")
    if children:
        names = ", ".join(c.name for c in children[:10]) + (" …" if len(children) > 10 else "")
        click.echo(f"children   {len(children)}: {names}")
        click.echo(f"           tether runs list --parent {record['id']}")


@runs.command("compare")
@click.argument("run_refs", metavar="RUN RUN...", nargs=-1, required=True)
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
def compare(run_refs: tuple[str, ...], as_json: bool) -> None:
    """Params and metrics of runs side by side; the rows that differ are highlighted."""
    from tether.api import Project
    from tether.cli.tables import comparison_table

    project = Project.open()
    result = project.compare_runs([_pick(project, r) for r in run_refs])
    if as_json:
        echo_json({**result.__dict__, "differ": sorted(result.differ)})
        return
    comparison_table(result)


@runs.command("tag")
@click.argument("run")
@click.argument("pairs", metavar="KEY=VALUE...", nargs=-1, required=True)
def tag(run: str, pairs: tuple[str, ...]) -> None:
    """Tag a sealed run (an amendment record: the run itself never changes)."""
    from tether.api import Project

    project = Project.open()
    project.amend_run(_pick(project, run), tags=parse_pairs(pairs))
    click.echo(f"tagged {run}")


@runs.command("note")
@click.argument("run")
@click.argument("text")
def note(run: str, text: str) -> None:
    """Attach a note to a sealed run (an amendment record)."""
    from tether.api import Project

    project = Project.open()
    project.amend_run(_pick(project, run), note=text)
    click.echo(f"noted {run}")


@runs.command("delete")
@click.argument("run")
@click.option("--reason", default="", help="Why (kept in the tombstone).")
def delete(run: str, reason: str) -> None:
    """Hide a run: a tombstone record that travels with push. `runs purge` frees its data."""
    from tether.api import Project

    project = Project.open()
    run_id = project.delete_run(_pick(project, run), reason)
    click.echo(f"deleted {run_id} (hidden; `tether runs purge` removes what only it kept)")


@runs.command("purge")
@click.option("--dry-run", is_flag=True, help="Show what would go; remove nothing.")
@click.option(
    "--remote",
    is_flag=False,
    flag_value="",
    default=None,
    metavar="[NAME]",
    help="Also purge them from a remote (the default one when no NAME).",
)
def purge(dry_run: bool, remote: str | None) -> None:
    """Remove deleted runs' records and every object only they kept alive (leaked data), here
    and with --remote on a remote too. Tombstones stay, so a pull cannot bring them back."""
    from tether.api import Project
    from tether.cli.render import human_size

    result = Project.open().purge_runs(dry_run=dry_run, remote=remote)
    verb = "would remove" if dry_run else "removed"
    click.echo(
        f"{verb} {len(result.runs)} runs, {result.objects} objects ({human_size(result.bytes)})"
    )
    if remote is not None:
        click.echo(
            f"{verb} {result.remote_objects} objects ({human_size(result.remote_bytes)}) "
            "from the remote"
        )


@runs.command("export")
@click.argument("run_refs", metavar="RUN...", nargs=-1, required=True)
@click.option("--yaml", "as_yaml", is_flag=True, required=True, help="Ledger entries as YAML.")
def export(run_refs: tuple[str, ...], as_yaml: bool) -> None:
    """Write runs as experiment-ledger entries (the format of experiment_log.yaml)."""
    from tether.api import Project

    project = Project.open()
    click.echo(project.export_runs_yaml([_pick(project, r) for r in run_refs]), nl=False)


@click.command("diff")
@click.argument("run_a")
@click.argument("run_b")
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
@click.option("--markdown", is_flag=True, help="Print Markdown (for a CI comment).")
def diff(run_a: str, run_b: str, as_json: bool, markdown: bool) -> None:
    """Explain why two runs differ: code, data, environment, parameters, then metric deltas
    and the likely causes, most direct first."""
    from tether.api import Project
    from tether.cli import diffview

    project = Project.open()
    result = project.diff_runs(_pick(project, run_a), _pick(project, run_b))
    if as_json:
        from dataclasses import asdict

        echo_json(asdict(result))
    elif markdown:
        click.echo(diffview.markdown(result))
    else:
        diffview.show(result)


@click.command()
def reindex() -> None:
    """Rebuild the run index from the sealed run records (after it was lost or damaged)."""
    from tether.api import Project

    result = Project.open().reindex()
    click.echo(f"indexed {result.runs} runs")
    if result.unreadable:
        click.secho(
            f"{len(result.unreadable)} runs have a missing or damaged record and were left out "
            f"({', '.join(result.unreadable[:3])}): `tether pull` fetches them, `tether fsck` "
            "checks the cache",
            fg="yellow",
            err=True,
        )


@click.group()
def env() -> None:
    """A run's environment."""


@env.command("export")
@click.argument("run")
@click.option(
    "-f",
    "--format",
    "fmt",
    type=click.Choice(["requirements", "conda", "dockerfile"]),
    default="requirements",
    show_default=True,
)
def env_export(run: str, fmt: str) -> None:
    """Print the run's environment pinned: requirements.txt, a conda environment.yml or a
    Dockerfile (pinned Python and package versions)."""
    from tether.api import Project

    project = Project.open()
    click.echo(project.export_env(_pick(project, run), fmt), nl=False)
