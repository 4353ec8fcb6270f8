"""``tether gc`` and ``tether fsck``."""

from __future__ import annotations

import click

from tether.cli import exitcodes
from tether.cli.render import human_size


@click.command()
@click.option("--dry-run", is_flag=True, help="Say what would be removed; remove nothing.")
@click.option("--all-commits", is_flag=True, help="Keep what pointers in any commit need.")
@click.option("-r", "--remote", "remote_name", help="Collect this remote instead of the cache.")
def gc(dry_run: bool, all_commits: bool, remote_name: str | None) -> None:
    """Remove objects nothing needs.

    Roots: the pointer files in the working tree (with --all-commits, in every commit) and every
    ref under .tether/refs/ (runs, registry, ...). With --remote, objects on that remote that no
    root of this clone and no ref on the remote needs; fetch every branch first.
    """
    from tether.api import Project

    result = Project.open().gc(dry_run=dry_run, all_commits=all_commits, remote=remote_name)
    verb = "would remove" if result.dry_run else "removed"
    click.echo(
        f"{verb} {result.removed} object(s), {human_size(result.bytes)}; kept {result.kept}"
        + (f"; repacked {result.repacked} pack(s)" if result.repacked else "")
    )


@click.command()
@click.option("--repair", is_flag=True, help="Remove corrupt objects so pull/add can restore them.")
def fsck(repair: bool) -> None:
    """Check every object in the cache against its id, and that pointers and refs have theirs.

    Exits 1 when something is missing or corrupt, naming the pointers and refs it breaks, or when
    a pointer or folder manifest would be refused by a checkout (a path outside its folder).
    """
    from tether.api import Project
    from tether.cli.progress import Bar

    with Bar("checking") as bar:
        report = Project.open().fsck(repair=repair, callback=bar)
    for oid, who in sorted(report.corrupt.items()):
        click.secho(f"corrupt  {oid}  (needed by {', '.join(who) or 'nothing'})", fg="red")
    for oid, who in sorted(report.missing.items()):
        click.secho(f"missing  {oid}  (needed by {', '.join(who)})", fg="red")
    for msg in report.bad_pointers + report.bad_refs:
        click.secho(f"unreadable  {msg}", fg="red")
    for msg in report.refused:
        click.secho(f"refused  {msg}", fg="red")
    click.echo(f"{report.objects} object(s) checked")
    if report.repaired:
        click.echo(f"removed {report.repaired} corrupt object(s): `tether pull` restores them")
    if report.missing:
        click.echo("run `tether pull` to fetch missing objects")
    if not report.ok and not report.repaired:
        raise SystemExit(exitcodes.NEGATIVE)
