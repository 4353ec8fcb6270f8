"""``tether add``, ``status``, ``checkout`` and ``data diff``."""

from __future__ import annotations

import click

from tether.cli import exitcodes
from tether.cli.render import echo_json, human_size


@click.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@click.option(
    "-j", "--jobs", type=int, default=0, help="Files hashed at once (default: 4 per core)."
)
def add(paths: tuple[str, ...], jobs: int) -> None:
    """Track files or folders: hash, store in the cache, write PATH.tether, git-ignore PATH.

    Commit the .tether pointer file; the data itself travels with `tether push`. Files whose
    inode, size, mtime and ctime are unchanged since the last look are not read again.
    """
    from tether.api import Project
    from tether.cli.progress import Bar

    project = Project.open()
    for path in paths:
        with Bar(f"adding {path}") as bar:
            (result,) = project.add([path], callback=bar, jobs=jobs)
        what = f"{result.files} files, " if result.files != 1 else ""
        state = "unchanged" if result.unchanged else f"wrote {result.pointer}"
        click.echo(f"{result.target}: {what}{human_size(result.size)} ({state})")
        if result.notice and path == paths[-1]:
            click.secho(f"warning: {result.notice}", fg="yellow", err=True)


@click.command()
@click.argument("paths", nargs=-1, type=click.Path())
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
def status(paths: tuple[str, ...], as_json: bool) -> None:
    """Show which tracked data is clean, modified or missing, file by file inside folders."""
    from tether.api import Project

    project = Project.open()
    results = project.status(list(paths) or None)
    if as_json:
        echo_json([r.__dict__ for r in results])
        return
    if pending := project.runs_not_uploaded():  # from local files: never asks the server
        click.echo(f"{pending} run(s) not on the team server yet: `tether sync` uploads them")
    if not results:
        click.echo("Nothing is tracked yet: `tether add PATH` starts.")
    colours = {"clean": "green", "modified": "yellow", "missing": "red"}
    for r in results:
        note = "" if r.in_cache else "  (not in the cache: `tether pull`)"
        click.echo(f"{r.target}: " + click.style(r.state, fg=colours[r.state]) + note)
        for label, paths_ in (("added", r.added), ("modified", r.modified), ("removed", r.removed)):
            for p in paths_:
                click.echo(f"    {label + ':':<10} {p}")
        for p in r.cache_edited:
            click.secho(
                f"warning: {p} is linked to the cache and was edited in place, so the cache's "
                "copy changed with it: `tether add` keeps the edit; `tether fsck --repair` then "
                "`tether pull` bring the recorded version back from a remote",
                fg="yellow",
                err=True,
            )


@click.command()
@click.argument("paths", nargs=-1, type=click.Path())
@click.option("--dry-run", is_flag=True, help="Show what would change; change nothing.")
@click.option("-f", "--force", is_flag=True, help="Discard changes that exist only on disk.")
def checkout(paths: tuple[str, ...], dry_run: bool, force: bool) -> None:
    """Make tracked data match the pointer files exactly.

    Writes missing and changed files (with their modes and in-folder symlinks) and removes files
    that are not in the pointer. PATH may be a pointer, a tracked folder, or a path inside one.
    Refuses to discard changes that exist nowhere else unless --force.
    """
    from tether.api import Project
    from tether.cli.progress import Bar

    project = Project.open()
    if dry_run:  # only then: a checkout plans for itself (a plan of 100k files is not free)
        plan = project.plan_checkout(list(paths) or None)
        for a in plan.actions:
            click.echo(f"{a.op:<7} {a.path}")
        for refused in plan.refused:
            click.secho(f"refused {refused}", fg="red", err=True)
        click.echo(f"{len(plan.actions)} change(s) planned; nothing done (dry run)")
        if plan.refused:
            raise SystemExit(exitcodes.ERROR)
        return
    with Bar("checking out") as bar:
        result = project.checkout(list(paths) or None, force=force, callback=bar)
    click.echo(
        f"{result.written} written, {result.deleted} removed, {result.chmodded} mode(s) fixed"
    )
    if result.notice:
        click.secho(f"warning: {result.notice}", fg="yellow", err=True)


@click.group()
def data() -> None:
    """Commands about tracked data across git revisions."""


@data.command("diff")
@click.argument("rev_a", default="HEAD")
@click.argument("rev_b", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
def data_diff(rev_a: str, rev_b: str | None, as_json: bool) -> None:
    """List tracked files added, removed or modified between REV_A (default HEAD) and REV_B
    (default: the working tree)."""
    from tether.api import Project

    changes = Project.open().data_diff(rev_a, rev_b)
    if as_json:
        echo_json([c.__dict__ for c in changes])
        return
    marks = {"added": ("A", "green"), "removed": ("D", "red"), "modified": ("M", "yellow")}
    for c in changes:
        mark, colour = marks[c.change]
        click.echo(click.style(mark, fg=colour) + f"  {c.path}")
    if not changes:
        click.echo(f"no data changes between {rev_a} and {rev_b or 'the working tree'}")
