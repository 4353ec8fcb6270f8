"""``tether gc`` and ``tether fsck``."""

from __future__ import annotations

import click

from tether.cli import exitcodes
from tether.cli.render import human_duration, human_size


@click.command()
@click.option("--dry-run", is_flag=True, help="Say what would be removed; remove nothing.")
@click.option("--all-commits", is_flag=True, help="Keep what pointers in any commit need.")
@click.option("-r", "--remote", "remote_name", help="Collect this remote instead of the cache.")
def gc(dry_run: bool, all_commits: bool, remote_name: str | None) -> None:
    """Remove objects nothing needs.

    Roots: the pointer files in the working tree (with --all-commits, in every commit) and every
    ref under .tether/refs/ (runs, registry, ...). With --remote, objects on that remote that no
    root of this clone, no ref on the remote and no push of the last gc.grace (default 14d)
    needs; fetch every branch first.

    A remote gc never races a push: it takes the remote's exclusive lock, waits (gc.lock_wait,
    default 1m) for pushes under way, and each push holds a lock of its own. It deletes nothing
    at once: what nothing needs moves into the remote's quarantine, dated by the store's own
    clock, and a later gc deletes it once gc.grace has passed and nothing needs it again. A push
    or pull that needs a quarantined object brings it back. See docs/remote-gc.md.
    """
    from tether.api import Project

    r = Project.open().gc(dry_run=dry_run, all_commits=all_commits, remote=remote_name)
    if remote_name is None:
        verb = "would remove" if r.dry_run else "removed"
        click.echo(f"{verb} {r.removed} object(s), {human_size(r.bytes)}; kept {r.kept}")
        return
    moved, gone = ("would quarantine", "would delete") if r.dry_run else ("quarantined", "deleted")
    back = "would bring back" if r.dry_run else "brought back"
    click.echo(
        f"{moved} {r.quarantined} object(s), {human_size(r.quarantined_bytes)}; {gone} "
        f"{r.removed} object(s), {human_size(r.bytes)}, whose {human_duration(r.grace)} in "
        f"quarantine had ended; {r.waiting} wait in quarantine; kept {r.kept}"
        + (f"; {back} {r.restored} from quarantine" if r.restored else "")
        + (f"; repacked {r.repacked} pack(s)" if r.repacked else "")
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
