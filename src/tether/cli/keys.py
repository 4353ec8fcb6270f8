"""``tether keys``: signing keys (generate, trust, list)."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import TextIO

import click


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def keys() -> None:
    """Signing keys: the identities behind approvals and signed releases.

    An identity is a key, not a git email. Each person makes a key with `tether keys generate`
    (the private half stays in their keys folder, outside any repository); a maintainer adds the
    public half to tether.toml with `tether keys trust`. Signed events and releases count only
    when they verify against a trusted key.
    """


@keys.command("generate")
@click.option("--identity", required=True, metavar="EMAIL", help="Who the key stands for.")
@click.option(
    "--dir",
    "keys_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Keys folder (default: $TETHER_KEYS_DIR, else $XDG_CONFIG_HOME/tether/keys, else "
    "~/.config/tether/keys). Must be outside every git repository.",
)
def keys_generate(identity: str, keys_dir: Path | None) -> None:
    """Make a new Ed25519 signing key for EMAIL.

    Prints the key id, where the private key is, and the public half. The private key is written
    with mode 0600 and is not encrypted, so CI can sign unattended; set TETHER_KEY_PASSPHRASE to
    encrypt it. Send the public key (never the .pem) to a maintainer, who runs the
    `tether keys trust` command printed here.
    """
    from tether.api import generate_key

    key = generate_key(identity, keys_dir)
    click.echo(f"Key id:      {key.keyid}")
    click.echo(f"Private key: {key.private_path} (keep it secret; never commit it)")
    click.echo(f"Public key:  {key.public_path}\n")
    click.echo(key.public_pem.rstrip())
    click.echo("\nTo trust it, run in the repository (add --role approver to let it approve):")
    pub, who = shlex.quote(str(key.public_path)), shlex.quote(identity)
    click.echo(f"  tether keys trust {pub} --identity {who}")


@keys.command("trust")
@click.argument("file", type=click.File("r"))
@click.option("--identity", required=True, metavar="EMAIL", help="Who the key stands for.")
@click.option(
    "--role",
    "roles",
    multiple=True,
    metavar="ROLE",
    help="A right of this key, e.g. approver (repeat for several).",
)
@click.option(
    "--local",
    is_flag=True,
    help="Trust it on this clone only (.tether/config.toml), for verifying signatures (`model "
    "verify`); a key trusted this way never decides anything (approvals, gates, labels).",
)
def keys_trust(file: TextIO, identity: str, roles: tuple[str, ...], local: bool) -> None:
    """Trust the public key in FILE as EMAIL.

    FILE is the .pub file `tether keys generate` wrote (- reads the PEM from stdin).
    Adds [keys."<key id>"] to tether.toml (commit it) with the identity, its roles and the public
    key. Trusting a key again replaces its identity and roles. A private key is refused. In a
    project with a root of trust, keys get their roles from the root (`tether trust add`), and
    this is refused without --local.
    """
    from tether.api import trust_key

    key, path, root = trust_key(file.read(), identity, roles, local=local)
    rights = ", ".join(sorted(key.roles)) or "no roles"
    click.echo(f"Trusted {key.keyid} as {key.identity} ({rights}) in {path.relative_to(root)}")
    if not local:
        click.echo(f"Commit {path.name} so everyone checks signatures against it.")


@keys.command("list")
@click.option(
    "--dir",
    "keys_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Keys folder to list private keys from (default as for `generate`).",
)
def keys_list(keys_dir: Path | None) -> None:
    """Show trusted keys and this machine's private keys.

    Trusted keys come from tether.toml (and .tether/config.toml): key id, identity, roles.
    Private keys are those in the keys folder; the ones this project trusts are marked.
    """
    from tether.api import keys_here

    trusted, folder, mine = keys_here(keys_dir)
    click.echo("Trusted keys:" if trusted else "Trusted keys: none (`tether keys trust FILE`)")
    for key in sorted(trusted.values(), key=lambda k: (k.identity, k.keyid)):
        click.echo(f"  {key.keyid}  {key.identity}  {', '.join(sorted(key.roles)) or '-'}")
    click.echo(f"Private keys in {folder}:" + ("" if mine else " none"))
    for info in mine:
        mark = "  (trusted here)" if info.keyid in trusted else ""
        click.echo(f"  {info.keyid}  {info.identity or '?'}{mark}")
