"""``tether reproduce RUN``: rebuild a past run, re-run it, and give a verdict."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import click

from tether.cli.render import echo_json, parse_pairs

if TYPE_CHECKING:
    from tether.api import Review

SHOWN = 15  # files and packages listed before "and N more"


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
@click.option(
    "--allow-direct-sources",
    is_flag=True,
    help="With --env fresh: also install the packages the record says came from a URL, a VCS "
    "or a local folder (by default only your configured package index is used: "
    "reproduce.index_url, PIP_INDEX_URL or pip.conf).",
)
@click.option(
    "--pass-env",
    "pass_env",
    multiple=True,
    metavar="NAME",
    help="Give the re-run variable NAME although it is withheld (TETHER_*, signing-key paths, "
    "cloud credentials, secret-looking names and values are). Naming any also lets a patch "
    "that redaction altered run, its value to come from the environment. Repeatable.",
)
@click.option(
    "-y",
    "--yes",
    is_flag=True,
    help="Reproduce a run someone else recorded without asking (CI: in a job that holds no "
    "signing key).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the verdict as JSON.")
def reproduce(
    run: str,
    tolerances: tuple[str, ...],
    modes: tuple[str, ...],
    keep: bool,
    env: str,
    allow_direct_sources: bool,
    pass_env: tuple[str, ...],
    yes: bool,
    as_json: bool,
) -> None:
    """Rebuild RUN in a clean git worktree at its commit with its diff applied and its inputs
    restored by id, report environment drift, re-run its command as a new run (in the folder it
    started in, with its --dep/--out), and compare outputs and metrics, those of the runs it
    started inside too (matched by name). A pipeline run re-runs every stage without the run
    cache. Exits 0 REPRODUCED, 1 DIFFERENT, 3 FAILED, 130 on Ctrl-C (the worktree is removed).
    With --json, stdout holds the verdict alone; the re-run's output goes to stderr.

    A run is code: a run someone else recorded shows its command, patch and the packages
    --env fresh installs, and asks first (with no terminal it exits 3 unless --yes). Every
    re-run gets your environment less TETHER_* variables, signing-key paths, cloud credentials
    and whatever looks secret (--pass-env NAME gives one back), yet it can still read your
    files: reproduce untrusted runs in a job that holds no signing key. A patch that redaction
    altered is not the code that ran: it is refused unless --pass-env says where the value
    comes from."""
    import contextlib
    import sys

    from tether.api import Project
    from tether.cli.diffview import show_verdict

    project = Project.open()
    picked = project.pick_run(run)
    if picked.notice:
        click.secho(picked.notice, fg="yellow", err=True)
    seen = project.review_reproduction(
        str(picked.id), env=env, allow_sources=allow_direct_sources, pass_env=pass_env
    )
    doomed = seen.refused or (seen.redactions and not seen.passes)  # refused before anything runs
    if seen.someone_else and not yes and not doomed:
        _confirm(seen, sys.stdin is not None and sys.stdin.isatty())
    # --json: stdout is the verdict's alone; the re-run's own output goes to stderr
    quiet = contextlib.redirect_stdout(sys.stderr) if as_json else contextlib.nullcontext()
    with quiet:
        verdict = project.reproduce(
            str(picked.id),
            tolerances=parse_pairs(tolerances, "METRIC=REL"),
            modes=parse_pairs(modes, "PATH=MODE"),
            keep=keep,
            env=env,
            pass_env=pass_env,
            allow_sources=allow_direct_sources,
        )
    if as_json:
        from dataclasses import asdict

        echo_json(asdict(verdict))
    else:
        show_verdict(verdict)
    raise SystemExit(verdict.exit_code)


def _confirm(seen: Review, terminal: bool) -> None:
    """Show what reproducing someone else's run will do, and ask (no terminal: refuse)."""
    from tether.errors import NotConfirmedError

    who = _plain(seen.recorded_by) or "no one it names"
    for line in review_lines(seen):
        click.echo(line, err=True)
    if not terminal:
        raise NotConfirmedError(
            f"run {seen.run} was recorded by {who}, not by you ({seen.you}), and there is no "
            "terminal to ask on: nothing ran. Read what it runs above, then pass --yes to "
            "reproduce it (in a job that holds no signing key)"
        )
    if not click.confirm("Reproduce it?", default=False, err=True):
        raise NotConfirmedError(f"run {seen.run} not reproduced: nothing ran")


def review_lines(seen: Review) -> list[str]:
    """The review as lines; whatever came from the record is shown with control characters
    escaped, so it cannot redraw the terminal to hide what it runs."""
    import shlex

    who = _plain(seen.recorded_by) or "no one it names"
    out = [
        f"Run {seen.run} ({_plain(seen.name)}) was recorded by {who}, not by you ({seen.you}).",
        "Reproducing it runs their code, with your files in reach:",
        "  command   " + _plain(shlex.join(seen.command)),
    ]
    if seen.pipeline:
        out.append("            (and the stages of pipeline.yaml at the commit)")
    out.append(f"  commit    {_plain(seen.commit or 'none')}")
    if seen.changes is None:
        out.append("  patch     not in the cache (`tether pull` brings it): cannot be shown")
    elif seen.changes:
        plus = sum(c.added or 0 for c in seen.changes)
        minus = sum(c.removed or 0 for c in seen.changes)
        files = f"{len(seen.changes)} file{'s' * (len(seen.changes) != 1)}"
        out.append(f"  patch     {files} changed, +{plus} -{minus}")
        out += [
            f"    {_plain(c.path)}  "
            + ("binary" if c.added is None else f"+{c.added} -{c.removed}")
            for c in seen.changes[:SHOWN]
        ]
        out += _more(seen.changes)
    else:
        out.append("  patch     none")
    out += [f"  altered   {_plain(str(r))} (by redaction)" for r in seen.redactions]
    out += [
        f"  reads     {_plain(p)}"
        + (" (outside the repository: not read, not compared)" if p in seen.outside else "")
        for p in seen.reads[:SHOWN]
    ] + _more(seen.reads)
    if seen.env == "fresh":
        out.append(f"  installs  {len(seen.packages)} packages from {seen.index}:")
        out += [f"    {_plain(p)}" for p in seen.packages[:SHOWN]] + _more(seen.packages)
    if seen.withheld:
        out.append("  withheld  " + ", ".join(seen.withheld) + " (--pass-env NAME gives one)")
    return out


def _plain(text: str) -> str:
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _more(items: Sequence[object]) -> list[str]:
    return [f"    and {len(items) - SHOWN} more"] if len(items) > SHOWN else []
