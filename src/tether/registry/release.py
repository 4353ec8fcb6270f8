"""Signed releases: ``tether model sign`` makes an in-toto Statement v1 whose subjects are the
model's files (sha256) and whose predicate is SLSA provenance v1 built from the run's record,
in a DSSE envelope signed by the local key; ``verify`` checks it against the trusted keys and the
files; ``get`` writes a version out, hashing every byte as it copies (BLAKE3 against the object
id, and sha256 against the signed statement when the version's stage requires a signature).
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tether import intoto, keyconfig, signing
from tether._paths import WriteGuard
from tether._version import __version__
from tether.config import read_local
from tether.errors import TetherError, UnsafePathError, VerificationError
from tether.hashing import PREFIX
from tether.registry import release_folder
from tether.registry.policy import load_policies
from tether.registry.store import (
    RegistryError,
    State,
    Version,
    append,
    deciding_keys,
    load_state,
    local_signer,
    project_config,
    version_files,
    writing,
)
from tether.runs import catalog
from tether.workspace.repo import Workspace

BUILD_TYPE = "https://tether.dev/run/v1"
CHUNK = 8 << 20


def files_of(ws: Workspace, v: Version) -> list[tuple[str, str]]:
    """(relative name, object id) of every file of the version, each name checked as
    :func:`~tether.registry.store.version_files` checks them at register time (a version
    recorded before that check, or forged into the log, is refused here)."""
    try:
        return version_files(ws, v.object, v.path, f"model {v.ref}")
    except UnsafePathError as exc:
        raise UnsafePathError(
            f"{exc}; the version's files are unsafe, so Tether writes none of them: "
            f"`tether audit log --model {v.name}` says who registered it"
        ) from None


def _chunks(ws: Workspace, oid: str) -> Iterator[bytes]:
    loose = ws.store.loose_path(oid)
    if loose is None:
        yield ws.store.read_bytes(oid)
        return
    with open(loose, "rb", buffering=0) as f:
        while chunk := f.read(CHUNK):
            yield chunk


def _sha256(ws: Workspace, oid: str, error: type[TetherError] = RegistryError) -> str:
    """The sha256 of an object's bytes, which must first be the bytes its id names: a damaged
    cache copy is never signed (``error``: a refusal to sign, or a failed verification)."""
    from blake3 import blake3

    h, check = hashlib.sha256(), blake3(max_threads=blake3.AUTO)
    for chunk in _chunks(ws, oid):
        h.update(chunk)
        check.update(chunk)
    if check.hexdigest() != _hex(oid):
        raise error(
            f"object {oid[:19]}…: the cached bytes do not match their id: run `tether fsck` and "
            "`tether pull` before signing or verifying"
        )
    return h.hexdigest()


def sign(ws: Workspace, spec: str) -> Version:
    """Sign the version's provenance with the local key and record it in the registry."""
    with writing(ws) as state:
        v = state.resolve(spec)
        if v.signature is not None:
            raise RegistryError(
                f"{v.ref} is signed already (by {v.signed_by}): a release keeps the signature "
                "it was approved with; register a new version to sign other bytes"
            )
        record = catalog.load(ws, v.run)
        files = files_of(ws, v)
        subjects = [(name, _sha256(ws, oid)) for name, oid in files]
        stmt = intoto.statement(subjects, intoto.SLSA_PROVENANCE_TYPE, _provenance(ws, v, record))
        for subject, (_name, oid) in zip(stmt["subject"], files, strict=True):
            subject["digest"]["blake3"] = _hex(oid)  # lets `get` check one hash, not two
        signer, _who = local_signer(ws)
        envelope = signer.sign(intoto.PAYLOAD_TYPE, json.dumps(stmt, sort_keys=True).encode())
        with ws.writing():
            oid = ws.store.put_bytes(json.dumps(envelope, sort_keys=True).encode())
            ws.store.barrier()
            ws.refs.set(f"registry/{v.name}/v{v.number}", [v.object, v.record, oid])
        body = {
            "name": v.name, "version": v.number, "envelope": oid, "keyid": signer.keyid,
            # what the statement is about, bound into the signed event: the fold counts a
            # signature only for the version whose files these are
            "object": v.object, "subjects": [[name, _hex(oid)] for name, oid in files],
        }  # fmt: skip
        append(ws, "model.sign", body, sign=True)
    return load_state(ws).version(v.name, v.number)


def _provenance(ws: Workspace, v: Version, record: dict[str, Any]) -> dict[str, Any]:
    code = record.get("code") or {}
    data = record.get("data") or {}
    deps: list[dict[str, Any]] = []
    if code.get("commit"):
        remote = code.get("remote") or str(ws.root)
        deps.append({"uri": f"git+{remote}", "digest": {"gitCommit": code["commit"]}})
    if code.get("diff"):
        diff = {"uri": "tether:diff", "name": "uncommitted diff"}
        deps.append({**diff, "digest": {"blake3": _hex(code["diff"])}})
    for path, oid in sorted((data.get("inputs") or {}).items()):
        deps.append({"uri": f"tether:data/{path}", "name": path, "digest": {"blake3": _hex(oid)}})
    env = _env_doc(ws, record)
    for path, oid in sorted((env.get("lock_files") or {}).items()):
        lock = {"uri": f"tether:lock/{path}", "name": path}
        deps.append({**lock, "digest": {"blake3": _hex(str(oid))}})
    return intoto.slsa_provenance(
        build_type=BUILD_TYPE,
        external_parameters={
            "command": record.get("command"),
            "params": record.get("params") or {},
            "seeds": record.get("seeds") or {},
        },
        internal_parameters={"environment": record.get("env"), "run": v.run},
        resolved_dependencies=deps,
        builder_id="https://tether.dev/tether",
        builder_version=__version__,
        invocation_id=v.run,
        started_on=_iso(record.get("started")),
        finished_on=_iso(record.get("ended")),
    )


def _env_doc(ws: Workspace, record: dict[str, Any]) -> dict[str, Any]:
    try:
        doc: dict[str, Any] = json.loads(ws.store.read_bytes(record["env"]))
    except (KeyError, OSError, ValueError):
        return {}
    return doc


def _hex(oid: str) -> str:
    return oid.removeprefix(PREFIX)


def _iso(ts: float | None) -> datetime | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC)


@dataclass
class Verified:
    version: Version
    signer: str  # the identity the signing key is trusted for
    files: int


def verify(ws: Workspace, spec: str, folder: Path | None = None) -> Verified:
    """The signature against the keys this clone verifies with, then the files: in ``folder``,
    which must hold exactly the signed files (anything else there is named and fails), or in
    the cache."""
    state = load_state(ws)
    v = state.resolve(spec)
    if v.signature is None:  # a check that came out negative (exit 1), not an error
        raise VerificationError(f"{v.ref} is not signed: `tether model sign {v.name} {v.number}`")
    stmt, identity = _statement(ws, v, state)
    digests = {s["name"]: s["digest"]["sha256"] for s in stmt["subject"]}
    names = dict(files_of(ws, v))
    if set(digests) != set(names):
        raise VerificationError(f"{v.ref}: the signed files are not the version's files")
    if folder is not None:
        found = release_folder.problems(folder, digests)
        if found:
            raise VerificationError(f"{v.ref} in {folder}: {release_folder.summary(found)}")
        return Verified(v, identity, len(digests))
    for name, digest in digests.items():
        now = _sha256(ws, names[name], error=VerificationError)
        if now != digest:
            raise VerificationError(
                f"{v.ref}: {name} differs from what was signed (sha256 {now[:16]}…)"
            )
    return Verified(v, identity, len(digests))


def verifying_keys(ws: Workspace, state: State) -> dict[str, signing.TrustedKey]:
    """The keys a signature is checked against on this clone: the root's (else tether.toml's),
    and those trusted with ``keys trust --local``, which verify here and decide nothing."""
    local = keyconfig.trusted_keys(read_local(ws.root))
    return {**local, **deciding_keys(ws, state)}


def _statement(ws: Workspace, v: Version, state: State) -> tuple[dict[str, Any], str]:
    if v.signature is None:
        raise RegistryError(f"{v.ref} is not signed: `tether model sign {v.name} {v.number}`")
    envelope = json.loads(ws.store.read_bytes(v.signature))
    checked = signing.verify(envelope, verifying_keys(ws, state))
    if checked.payload_type != intoto.PAYLOAD_TYPE:
        raise RegistryError(f"{v.ref}: the signature is not over an in-toto statement")
    stmt: dict[str, Any] = json.loads(checked.payload)
    return stmt, checked.signer.identity


def signature_problem(ws: Workspace, state: State, v: Version) -> str | None:
    """Why ``v``'s signature does not count for the ``signed`` gate (None: it does): it must
    verify under the keys that decide, and its statement's subjects must be exactly this
    version's files, by name and BLAKE3 id (no file is hashed again)."""
    if v.signature is None:
        return "the version is not signed"
    try:
        envelope = json.loads(ws.store.read_bytes(v.signature))
        checked = signing.verify(envelope, deciding_keys(ws, state))
        stmt = json.loads(checked.payload)
        subjects = {s["name"]: s["digest"].get("blake3") for s in stmt["subject"]}
    except (TetherError, ValueError, KeyError, TypeError, AttributeError) as exc:
        return f"its signature does not verify ({exc})"
    if checked.payload_type != intoto.PAYLOAD_TYPE:
        return "its signature is not over an in-toto statement"
    files = {name: _hex(oid) for name, oid in files_of(ws, v)}
    if subjects != files:
        return "its signed statement is about other files than this version's"
    return None


def needs_signature(ws: Workspace, v: Version) -> bool:
    if bool((project_config(ws).get("registry") or {}).get("require_signature", False)):
        return True
    return (
        v.stage is not None
        and "signed" in load_policies(project_config(ws)).for_stage(v.stage).require
    )


def get(
    ws: Workspace, spec: str, out: Path, state: State | None = None, *, replace: bool = False
) -> Verified:
    """Write the version's files into ``out``, hashing as it copies: every file must match its
    object id, and (when its stage requires a signature) the signed sha256 too. ``out`` must be
    new or empty (``replace``: a folder Tether owns, swapped for the new one): the files are
    written beside it and renamed into place, so it ends holding exactly the version's files."""
    state = state or load_state(ws)
    v = state.resolve(spec)
    signed: dict[str, dict[str, str]] | None = None
    identity = ""
    if needs_signature(ws, v):
        stmt, identity = _statement(ws, v, state)
        signed = {s["name"]: s["digest"] for s in stmt["subject"]}
    files = files_of(ws, v)  # every name checked before anything is written

    def write(folder: Path) -> None:
        guard = WriteGuard(folder)  # and at each write: no symlinked folder on the way
        for name, oid in files:
            dest = Path(guard.file(name))
            digest = None if signed is None else signed.get(name, {"sha256": "?"})
            # the signature names the BLAKE3 id itself: checking the bytes against the id is
            # checking them against what was signed (older statements: sha256 as well)
            blake = None if digest is None else digest.get("blake3")
            sha256 = None if digest is None or blake == _hex(oid) else digest["sha256"]
            _copy_checked(ws, oid, dest, sha256)

    (release_folder.replaced if replace else release_folder.fresh)(out, write)
    return Verified(v, identity, len(files))


def _each(chunks: Iterator[bytes], use: Any) -> None:
    for chunk in chunks:
        use(chunk)


def _copy_checked(ws: Workspace, oid: str, dest: Path, sha256: str | None) -> None:
    """Copy one object out and check its bytes: BLAKE3 against its id and, for a signed release
    whose statement does not name the BLAKE3 id, sha256 against the signed digest. ``dest`` is
    in a folder being built beside the destination (``release_folder``): a bad copy fails the
    whole release, so no temporary name (which a version's own files could use) is needed."""
    from blake3 import blake3

    if dest.exists() or dest.is_symlink():
        raise RegistryError(f"{dest.name} is written twice: the version's file list is damaged")
    own = blake3(max_threads=blake3.AUTO)
    signed = hashlib.sha256() if sha256 is not None else None

    def hash_chunk(chunk: bytes) -> None:
        own.update(chunk)
        if signed is not None:
            signed.update(chunk)

    loose = ws.store.loose_path(oid)
    if loose is not None:
        # the kernel copies the file (copy_file_range/sendfile, as cp does) while a second
        # thread reads the same cached bytes and hashes them
        with ThreadPoolExecutor(1) as hashing:
            done = hashing.submit(_each, _chunks(ws, oid), hash_chunk)
            shutil.copyfile(loose, dest)
            done.result()
    else:  # a packed object: its bytes are in memory already
        data = ws.store.read_bytes(oid)
        hash_chunk(data)
        dest.write_bytes(data)
    checks = [("their id", own.hexdigest(), _hex(oid))]
    if signed is not None and sha256 is not None:
        checks.append(("the signed digest", signed.hexdigest(), sha256))
    for what, got, want in checks:
        if got != want:
            raise RegistryError(
                f"{dest.name}: the stored bytes do not match {what} ({got[:16]}… instead of "
                f"{want[:16]}…): the cache copy is damaged or was changed; run `tether fsck` "
                "and `tether pull`"
            )
