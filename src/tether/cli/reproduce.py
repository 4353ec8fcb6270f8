"""``tether reproduce RUN``: rebuild a past run, re-run it, and give a verdict."""

from __future__ import annotations

import click

from tether.cli.render import echo_json, parse_pairs


@click.command()
@click.argument("run")
@click.option(
    "-t",
    "--tolerance",
    "tolerances",
    multiple=True,
    metavar="METRIC=REL",
    help="Relative tolerance for a metric: 0.01 or 1% (a bare number above 1 is refused); "
    "exact by default. Repeatable.",
)
@click.option(
    "-c",
    "--compare",
    "modes",
    multiple=True,
    metavar="PATH=MODE",
    help="How to judge an output: exact (default), metrics or none; PATH from the folder you "
    "are in, as --out took it. Repeatable.",
)
@click.option("--keep", is_flag=True, help="Keep the worktree the run was rebuilt in.")
@click.option(
    "--env",
    "env",
    type=click.Choice(["current", "fresh"]),
    default="current",
    show_default=True,
    help="fresh: re-run in a new virtual environment built from the recorded packages.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the verdict as JSON.")
def reproduce(
    run: str,
    tolerances: tuple[str, ...],
    modes: tuple[str, ...],
    keep: bool,
    env: str,
    as_json: bool,
) -> None:
    """Rebuild RUN in a clean git worktree at its commit with its diff applied and its inputs
    restored by id, report environment drift, re-run its command as a new run (in the folder it
    started in, with its --dep/--out), and compare outputs and metrics, those of the runs it
    started inside too (matched by name). A pipeline run re-runs every stage without the run
    cache. Exits 0 REPRODUCED, 1 DIFFERENT, 3 FAILED, 130 on Ctrl-C (the worktree is removed).
    With --json, stdout holds the verdict alone; the re-run's output goes to stderr."""
    import contextlib
    import sys

    from tether.api import Project
    from tether.cli.diffview import show_verdict

    project = Project.open()
    picked = project.pick_run(run)
    if picked.notice:
        click.secho(picked.notice, fg="yellow", err=True)
    # --json: stdout is the verdict's alone; the re-run's own output goes to stderr
    quiet = contextlib.redirect_stdout(sys.stderr) if as_json else contextlib.nullcontext()
    with quiet:
        verdict = project.reproduce(
            str(picked.id),
            tolerances=parse_pairs(tolerances, "METRIC=REL"),
            modes=parse_pairs(modes, "PATH=MODE"),
            keep=keep,
            env=env,
        )
    if as_json:
        from dataclasses import asdict

        echo_json(asdict(verdict))
    else:
        show_verdict(verdict)
    raise SystemExit(verdict.exit_code)
