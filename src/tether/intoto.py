"""in-toto Statements v1 with SLSA provenance v1 predicates: what a signed release says about
its files (``tether model sign``), in the shape supply-chain tools read, and its DSSE envelope.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tether.errors import FormatError, SignatureError
from tether.signing import Signer, TrustedKey, verify

PAYLOAD_TYPE = "application/vnd.in-toto+json"  # a statement's DSSE payload type
STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
SLSA_PROVENANCE_TYPE = "https://slsa.dev/provenance/v1"
_HEX = re.compile(r"[0-9a-f]+")


def sha256_file(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def statement(
    subjects: Sequence[tuple[str, str]], predicate_type: str, predicate: Mapping[str, Any]
) -> dict[str, Any]:
    """An in-toto Statement v1 about ``subjects``: (name, sha256 hex) pairs."""
    if not subjects:
        raise FormatError("an in-toto statement needs at least one subject")
    for name, digest in subjects:
        if not name or not (len(digest) == 64 and _HEX.fullmatch(digest)):
            raise FormatError(f"subject {name!r}: {digest!r} is not a sha256 hex digest")
    return {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": name, "digest": {"sha256": digest}} for name, digest in subjects],
        "predicateType": predicate_type,
        "predicate": _json_copy(predicate, "the predicate"),
    }


def slsa_provenance(
    *,
    build_type: str,
    external_parameters: Mapping[str, Any],
    resolved_dependencies: Sequence[Mapping[str, Any]],
    builder_id: str,
    builder_version: str,
    internal_parameters: Mapping[str, Any] | None = None,
    invocation_id: str | None = None,
    started_on: datetime | None = None,
    finished_on: datetime | None = None,
) -> dict[str, Any]:
    """A SLSA provenance v1 predicate (``predicateType`` is :data:`SLSA_PROVENANCE_TYPE`).

    ``resolved_dependencies`` are resource descriptors: ``{"uri", "digest": {alg: hex},
    "name"?}``, e.g. ``{"uri": "git+https://...", "digest": {"gitCommit": "ab12..."}}``.
    """
    deps = []
    for dep in resolved_dependencies:
        digest = dep.get("digest")
        if not isinstance(dep.get("uri"), str) or not isinstance(digest, Mapping) or not digest:
            raise FormatError(f"resolved dependency {dict(dep)!r} needs a uri and a digest")
        for alg, value in digest.items():
            if not isinstance(value, str) or not _HEX.fullmatch(value):
                raise FormatError(f"dependency {dep['uri']}: digest {alg}={value!r} is not hex")
        deps.append(_json_copy(dep, f"dependency {dep['uri']}"))
    definition: dict[str, Any] = {
        "buildType": build_type,
        "externalParameters": _json_copy(external_parameters, "external parameters"),
    }
    if internal_parameters:
        definition["internalParameters"] = _json_copy(internal_parameters, "internal parameters")
    definition["resolvedDependencies"] = deps
    metadata: dict[str, str] = {}
    if invocation_id:
        metadata["invocationId"] = invocation_id
    for field, when in (("startedOn", started_on), ("finishedOn", finished_on)):
        if when is not None:
            metadata[field] = _timestamp(when)
    details: dict[str, Any] = {
        "builder": {"id": builder_id, "version": {"tether": builder_version}}
    }
    if metadata:
        details["metadata"] = metadata
    return {"buildDefinition": definition, "runDetails": details}


def _timestamp(when: datetime) -> str:
    if when.tzinfo is None:
        raise FormatError(f"{when} has no time zone: provenance times are UTC (RFC 3339)")
    return when.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _json_copy(value: Mapping[str, Any], what: str) -> dict[str, Any]:
    try:
        copy: dict[str, Any] = json.loads(json.dumps(value, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise FormatError(f"{what} cannot be written as JSON ({exc})") from exc
    return copy


def sign_statement(signer: Signer, statement: Mapping[str, Any]) -> dict[str, Any]:
    """A DSSE envelope of ``statement`` as compact, key-sorted JSON."""
    body = json.dumps(statement, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return signer.sign(PAYLOAD_TYPE, body.encode())


def verify_statement(
    envelope: Mapping[str, Any] | bytes | str, trusted: Mapping[str, TrustedKey]
) -> tuple[dict[str, Any], TrustedKey]:
    """:func:`verify`, then check that the payload is an in-toto Statement v1."""
    verified = verify(envelope, trusted)
    if verified.payload_type != PAYLOAD_TYPE:
        raise SignatureError(f"expected an in-toto statement, got {verified.payload_type!r}")
    body = verified.json()
    if not isinstance(body, dict) or body.get("_type") != STATEMENT_TYPE:
        raise SignatureError(
            f"the signed payload is not an in-toto Statement v1 ({STATEMENT_TYPE})"
        )
    return body, verified.signer
