"""``tether remote``, ``push``, ``fetch`` and ``pull``."""

from __future__ import annotations

import click

from tether.cli.render import human_size


@click.group()
def remote() -> None:
    """Manage remotes: where objects are pushed (a folder, s3://bucket/prefix, any fsspec URL)."""


@remote.command("add")
@click.argument("name")
@click.argument("url")
@click.option("--no-default", is_flag=True, help="Do not make it the default remote.")
def remote_add(name: str, url: str, no_default: bool) -> None:
    """Add remote NAME at URL (kept in tether.toml; credentials go in --local config).

    For S3-compatible storage, set `remote.NAME.endpoint_url` and, with --local,
    `remote.NAME.access_key_id` and `remote.NAME.secret_access_key` (or use AWS_* variables).
    """
    from tether.api import Project

    Project.open().add_remote(name, url, default=not no_default)
    click.echo(f"remote {name} -> {url}")


@remote.command("list")
def remote_list() -> None:
    """List remotes."""
    from tether.api import Project

    project = Project.open()
    default = project.config_get("core.remote")
    for name, url in project.remotes().items():
        click.echo(f"{name}\t{url}" + ("\t(default)" if name == default else ""))


@click.command()
@click.option("-r", "--remote", "remote_name", help="Remote to push to (default: core.remote).")
@click.option("--all-commits", is_flag=True, help="Push what pointers in every commit need.")
def push(remote_name: str | None, all_commits: bool) -> None:
    """Send objects the remote lacks: what the pointers and refs need.

    One listing finds what the remote has; small objects travel in packs, large ones alone, in
    parallel. Interrupted pushes resume: run it again.
    """
    from tether.api import Project
    from tether.cli.progress import Bar

    with Bar("pushing") as bar:
        result = Project.open().push(remote_name, all_commits=all_commits, callback=bar)
    o = result.objects
    click.echo(
        f"pushed {o.objects} object(s), {human_size(o.bytes)} in {o.packs} pack(s) to "
        f"{result.remote}; {o.already} already there; {result.refs.refs} ref(s); "
        f"{o.requests} request(s)" + _restored(o.restored)
    )
    for name in result.refs.ref_conflicts:
        click.secho(f"ref {name} differs on the remote: not overwritten", fg="yellow", err=True)


@click.command()
@click.argument("paths", nargs=-1, type=click.Path())
@click.option("-r", "--remote", "remote_name", help="Remote to fetch from (default: core.remote).")
def fetch(paths: tuple[str, ...], remote_name: str | None) -> None:
    """Download into the cache the objects the pointers (or PATHS) need; change no data files."""
    from tether.api import Project
    from tether.cli.progress import Bar

    with Bar("fetching") as bar:
        result = Project.open().fetch(list(paths), remote=remote_name, callback=bar)
    click.echo(
        f"fetched {result.objects} object(s), {human_size(result.bytes)} in "
        f"{result.requests} request(s)" + _restored(result.restored)
    )


def _restored(n: int) -> str:
    return f"; brought back {n} from the remote's quarantine" if n else ""


@click.command()
@click.argument("paths", nargs=-1, type=click.Path())
@click.option("-r", "--remote", "remote_name", help="Remote to pull from (default: core.remote).")
@click.option("-f", "--force", is_flag=True, help="Discard local changes that exist only on disk.")
def pull(paths: tuple[str, ...], remote_name: str | None, force: bool) -> None:
    """Fetch, then check out: the tracked data (or only PATHS, even inside a folder) appears."""
    from tether.api import Project
    from tether.cli.progress import Bar

    with Bar("pulling") as bar, Bar("checking out") as bar2:
        fetched, done = Project.open().pull(
            list(paths), remote=remote_name, force=force, callback=bar, checkout_callback=bar2
        )
    click.echo(
        f"fetched {fetched.objects} object(s), {human_size(fetched.bytes)}; "
        f"{done.written} file(s) written, {done.deleted} removed" + _restored(fetched.restored)
    )
