"""``tether repro``: run a pipeline's stale stages."""

from __future__ import annotations

from typing import Any

import click

from tether.cli import exitcodes


@click.command()
@click.argument("stages", nargs=-1)
@click.option(
    "-j",
    "--jobs",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Stages run at once.",
)
@click.option("--dry-run", is_flag=True, help="Say what would run and why; run nothing.")
@click.option(
    "-f",
    "--force",
    is_flag=True,
    help="Run the stages even when up to date (never restored from the run cache).",
)
@click.option(
    "--no-run-cache",
    is_flag=True,
    help="Run stale stages even when the run cache could restore their outs.",
)
@click.option(
    "--executor",
    type=click.Choice(["local", "ray"]),
    help="Where stages run (default: `executor:` in pipeline.yaml, else local). Ray workers "
    "fetch deps from the remote and push outs back; RAY_ADDRESS picks the cluster.",
)
def repro(
    stages: tuple[str, ...],
    jobs: int,
    dry_run: bool,
    force: bool,
    no_run_cache: bool,
    executor: str | None,
) -> None:
    """Run the stages of pipeline.yaml that are stale (and what they need), in order,
    independent ones in parallel; each stage is recorded as a run. Up-to-date stages are
    skipped, stages seen before with the same command, deps and params are restored from the
    run cache. pipeline.lock records what each stage ran with and made: commit it.
    """
    if not (stages or dry_run or force):
        from tether.api import pipeline_is_fresh

        if pipeline_is_fresh():  # nothing the last up-to-date plan read has changed
            click.echo("Everything is up to date.")
            return
    from tether.api import Project

    def report(stage: str, message: str) -> None:
        click.echo(f"{stage}: {message}")

    result = Project.open().repro(
        list(stages),
        jobs=jobs,
        force=force,
        dry_run=dry_run,
        report=report,
        executor=executor,
        run_cache=not no_run_cache,
    )
    if _explain(result, dry_run):
        return
    if not result.plan.todo:
        click.echo("Everything is up to date.")
        return
    if not result.ok:
        failed = [r.name for r in result.results if r.outcome == "failed"]
        click.secho(
            f"failed: {', '.join(failed)} (pipeline.lock keeps what finished)", fg="red", err=True
        )
        raise SystemExit(exitcodes.NOT_CARRIED_OUT)


def _explain(result: Any, dry_run: bool) -> bool:
    """Say which stale lock entries went (or would go) and, for a dry run, what each stage would
    do and why; True when that is all there is to say."""
    stale = result.dropped or (result.plan.stale if dry_run and result.plan.full else [])
    if stale:
        verb = "would drop" if dry_run else "dropped"
        click.echo(
            f"pipeline.lock: {verb} the entries of stages it no longer has: {', '.join(stale)}"
        )
    if not dry_run:
        return False
    for sp in result.plan.stages:
        verb = {"cached": "restore from the run cache"}.get(sp.action, sp.action)
        why = "up to date" if sp.action == "none" else f"would {verb}: " + "; ".join(sp.reasons)
        click.echo(f"{sp.stage.name}: {why}")
    return True
