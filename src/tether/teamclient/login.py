"""``tether server login``: check a server and a token before a project is pointed at them."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from tether.errors import UsageError
from tether.teamclient.client import ServerClient, Target


def is_loopback_host(host: str) -> bool:
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check(url: str, project: str, token: str | None) -> dict[str, Any]:
    """Who the server says the token is, after checking the URL is one a token may go to: a
    token over plain http to another machine could be read by anyone on the way."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(f"{url} is not a server URL: use https://HOST[:PORT]")
    if parts.scheme == "http" and not is_loopback_host(parts.hostname):
        raise UsageError(
            f"refusing plain http:// to {parts.hostname}: a token sent over it can be read on "
            "the way. Use https://, or http:// only to 127.0.0.1 or localhost"
        )
    with ServerClient(Target(url, project, token)) as client:
        who = client.whoami()
        client.missing([])  # the project exists and this token may read it
    return who


REMOTE = "tether"


def configure_git_remote(root: Path, url: str, project: str) -> str:
    """A git remote ``tether`` for the project's repository on the server, whose credentials
    git asks ``tether server credential`` for (the token stays in .tether/config.toml only):
    `tether model push --remote tether`, `tether prompt push NAME --remote tether`."""
    from tether.gitio.repo import git, git_maybe

    remote_url = f"{url.rstrip('/')}/git/{project}.git"
    if git_maybe(root, "config", "--get", f"remote.{REMOTE}.url") is None:
        git(root, "remote", "add", REMOTE, remote_url)
    else:
        git(root, "remote", "set-url", REMOTE, remote_url)
    helper = f"credential.{remote_url}.helper"
    # this interpreter's Tether, whatever PATH git runs the helper with
    command = f"!'{sys.executable}' -m tether.cli.main server credential"
    git(root, "config", "--replace-all", helper, command)
    return remote_url
