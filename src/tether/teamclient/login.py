"""``tether server login``: check a server and a token before a project is pointed at them."""

from __future__ import annotations

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
