"""Trusted public keys are config (``tether.toml``, committed), never private keys::

    [keys."ed25519:0123..."]
    identity = "alice@example.com"
    roles = ["approver"]
    public = \"\"\"
    -----BEGIN PUBLIC KEY-----
    ...
    -----END PUBLIC KEY-----
    \"\"\"

    [groups]
    ml-leads = ["alice@example.com", "bob@example.com"]

Each entry is checked against its key id when read; unknown fields are refused.
"""

from __future__ import annotations

import re
import stat
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from tether._fs import atomic_write
from tether.errors import ConfigError
from tether.signing import IDENTITY, TrustedKey, public_key_id

_KEY_FIELDS = frozenset({"identity", "roles", "public"})
_NAME = re.compile(r"[a-z][a-z0-9_.-]*", re.I)


def trusted_keys(config_data: Mapping[str, Any]) -> dict[str, TrustedKey]:
    """The ``[keys."ed25519:..."]`` tables of the merged config, each checked against its id."""
    tables = config_data.get("keys", {})
    if not isinstance(tables, Mapping):
        raise ConfigError('keys must be tables: [keys."ed25519:..."]')
    out = {}
    for keyid, entry in tables.items():
        where = f'[keys."{keyid}"]'
        if not isinstance(entry, Mapping):
            raise ConfigError(f"{where} must be a table with identity, roles and public")
        # unknown fields are refused, not ignored: a field an older Tether ignored (say, a
        # revocation) would silently keep a key trusted
        unknown = sorted(set(entry) - _KEY_FIELDS)
        if unknown:
            raise ConfigError(f"{where} has unknown fields {unknown}: use identity, roles, public")
        identity, roles, public = entry.get("identity"), entry.get("roles", []), entry.get("public")
        if not isinstance(identity, str) or not IDENTITY.fullmatch(identity):
            raise ConfigError(f'{where} needs identity = "name@example.com"')
        if not isinstance(roles, list) or not all(
            isinstance(r, str) and _NAME.fullmatch(r) for r in roles
        ):
            raise ConfigError(f'{where}: roles must be a list of names, e.g. ["approver"]')
        if not isinstance(public, str):
            raise ConfigError(f"{where} needs public = the key's PEM (tether keys trust FILE)")
        try:
            actual = public_key_id(public)
        except ConfigError as exc:
            raise ConfigError(f"{where}: {exc}") from exc
        if actual != keyid:
            raise ConfigError(
                f"{where} holds the public key {actual}, not {keyid}: the entry was edited by "
                "hand; remove it and add the key again with `tether keys trust FILE`"
            )
        out[keyid] = TrustedKey(keyid, identity, frozenset(roles), public)
    return out


def groups(config_data: Mapping[str, Any]) -> dict[str, frozenset[str]]:
    """``[groups] NAME = ["identity", ...]`` of the merged config."""
    tables = config_data.get("groups", {})
    if not isinstance(tables, Mapping):
        raise ConfigError('[groups] must be a table: ml-leads = ["alice@example.com"]')
    out = {}
    for name, members in tables.items():
        if not isinstance(members, list) or not all(
            isinstance(m, str) and IDENTITY.fullmatch(m) for m in members
        ):
            raise ConfigError(
                f"groups.{name} must be a list of identities (emails; groups do not nest)"
            )
        out[name] = frozenset(members)
    return out


def identity_has(identity: str, who: str, groups: Mapping[str, frozenset[str]]) -> bool:
    """True when ``identity`` is ``who`` (an identity, compared exactly) or, for ``group:NAME``,
    a member of that group."""
    if who.startswith("group:"):
        name = who.removeprefix("group:")
        if name not in groups:
            raise ConfigError(f'no group {name!r}: add [groups] {name} = ["..."] to tether.toml')
        return identity in groups[name]
    return identity == who


def trust_key(
    config_path: Path,
    public_pem: str,
    identity: str,
    roles: Iterable[str] = (),
    *,
    new_file_mode: int = 0o644,
) -> TrustedKey:
    """Add (or, for a key already there, replace) ``[keys."<keyid>"]`` in the TOML file.

    A new key is appended as text, so the rest of the file keeps its comments; replacing one
    rewrites the whole document from its parsed values (comments are lost, as with
    ``tether config set``). An existing file keeps its mode; a new one gets ``new_file_mode``.
    """
    import tomllib

    import tomli_w

    keyid = public_key_id(public_pem)
    key = TrustedKey(keyid, identity, frozenset(roles), public_pem.strip() + "\n")
    entry = {"identity": identity, "roles": sorted(key.roles), "public": key.public_pem}
    trusted_keys({"keys": {keyid: entry}})  # the same checks as when it is read back
    try:
        text = config_path.read_text()
        tree = tomllib.loads(text)
        mode = stat.S_IMODE(config_path.stat().st_mode)
    except FileNotFoundError:
        text, tree, mode = "", {}, new_file_mode
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{config_path} is not valid TOML ({exc}): fix it and run again") from exc
    tables = tree.setdefault("keys", {})
    if not isinstance(tables, dict):
        raise ConfigError(f'{config_path}: keys must be tables: [keys."ed25519:..."]')
    is_new = keyid not in tables
    tables[keyid] = entry
    fragment = tomli_w.dumps({"keys": {keyid: entry}}, multiline_strings=True)
    appended = text + ("\n" if text and not text.endswith("\n") else "") + "\n" + fragment
    if is_new and _parses_to(appended, tree):
        new_text = appended
    else:
        new_text = tomli_w.dumps(tree, multiline_strings=True)
    config_path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(config_path, new_text.encode(), mode=mode)
    return key


def _parses_to(text: str, tree: Mapping[str, Any]) -> bool:
    import tomllib

    try:
        return tomllib.loads(text) == tree
    except tomllib.TOMLDecodeError:
        return False
