"""Prompt bundles: the labelled versions' files in one JSON file, for services that run without
git, signed so that a service serves only what a trusted key bundled.

Format 2 holds a DSSE envelope (payload type :data:`PAYLOAD_TYPE`) over the bundle's contents::

    {"tether": "prompt-bundle", "format": 2, "signed": {"payloadType": ..., "payload": ...,
     "signatures": [{"keyid": "ed25519:...", "sig": ...}]}}

whose payload is ``{"label": "production", "prompts": {"sentiment": {"label", "version",
"content_id", "commit", "tag", "files": {"prompt.yaml": "...", ...}}}}`` (a file's bytes are a
string when they are UTF-8, else ``{"base64": ...}``). ``tether prompt bundle`` signs with the
local key (``TETHER_SIGNING_KEY``). ``load(bundle=…)`` verifies the signature against, in order:
the keys given as ``trust=`` (public key PEM texts or files), ``$TETHER_BUNDLE_KEYS`` (PEM
files, separated by ``os.pathsep``), else the repository around the cwd (under a root of trust,
keys holding ``promoter`` or ``ci``; without one, the keys tether.toml trusts). An unsigned bundle
(format 1), a tampered one and one signed by another key are refused; each content id is checked.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from tether import keyconfig, signing
from tether.errors import NotARepositoryError, SignatureError, TetherError
from tether.prompts.runtime import (
    BUNDLE_KIND,
    Entry,
    Pin,
    build,
    check_label,
    check_names,
    files_at,
    resolve_label,
    verify_content,
)
from tether.prompts.templates import NAME, PromptError, content_id, parse_ref

FORMAT = 2
PAYLOAD_TYPE = "application/vnd.tether.prompt-bundle+json"
KEYS_ENV = "TETHER_BUNDLE_KEYS"
SIGNER_ROLES = frozenset({"promoter", "ci"})  # under a root: who may ship labels in a bundle

Trust = Sequence[str | os.PathLike[str]]


def write(root: Path, names: list[str] | None, label: str, path: Path) -> list[Pin]:
    """Write the versions ``label`` points at (of ``names``, default every prompt that has
    it), read from their registration commits and verified, to the bundle file ``path``,
    signed by the local key."""
    from tether._fs import atomic_write
    from tether.gitio.repo import git

    check_label(label)
    where = str(root)
    try:
        signer = signing.load_signer()
    except TetherError as exc:
        raise PromptError(
            f"a prompt bundle is signed, and there is no key to sign it with: {exc}"
        ) from None
    if not names:
        tags = git(root, "for-each-ref", "--format=%(refname:strip=2)", f"refs/tags/*#{label}#*")
        found = {t.partition("#")[0] for t in tags.decode().split()}
        names = sorted(n for n in found if NAME.match(n))
        if not names:
            raise PromptError(
                f"no prompt has the label {label!r} in {where}: `tether prompt promote "
                f"NAME@VERSION --label {label}` assigns it"
            )
    entries: dict[str, Any] = {}
    pins = []
    for name in sorted(set(names)):
        parse_ref(name)
        pin = resolve_label(root, name, label, where)
        files = files_at(root, pin)
        check_names(pin, files, where)  # before anything is written
        verify_content(pin, files, where)
        encoded: dict[str, Any] = {}
        for file, data in files.items():
            try:
                encoded[file] = data.decode("utf-8")
            except UnicodeDecodeError:
                encoded[file] = {"base64": base64.b64encode(data).decode()}
        entries[name] = {
            "label": label, "version": pin.version, "content_id": pin.content_id,
            "commit": pin.commit, "tag": pin.tag, "files": encoded,
        }  # fmt: skip
        pins.append(pin)
    payload = json.dumps({"label": label, "prompts": entries}, sort_keys=True).encode()
    doc = {"tether": BUNDLE_KIND, "format": FORMAT, "signed": signer.sign(PAYLOAD_TYPE, payload)}
    atomic_write(Path(path), (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode())
    return pins


def entry(
    path: Path,
    name: str,
    label: str | None,
    version: str | None,
    old: Entry | None,
    trust: Trust | None,
) -> Entry:
    """The entry for ``name`` from a bundle, re-read (and its signature checked) only when the
    file changed."""
    try:
        st = path.stat()
    except OSError as exc:
        raise PromptError(f"cannot read the prompt bundle {path}: {exc.strerror}") from exc
    stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
    if old is not None and old.stamp == stamp:
        return replace(old, fetched=time.monotonic())
    pin, files = _entry(path, path.read_bytes(), name, label, version, trust)
    if content_id(files) != pin.content_id:
        raise PromptError(
            f"the prompt bundle {path} was edited or damaged: {name}@{pin.version}'s files do "
            f"not match its content id {pin.content_id}; write it again with `tether prompt "
            f"bundle --label {pin.label} -o {path}`"
        )
    return Entry(build(pin, files, str(path)), pin, stamp, time.monotonic())


def _entry(
    path: Path, data: bytes, name: str, label: str | None, version: str | None, trust: Trust | None
) -> tuple[Pin, dict[str, bytes]]:
    doc = _signed_contents(path, data, trust)
    prompts = doc.get("prompts")
    if not isinstance(prompts, dict):
        raise PromptError(f"the prompt bundle {path} is damaged: it has no `prompts` mapping")
    found = prompts.get(name)
    if not isinstance(found, dict):
        raise PromptError(
            f"the prompt bundle {path} has no prompt {name} (it has "
            f"{', '.join(sorted(prompts)) or 'none'}): add it with `tether prompt bundle "
            f"{' '.join(sorted({*prompts, name}))} --label {label or doc.get('label')} -o {path}`"
        )
    have = f"{name}@{found.get('version')} with label {found.get('label')!r}"
    if (label is not None and found.get("label") != label) or (
        version is not None and found.get("version") != version
    ):
        wanted = f"label {label!r}" if label is not None else f"version {version}"
        raise PromptError(f"the prompt bundle {path} holds {have}, not {wanted}")
    files: dict[str, bytes] = {}
    try:
        for file, value in dict(found["files"]).items():
            if isinstance(value, str):
                files[str(file)] = value.encode("utf-8")
            else:
                files[str(file)] = base64.b64decode(value["base64"], validate=True)
        pin = Pin(
            name, str(found["version"]), str(found["content_id"]), str(found.get("commit", "")),
            str(found["label"]), found.get("tag"),
        )  # fmt: skip
    except (KeyError, TypeError, ValueError, binascii.Error) as exc:
        raise PromptError(f"the prompt bundle {path} is damaged at {name} ({exc!r})") from exc
    return pin, files


def _signed_contents(path: Path, data: bytes, trust: Trust | None) -> dict[str, Any]:
    """The bundle's contents, once its signature holds under the keys that verify bundles."""
    from tether._documents import loads_json

    try:
        doc = loads_json(data, f"the prompt bundle {path}")
    except TetherError as exc:
        raise PromptError(str(exc)) from None
    if not isinstance(doc, dict) or doc.get("tether") != BUNDLE_KIND:
        raise PromptError(f"{path} is not a prompt bundle")
    if doc.get("format") != FORMAT or "signed" not in doc:
        raise PromptError(
            f"the prompt bundle {path} is not signed (format {doc.get('format')}): a service "
            "serves only a bundle a trusted key signed; write it again with `tether prompt "
            "bundle`"
        )
    keys, source = verifying_keys(trust)
    try:
        checked = signing.verify(doc["signed"], keys)
    except SignatureError as exc:
        raise PromptError(
            f"the prompt bundle {path} does not verify under {source} ({exc}): refusing it"
        ) from None
    if checked.payload_type != PAYLOAD_TYPE:
        raise PromptError(f"the prompt bundle {path} is signed as something else: refusing it")
    contents = json.loads(checked.payload)
    if not isinstance(contents, dict):
        raise PromptError(f"the prompt bundle {path} is damaged: its payload is not an object")
    return contents


def verifying_keys(trust: Trust | None) -> tuple[dict[str, signing.TrustedKey], str]:
    """The keys a bundle is checked against, and where they came from (see the module)."""
    given = list(trust) if trust is not None else None
    if given is None and os.environ.get(KEYS_ENV):
        given = [p for p in os.environ[KEYS_ENV].split(os.pathsep) if p]
        source = f"${KEYS_ENV}"
    else:
        source = "the keys given as trust="
    if given is not None:
        keys = {}
        for item in given:
            pem = _pem(item)
            keyid = signing.public_key_id(pem)
            keys[keyid] = signing.TrustedKey(keyid, "given", frozenset(), pem)
        return keys, source
    return _repository_keys()


def _pem(item: str | os.PathLike[str]) -> str:
    text = str(item)
    if "BEGIN PUBLIC KEY" in text:
        return text
    try:
        return Path(item).read_text()
    except OSError as exc:
        raise PromptError(f"cannot read the public key {item}: {exc.strerror}") from None


def _repository_keys() -> tuple[dict[str, signing.TrustedKey], str]:
    from tether.config import read_project
    from tether.events.gitmirror import read_from_git
    from tether.gitio.repo import find_root
    from tether.prompts import label_log

    try:
        root = find_root(Path.cwd())
    except NotARepositoryError:
        raise PromptError(
            "cannot tell which keys may sign a prompt bundle here (no repository around the "
            f"cwd): pass trust=[PUBLIC_KEY.pem] or set ${KEYS_ENV}"
        ) from None
    folded = label_log.fold(read_from_git(root, label_log.LOG))
    label_log.check_pin(folded, root / ".tether")
    if folded.root is not None:
        keys = {k: v for k, v in folded.root.keys.items() if v.roles & SIGNER_ROLES}
        return keys, f"the root of trust of {root} (promoter and ci keys)"
    return keyconfig.trusted_keys(read_project(root)), f"the keys {root}/tether.toml trusts"
