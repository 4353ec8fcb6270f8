"""``tether server``: run the team server, manage its accounts, and point a project at it;
``tether sync`` uploads what the server has not acknowledged."""

from __future__ import annotations

import functools
import json
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from tether.cli import exitcodes
from tether.cli.render import human_size
from tether.errors import NotARepositoryError, TetherError, UsageError


def _settings(index: str | None, store: str | None, max_body: int, mirrors: str = "") -> Any:
    from tether import api

    if index and store:
        return api.ServerSettings(
            index, store, max_body, open_without_accounts=True, mirrors=mirrors
        )
    if index or store:
        raise click.UsageError("give both --index and --store, or neither (inside a repository)")
    try:
        embedded = api.Project.open().embedded_server()
    except NotARepositoryError:
        raise click.UsageError(
            "outside a repository, say where the server keeps things: --index URL --store URL"
        ) from None
    return api.ServerSettings(
        embedded.index,
        embedded.store,
        max_body,
        True,
        follow_logs=embedded.follow_logs,
        work_tree=embedded.work_tree,
    )


def storage_options(command: Callable[..., Any]) -> Callable[..., Any]:
    @click.option(
        "--index",
        envvar="TETHER_SERVER_INDEX",
        help="The server's database: sqlite:///PATH or postgresql+psycopg://USER@HOST/DB.",
    )
    @click.option(
        "--store", envvar="TETHER_SERVER_STORE", help="Where objects go: a folder or s3://B/P."
    )
    @click.option(
        "--max-body", default=1 << 30, show_default=True, help="Largest request body, in bytes."
    )
    @click.option(
        "--mirrors",
        envvar="TETHER_SERVER_MIRRORS",
        default="",
        help="Folder of the projects' git mirrors (default: beside a SQLite database).",
    )
    @functools.wraps(command)
    def wrapped(
        index: str | None, store: str | None, max_body: int, mirrors: str, **kwargs: Any
    ) -> Any:
        return command(settings=_settings(index, store, max_body, mirrors), **kwargs)

    return wrapped


def _hub(settings: Any, *, upgrade: bool = False) -> Any:
    from tether import api

    return api.Hub(settings, upgrade=upgrade)


@click.group(invoke_without_command=True)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8080, show_default=True, help="Port to listen on.")
@click.option("--workers", default=1, show_default=True, help="uvicorn worker processes.")
@click.option("--project", help="In a repository: the project its runs are served as.")
@click.option("--index", envvar="TETHER_SERVER_INDEX", help="The server's database URL.")
@click.option("--store", envvar="TETHER_SERVER_STORE", help="A folder or s3://BUCKET/PREFIX.")
@click.option("--max-body", default=1 << 30, show_default=True, help="Largest body, in bytes.")
@click.option("--mirrors", envvar="TETHER_SERVER_MIRRORS", default="", help="Git mirrors' folder.")
@click.option("--oidc-issuer", help="Also accept OIDC bearer tokens from this issuer (URL).")
@click.option("--oidc-audience", default="tether", show_default=True, help="Their audience.")
@click.option("--oidc-jwks-url", default="", help="The issuer's keys (default: its JWKS path).")
@click.option(
    "--oidc-claim", default="email", show_default=True, help="The claim that names the user."
)
@click.pass_context
def server(
    ctx: click.Context,
    host: str,
    port: int,
    workers: int,
    project: str | None,
    index: str | None,
    store: str | None,
    max_body: int,
    mirrors: str,
    oidc_issuer: str | None,
    oidc_audience: str,
    oidc_jwks_url: str,
    oidc_claim: str,
) -> None:
    """Run the team server (FastAPI on uvicorn) until stopped with Ctrl-C.

    With no --index/--store inside a repository it serves that repository: SQLite and a folder
    under .tether/server, with the repository's runs uploaded to project --project (default:
    the folder's name). It listens on 127.0.0.1 unless --host says otherwise, and refuses
    another address until `tether server init` has made an account. API docs: /api/v1/docs.
    """
    if ctx.invoked_subcommand is not None:
        return
    from tether import api, asgi

    settings = _settings(index, store, max_body, mirrors)
    if oidc_issuer:
        from dataclasses import replace

        oidc = api.OidcSettings(oidc_issuer, oidc_audience, oidc_jwks_url, oidc_claim)
        settings = replace(settings, oidc=oidc)
    on_ready = (
        _publisher(settings, project, None)
        if settings.store.endswith(".tether/server/store")
        else None
    )
    click.echo(f"serving on http://{host}:{port} (API docs at /api/v1/docs); Ctrl-C stops it")
    asgi.serve(settings, host=host, port=port, workers=workers, on_ready=on_ready)


def _publisher(settings: Any, project: str | None, secret: str | None) -> Callable[[str], None]:
    """Keep the repository's runs, live runs and event logs shown in its own embedded server:
    at once, then every :data:`REFRESH_S` seconds, until the UI stops."""
    import re
    import threading

    from tether import api

    repo = api.Project.open()
    folder = re.sub(r"[^a-z0-9_-]+", "-", repo.root.name.lower()).strip("-_")[:40]
    name = project or folder or "project"  # a project name from any folder name
    hub = _hub(settings)
    try:
        if name not in {p["name"] for p in hub.projects()}:
            hub.create_project(name, git=str(repo.root), actor="tether server")
    finally:
        hub.close()

    def once(url: str, first: bool) -> str:
        try:
            runs = api.Project.open(repo.root).show_in_ui(url, name, secret)
        except TetherError as exc:
            return f"project {name}: not brought up to date: {exc}"
        if first or runs:
            return f"project {name}: {len(runs)} run(s) uploaded from {repo.root}"
        return ""

    def publish(url: str) -> None:
        first = once(url, True)
        click.echo(first)

        def loop() -> None:
            said = first
            while not stop.wait(REFRESH_S):
                news = once(url, False)
                if news and news != said:
                    click.echo(news)
                said = news

        stop = threading.Event()
        threading.Thread(target=loop, name="tether-ui-refresh", daemon=True).start()

    return publish


REFRESH_S = 3.0  # how often `tether ui` brings its server up to date with the repository


@server.command("migrate")
@storage_options
def migrate(settings: Any) -> None:
    """Upgrade the server's database schema (Alembic) to this Tether's."""
    _hub(settings, upgrade=True).close()
    click.echo("the server's database is up to date")


@server.command("init")
@click.option("--admin", required=True, help="The first admin's user name.")
@storage_options
def init(settings: Any, admin: str) -> None:
    """Create the first admin and print their token, once: keep it (it is stored hashed)."""
    hub = _hub(settings)
    try:
        token = hub.accounts.init(admin)
    finally:
        hub.close()
    click.echo(f"admin {admin} created; their token (shown only now):")
    click.echo(token)


@server.group("project")
def project_group() -> None:
    """Projects on the server: each has its own runs, objects and roles."""


@project_group.command("add")
@click.argument("name")
@click.option("--git", default="", help="The project's git repository (URL or path).")
@storage_options
def project_add(settings: Any, name: str, git: str) -> None:
    """Create project NAME."""
    hub = _hub(settings)
    try:
        hub.create_project(name, git=git, actor="cli")
    finally:
        hub.close()
    click.echo(f"project {name} created")


@server.group("user")
def user_group() -> None:
    """Accounts: users and their roles (reader, writer, approver, admin) per project."""


@user_group.command("add")
@click.argument("name")
@click.option("--role", required=True, type=click.Choice(["reader", "writer", "approver", "admin"]))
@click.option("--project", default="*", show_default=True, help="The project ('*': all).")
@click.option("--oidc", help="The OIDC claim value (e-mail, subject) that logs in as NAME.")
@storage_options
def user_add(settings: Any, name: str, role: str, project: str, oidc: str | None) -> None:
    """Add user NAME with ROLE in PROJECT (or change their role there)."""
    hub = _hub(settings)
    try:
        hub.accounts.add_user(name, role, project, actor="cli", oidc=oidc)
    finally:
        hub.close()
    click.echo(f"{name} is {role} in {'every project' if project == '*' else project}")


@user_group.command("list")
@storage_options
def user_list(settings: Any) -> None:
    """List users and their roles."""
    hub = _hub(settings)
    try:
        for user in hub.accounts.users():
            roles = ", ".join(f"{r} in {p}" for p, r in sorted(user["roles"].items()))
            click.echo(f"{user['name']}\t{roles}" + ("\t(disabled)" if user["disabled"] else ""))
    finally:
        hub.close()


@server.group("token")
def token_group() -> None:
    """Bearer tokens: random, shown once, stored hashed, revocable."""


@token_group.command("create")
@click.option("--user", "user", required=True, help="Whose token it is.")
@click.option("--expires", help="Lifetime, e.g. 90d or 12h (default: until revoked).")
@click.option("--label", default="", help="What the token is for.")
@storage_options
def token_create(settings: Any, user: str, expires: str | None, label: str) -> None:
    """Make a token for USER and print it, once."""
    from tether import api

    seconds = api.duration_seconds(expires) if expires else None
    hub = _hub(settings)
    try:
        token_id, token = hub.accounts.create_token(
            user, expires_in=seconds, label=label, actor="cli"
        )
    finally:
        hub.close()
    click.echo(f"token {token_id} for {user} (shown only now):")
    click.echo(token)


@token_group.command("list")
@storage_options
def token_list(settings: Any) -> None:
    """List tokens (their ids, never the tokens)."""
    hub = _hub(settings)
    try:
        for t in hub.accounts.tokens():
            state = "revoked" if t["revoked"] else ("expires" if t["expires"] else "live")
            click.echo(f"{t['id']}\t{t['user']}\t{state}\t{t['label']}")
    finally:
        hub.close()


@token_group.command("revoke")
@click.argument("token_id")
@storage_options
def token_revoke(settings: Any, token_id: str) -> None:
    """Revoke token TOKEN_ID: it stops working at once."""
    hub = _hub(settings)
    try:
        hub.accounts.revoke_token(token_id, actor="cli")
    finally:
        hub.close()
    click.echo(f"token {token_id} revoked")


@server.command("audit")
@click.option("-n", "--limit", default=50, show_default=True, help="The newest N changes.")
@storage_options
def audit(settings: Any, limit: int) -> None:
    """Who changed accounts, roles, tokens and projects, and who pushed, newest last."""
    import datetime

    hub = _hub(settings)
    try:
        events = hub.accounts.audit_log(limit)
    finally:
        hub.close()
    for e in events:
        when = datetime.datetime.fromtimestamp(e["time"], datetime.UTC).isoformat(
            timespec="seconds"
        )
        detail = " ".join(f"{k}={v}" for k, v in sorted(e["detail"].items()))
        click.echo(f"{when}\t{e['actor']}\t{e['action']}\t{e['target']}\t{detail}".rstrip())


@server.command("backup")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@storage_options
def backup(settings: Any, path: Path) -> None:
    """Write the accounts (users, roles, hashed tokens, projects, audit log) to PATH.

    They are what the server cannot rebuild from objects; PATH is written 0600."""
    hub = _hub(settings)
    try:
        document = hub.accounts.backup()
    finally:
        hub.close()
    from tether import api

    api.write_private(path, json.dumps(document, sort_keys=True, indent=1).encode())
    counts = ", ".join(
        f"{len(v)} {k.removeprefix('tether_')}" for k, v in document["tables"].items()
    )
    click.echo(f"backed up {counts} to {path}")


@server.command("restore")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@storage_options
def restore(settings: Any, path: Path) -> None:
    """Replace the server's accounts with those of a backup."""
    hub = _hub(settings)
    try:
        counts = hub.accounts.restore(json.loads(path.read_bytes()))
    finally:
        hub.close()
    click.echo(
        "restored " + ", ".join(f"{n} {k.removeprefix('tether_')}" for k, n in counts.items())
    )


@server.command("login")
@click.argument("url")
@click.option("--project", required=True, help="The project on the server.")
@click.option("--token", envvar="TETHER_TOKEN", help="The token (default: $TETHER_TOKEN).")
@click.option("--shared", is_flag=True, help="Keep URL and project in tether.toml (committed).")
def login(url: str, project: str, token: str | None, shared: bool) -> None:
    """Point this project at the server at URL, after checking it accepts the token.

    The token goes to .tether/config.toml (0600), never tether.toml. From then on runs upload
    when they end, `tether sync` uploads the rest, and `runs list` asks the server."""
    from tether.api import Project

    who = Project.open().server_login(url, project, token, shared=shared)
    click.echo(f"logged in to {url} as {who['user']}, project {project}")


@server.command("logout")
def logout() -> None:
    """Forget this clone's token (and the server it set in .tether/config.toml)."""
    from tether.api import Project

    removed = Project.open().server_logout()
    click.echo(("removed " + ", ".join(removed)) if removed else "no server was set here")


@server.command("credential", hidden=True)
@click.argument("operation")
def credential(operation: str) -> None:
    """git's credential helper for the `tether` remote: the project's token, from
    TETHER_TOKEN or .tether/config.toml (git reads the request on stdin)."""
    from tether.api import Project

    sys.stdin.read()
    token = Project.open().server_token() if operation == "get" else None
    if token:
        click.echo(f"username=tether\npassword={token}")


@click.command()
def sync() -> None:
    """Upload to the team server what it has not acknowledged: runs (the first time, all of
    them) and the objects they and the tracked data need; then bring back teammates' notes,
    tags and deletions of the runs this clone holds. Safe to run again at any time."""
    from tether.api import Project
    from tether.cli.progress import Bar

    with Bar("uploading") as bar:
        result = Project.open().sync(callback=bar)
    click.echo(
        f"{len(result.runs)} run(s) and {result.objects} object(s) ({human_size(result.bytes)}) "
        f"uploaded to {result.server}; {result.pending} run(s) not acknowledged"
    )
    if result.refreshed:
        click.echo(f"{len(result.refreshed)} run(s) brought up to date with teammates' changes")
    for run_id, why in sorted(result.refused.items()):
        click.secho(f"run {run_id} refused: {why}", fg="yellow", err=True)
    if result.refused:
        sys.exit(exitcodes.NEGATIVE)


@click.command()
@click.option("--port", default=0, help="Port to listen on (default: a free one).")
@click.option("--project", help="The project the repository's runs are served as.")
@click.option("--no-browser", is_flag=True, help="Print the URL only; open no browser.")
def ui(port: int, project: str | None, no_browser: bool) -> None:
    """Open the web UI of this repository: its runs (uploaded into its embedded server, SQLite
    and .tether/server), charts and pillars, in a browser.

    It listens on 127.0.0.1 only, answers only to a loopback Host (no DNS rebinding) and wants
    the random secret of the URL it prints once (a cookie then holds it). Ctrl-C stops it.
    """
    import secrets
    import socket

    from tether import asgi

    settings = _settings(None, None, 1 << 30)
    secret = secrets.token_urlsafe(24)
    with socket.socket() as probe:  # a port someone else serves: said now, nothing uploaded
        try:
            probe.bind(("127.0.0.1", port))
        except OSError as exc:
            raise UsageError(
                f"port {port} on 127.0.0.1 is taken ({exc.strerror}): choose another with "
                "--port, or leave it out for a free one"
            ) from None
        port = probe.getsockname()[1]
    publish = _publisher(settings, project, secret)

    def ready(url: str) -> None:
        import httpx

        link = f"{url}/ui-login?token={secret}"
        if httpx.get(link, timeout=5).status_code != 303:  # not ours: it does not know it
            click.echo(f"error: another server answers on {url}: stopping", err=True)
            os.kill(os.getpid(), signal.SIGINT)
            return
        click.echo(f"the UI: {link}  (Ctrl-C stops it)")
        if not no_browser:
            import webbrowser

            webbrowser.open(link)
        publish(url)

    asgi.serve(settings, host="127.0.0.1", port=port, on_ready=ready, ui_secret=secret)
