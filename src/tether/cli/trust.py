"""``tether trust``: the project's root of trust (who holds which role, and the policies)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, TextIO

import click

if TYPE_CHECKING:
    from tether.api import Proposal, RootOfTrust

_OUT = click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where to write the proposed root when more admins must sign (default root-N.json).",
)


def _trust() -> RootOfTrust:
    from tether.api import Project

    return Project.open().trust


def _said(p: Proposal) -> None:
    if p.published:
        assert p.root is not None
        click.echo(f"root version {p.version} is in force (fingerprint {p.root.fingerprint})")
        from tether.api import Project

        if Project.open().config_get("server.url"):
            click.echo("The team server has it, in both the registry and the prompt logs.")
        else:
            click.echo("Push it with `tether model push` and `tether prompt push`.")
    else:
        click.echo(
            f"root version {p.version} needs {p.missing} more admin signature(s): each admin "
            f"runs `tether trust sign {p.file}`; it is published once enough have signed"
        )


@click.group()
def trust() -> None:
    """The root of trust: which keys hold which roles (admin, approver, promoter, ci) and the
    promotion policies, as TUF root metadata signed by a threshold of admin keys.

    Each clone pins the root's fingerprint at first use (or takes TETHER_ROOT_KEY); a log whose
    root differs, goes back a version, or has lost its root is refused. With a root, every
    registry and label event is signed by a key of the root, and only events whose key holds
    the role, under the policy in force, count. tether.toml's keys and policies become
    proposals: `tether trust add` and `tether trust policy` sign them in.

    \b
      tether trust init                     # root v1 from tether.toml; your key is admin
      tether trust add bob.pub --identity bob@example.com --role approver
      tether trust revoke ed25519:0123…
      tether trust policy                   # sign tether.toml's [registry.policy] in
      tether trust show
    """


@trust.command("init")
@click.option("--threshold", default=1, show_default=True, help="Admin signatures a change needs.")
@_OUT
def trust_init(threshold: int, out: Path | None) -> None:
    """Make root version 1 from tether.toml's trusted keys, groups and policies, with your key
    as an admin, and publish it in the registry and prompt logs."""
    _said(_trust().init(threshold=threshold, out=out))


@trust.command("show")
def trust_show() -> None:
    """The root in force: its version, fingerprint, keys with their identities and roles."""
    root = _trust().current()
    if root is None:
        click.echo("no root of trust: `tether trust init` makes one")
        return
    click.echo(f"root version {root.version}, fingerprint {root.fingerprint}")
    click.echo(f"admin threshold: {root.threshold}")
    for key in sorted(root.keys.values(), key=lambda k: (k.identity, k.keyid)):
        click.echo(f"  {key.keyid}  {key.identity}  {', '.join(sorted(key.roles)) or '-'}")
    for stage, policy in sorted(root.policies.items()):
        click.echo(f"  policy {stage}: {policy}")


@trust.command("add")
@click.argument("file", type=click.File("r"))
@click.option("--identity", required=True, metavar="EMAIL", help="Who the key stands for.")
@click.option(
    "--role", "roles", multiple=True, metavar="ROLE", help="admin, approver, promoter, ci."
)
@_OUT
def trust_add(file: TextIO, identity: str, roles: tuple[str, ...], out: Path | None) -> None:
    """Add the public key in FILE to the next root version (or give a key there new roles)."""
    _said(_trust().add(file.read(), identity, roles, out=out))


@trust.command("revoke")
@click.argument("keyid")
@_OUT
def trust_revoke(keyid: str, out: Path | None) -> None:
    """Remove KEYID from the next root version: its later signatures count for nothing."""
    _said(_trust().revoke(keyid, out=out))


@trust.command("policy")
@click.option("--threshold", type=int, help="A new admin threshold.")
@_OUT
def trust_policy(threshold: int | None, out: Path | None) -> None:
    """Sign tether.toml's [registry.policy] tables and [groups] into the next root version."""
    _said(_trust().policy(threshold=threshold, out=out))


@trust.command("sign")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def trust_sign(file: Path) -> None:
    """Add your admin signature to the proposed root in FILE (published once enough signed)."""
    _said(_trust().sign(file))


@trust.command("publish")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def trust_publish(file: Path) -> None:
    """Publish the proposed root in FILE, if enough admins have signed it."""
    _said(_trust().publish(file))
