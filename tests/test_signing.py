"""Keys, DSSE envelopes (tether.signing) and in-toto statements (tether.intoto)."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tests.conftest import make_repo
from tether.errors import ConfigError, FormatError
from tether.intoto import (
    PAYLOAD_TYPE as IN_TOTO_PAYLOAD_TYPE,
)
from tether.intoto import (
    SLSA_PROVENANCE_TYPE,
    STATEMENT_TYPE,
    sha256_file,
    sign_statement,
    slsa_provenance,
    statement,
    verify_statement,
)
from tether.keyconfig import groups, identity_has, trust_key, trusted_keys
from tether.signing import (
    SignatureError,
    Signer,
    SigningKeyError,
    TrustedKey,
    generate,
    load_signer,
    local_keys,
    pae,
    verify,
)

# RFC 8032, section 7.1, TEST 1
RFC_SEED = bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
RFC_PUBLIC = bytes.fromhex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("TETHER_SIGNING_KEY", "TETHER_KEY_PASSPHRASE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TETHER_KEYS_DIR", str(tmp_path / "default-keys"))


def signer_from(seed: bytes) -> Signer:
    return Signer(Ed25519PrivateKey.from_private_bytes(seed))


def trusted_for(*signers: Signer, roles: tuple[str, ...] = ()) -> dict[str, TrustedKey]:
    return {
        s.keyid: TrustedKey(s.keyid, f"user{i}@example.com", frozenset(roles), s.public_pem)
        for i, s in enumerate(signers)
    }


def config_for(*signers: Signer) -> dict[str, Any]:
    return {
        "keys": {
            s.keyid: {
                "identity": f"user{i}@example.com",
                "roles": ["approver"],
                "public": s.public_pem,
            }
            for i, s in enumerate(signers)
        }
    }


# -- PAE and key ids -------------------------------------------------------------------------------
def test_pae_matches_the_dsse_spec_vector() -> None:
    # len("http://example.com/HelloWorld") = 7 + 11 + 11 = 29; len("hello world") = 11
    assert (
        pae("http://example.com/HelloWorld", b"hello world")
        == b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
    )


def test_pae_counts_bytes_not_characters() -> None:
    assert pae("t\u00e9", b"") == b"DSSEv1 3 t\xc3\xa9 0 "  # "é" is two bytes in UTF-8
    assert pae("a", b"x y\n") == b"DSSEv1 1 a 4 x y\n"


def test_key_id_is_sha256_of_the_raw_public_key() -> None:
    signer = signer_from(RFC_SEED)
    assert signer.keyid == "ed25519:" + hashlib.sha256(RFC_PUBLIC).hexdigest()[:32]
    assert signer.keyid == "ed25519:21fe31dfa154a261626bf854046fd227"


# -- generating and loading keys -------------------------------------------------------------------
def test_generate_writes_a_0600_private_key_and_its_public_half(tmp_path: Path) -> None:
    key = generate("alice@example.com", tmp_path / "keys")
    hexid = key.keyid.removeprefix("ed25519:")
    assert len(hexid) == 32
    assert key.private_path == tmp_path / "keys" / f"{hexid}.pem"
    assert key.private_path.stat().st_mode & 0o777 == 0o600
    assert b"BEGIN PRIVATE KEY" in key.private_path.read_bytes()  # PKCS8, unencrypted
    assert key.public_path.read_text() == key.public_pem
    assert "BEGIN PUBLIC KEY" in key.public_pem
    sidecar = json.loads(key.private_path.with_suffix(".json").read_text())
    assert sidecar["identity"] == "alice@example.com" and sidecar["format"] == 1
    assert local_keys(tmp_path / "keys") == [key]
    signer = load_signer(keys_dir=tmp_path / "keys")
    assert signer.keyid == key.keyid and signer.public_pem == key.public_pem


def test_generate_uses_the_keys_dir_from_the_environment(tmp_path: Path) -> None:
    key = generate("alice@example.com")
    assert key.private_path.parent == tmp_path / "default-keys"


def test_generate_refuses_a_folder_inside_a_git_repository(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    with pytest.raises(SigningKeyError, match="never live in a repository"):
        generate("alice@example.com", repo / "secrets" / "keys")
    assert not (repo / "secrets").exists()


def test_generate_refuses_an_identity_that_is_not_an_email(tmp_path: Path) -> None:
    with pytest.raises(SigningKeyError, match="not an identity"):
        generate("alice", tmp_path / "keys")


def test_a_private_key_open_to_others_is_refused(tmp_path: Path) -> None:
    key = generate("alice@example.com", tmp_path / "keys")
    os.chmod(key.private_path, 0o644)
    with pytest.raises(SigningKeyError, match=r"mode 0644.*chmod 600 "):
        load_signer(keys_dir=tmp_path / "keys")
    os.chmod(key.private_path, 0o600)
    assert load_signer(keys_dir=tmp_path / "keys").keyid == key.keyid


def test_load_signer_chooses_a_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "keys"
    with pytest.raises(SigningKeyError, match="tether keys generate"):
        load_signer(keys_dir=folder)
    a = generate("alice@example.com", folder)
    b = generate("bob@example.com", folder)
    with pytest.raises(SigningKeyError, match="TETHER_SIGNING_KEY") as err:
        load_signer(keys_dir=folder)
    assert a.keyid in str(err.value) and b.keyid in str(err.value)
    assert load_signer(b.keyid, keys_dir=folder).keyid == b.keyid
    monkeypatch.setenv("TETHER_SIGNING_KEY", a.keyid)
    assert load_signer(keys_dir=folder).keyid == a.keyid
    monkeypatch.setenv("TETHER_SIGNING_KEY", str(b.private_path))
    assert load_signer(keys_dir=folder).keyid == b.keyid
    with pytest.raises(SigningKeyError, match="no private key ed25519:00"):
        load_signer("ed25519:" + "0" * 32, keys_dir=folder)


def test_a_passphrase_encrypts_the_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TETHER_KEY_PASSPHRASE", "correct horse")
    key = generate("alice@example.com", tmp_path / "keys")
    assert b"ENCRYPTED PRIVATE KEY" in key.private_path.read_bytes()
    assert load_signer(keys_dir=tmp_path / "keys").keyid == key.keyid
    monkeypatch.setenv("TETHER_KEY_PASSPHRASE", "wrong")
    with pytest.raises(SigningKeyError, match="wrong TETHER_KEY_PASSPHRASE"):
        load_signer(keys_dir=tmp_path / "keys")
    monkeypatch.delenv("TETHER_KEY_PASSPHRASE")
    with pytest.raises(SigningKeyError, match="set TETHER_KEY_PASSPHRASE"):
        load_signer(keys_dir=tmp_path / "keys")


# -- signing and verifying -------------------------------------------------------------------------
def test_sign_verify_round_trip() -> None:
    signer = signer_from(RFC_SEED)
    envelope = signer.sign("application/vnd.test+json", b'{"a": 1}')
    assert envelope["payloadType"] == "application/vnd.test+json"
    assert base64.b64decode(envelope["payload"]) == b'{"a": 1}'
    assert [s["keyid"] for s in envelope["signatures"]] == [signer.keyid]
    verified = verify(json.dumps(envelope), trusted_for(signer, roles=("approver",)))
    assert verified.payload == b'{"a": 1}' and verified.json() == {"a": 1}
    assert verified.signer.identity == "user0@example.com" and "approver" in verified.signer.roles
    # the signature is over the PAE, not over the bare payload
    key = Ed25519PrivateKey.from_private_bytes(RFC_SEED).public_key()
    key.verify(
        base64.b64decode(envelope["signatures"][0]["sig"]),
        pae(envelope["payloadType"], b'{"a": 1}'),
    )


def test_a_signature_by_an_untrusted_key_is_refused() -> None:
    stranger, known = signer_from(b"\x01" * 32), signer_from(b"\x02" * 32)
    envelope = stranger.sign("t", b"payload")
    with pytest.raises(SignatureError, match=f"{stranger.keyid} is not a trusted key"):
        verify(envelope, trusted_for(known))


def test_a_tampered_payload_is_refused() -> None:
    signer = signer_from(RFC_SEED)
    envelope = signer.sign("t", b"approve v1")
    envelope["payload"] = base64.b64encode(b"approve v2").decode()
    with pytest.raises(SignatureError, match=f"signature by {signer.keyid} does not verify"):
        verify(envelope, trusted_for(signer))
    envelope = signer.sign("t", b"approve v1")
    envelope["payloadType"] = "u"  # the type is signed too
    with pytest.raises(SignatureError, match="does not verify"):
        verify(envelope, trusted_for(signer))


def test_a_signature_claiming_another_trusted_key_id_is_refused() -> None:
    mallory, alice = signer_from(b"\x01" * 32), signer_from(b"\x02" * 32)
    envelope = mallory.sign("t", b"approve")
    envelope["signatures"][0]["keyid"] = alice.keyid
    with pytest.raises(SignatureError, match=f"signature by {alice.keyid} does not verify"):
        verify(envelope, trusted_for(alice))


def test_one_trusted_signature_among_others_is_enough() -> None:
    stranger, alice = signer_from(b"\x01" * 32), signer_from(b"\x02" * 32)
    envelope = stranger.sign("t", b"x")
    envelope["signatures"] += alice.sign("t", b"x")["signatures"]
    assert verify(envelope, trusted_for(alice)).signer.keyid == alice.keyid


def test_url_safe_base64_is_accepted() -> None:
    signer = signer_from(RFC_SEED)
    envelope = signer.sign("t", b"\xfb\xff" * 10)
    envelope["payload"] = base64.urlsafe_b64encode(b"\xfb\xff" * 10).decode().rstrip("=")
    assert verify(envelope, trusted_for(signer)).payload == b"\xfb\xff" * 10


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda e: e.update(payload="not base64!"), "payload is not valid base64"),
        (lambda e: e["signatures"][0].update(sig="%%%"), "signature by .* is not valid base64"),
        (lambda e: e.update(signatures=[]), "no signatures"),
        (lambda e: e.pop("payloadType"), "payloadType and payload are required"),
        (lambda e: e["signatures"][0].pop("keyid"), "has no key id"),
    ],
)
def test_malformed_envelopes_are_refused(change: Any, message: str) -> None:
    signer = signer_from(RFC_SEED)
    envelope = signer.sign("t", b"x")
    change(envelope)
    with pytest.raises(SignatureError, match=message):
        verify(envelope, trusted_for(signer))


def test_an_envelope_that_is_not_json_is_refused() -> None:
    with pytest.raises(SignatureError, match="not JSON"):
        verify(b"{not json", {})
    with pytest.raises(SignatureError, match="not a JSON object"):
        verify("[1, 2]", {})


# -- trusted keys in config ------------------------------------------------------------------------
def test_trusted_keys_from_config() -> None:
    alice = signer_from(RFC_SEED)
    keys = trusted_keys(config_for(alice))
    assert keys == {
        alice.keyid: TrustedKey(
            alice.keyid, "user0@example.com", frozenset({"approver"}), alice.public_pem
        )
    }
    assert trusted_keys({}) == {}


def test_trusted_keys_refuse_an_id_that_does_not_match_the_key() -> None:
    alice, bob = signer_from(b"\x01" * 32), signer_from(b"\x02" * 32)
    data = config_for(alice)
    data["keys"][alice.keyid]["public"] = bob.public_pem
    with pytest.raises(
        ConfigError, match=rf'\[keys."{alice.keyid}"\] holds the public key {bob.keyid}'
    ):
        trusted_keys(data)


def test_trusted_keys_refuse_a_private_key(tmp_path: Path) -> None:
    key = generate("alice@example.com", tmp_path / "keys")
    data = config_for(signer_from(RFC_SEED))
    entry = next(iter(data["keys"].values()))
    entry["public"] = key.private_path.read_text()
    with pytest.raises(ConfigError, match="that is a private key"):
        trusted_keys(data)


def test_trusted_keys_refuse_unknown_fields_and_bad_values() -> None:
    alice = signer_from(RFC_SEED)
    data = config_for(alice)
    data["keys"][alice.keyid]["revoked"] = True
    with pytest.raises(ConfigError, match=r"unknown fields \['revoked'\]"):
        trusted_keys(data)
    data = config_for(alice)
    data["keys"][alice.keyid]["roles"] = "approver"
    with pytest.raises(ConfigError, match="roles must be a list"):
        trusted_keys(data)


def test_groups_and_identity_has() -> None:
    g = groups({"groups": {"ml-leads": ["alice@example.com", "bob@example.com"]}})
    assert g == {"ml-leads": frozenset({"alice@example.com", "bob@example.com"})}
    assert identity_has("alice@example.com", "group:ml-leads", g)
    assert not identity_has("carol@example.com", "group:ml-leads", g)
    assert identity_has("carol@example.com", "carol@example.com", g)
    assert not identity_has("Carol@example.com", "carol@example.com", g)
    with pytest.raises(ConfigError, match="no group 'ops'"):
        identity_has("alice@example.com", "group:ops", g)
    with pytest.raises(ConfigError, match=r"groups\.x must be a list of identities"):
        groups({"groups": {"x": "alice@example.com"}})


def test_trust_key_appends_keeps_comments_and_updates(tmp_path: Path) -> None:
    import tomllib

    path = tmp_path / "tether.toml"
    path.write_text('# keep me\nformat = 1\n\n[cache]\nlink = "copy"  # and me\n')
    alice, bob = signer_from(b"\x01" * 32), signer_from(b"\x02" * 32)
    trust_key(path, alice.public_pem, "alice@example.com", ["approver"])
    trust_key(path, bob.public_pem, "bob@example.com")
    text = path.read_text()
    assert "# keep me" in text and "# and me" in text
    keys = trusted_keys(tomllib.loads(text))
    assert keys[alice.keyid].roles == {"approver"} and keys[bob.keyid].roles == set()
    trust_key(path, bob.public_pem, "bob@example.com", ["approver", "requester"])
    data = tomllib.loads(path.read_text())
    assert trusted_keys(data)[bob.keyid].roles == {"approver", "requester"}
    assert data["cache"] == {"link": "copy"} and len(data["keys"]) == 2


def test_trust_key_refuses_a_private_key(tmp_path: Path) -> None:
    key = generate("alice@example.com", tmp_path / "keys")
    path = tmp_path / "tether.toml"
    with pytest.raises(ConfigError, match="private key"):
        trust_key(path, key.private_path.read_text(), "alice@example.com")
    assert not path.exists()


# -- in-toto statements and SLSA provenance --------------------------------------------------------
def provenance() -> dict[str, Any]:
    start = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
    return slsa_provenance(
        build_type="https://tether.dev/run/v1",
        external_parameters={"params": {"lr": 0.1}, "seeds": {"python": 42}},
        internal_parameters={"command": ["python", "train.py"]},
        resolved_dependencies=[
            {"uri": "git+file:///repo", "digest": {"gitCommit": "ab" * 20}},
            {"uri": "tether:data/train", "digest": {"blake3": "cd" * 32}, "name": "data/train"},
        ],
        builder_id="https://tether.dev/tether",
        builder_version="0.1.0",
        invocation_id="0190-run",
        started_on=start,
        finished_on=start + timedelta(minutes=5),
    )


def test_statement_subjects_are_sha256_of_the_files(tmp_path: Path) -> None:
    files = {"model.pt": b"weights" * 1000, "config.json": b"{}"}
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    subjects = [(name, sha256_file(tmp_path / name)) for name in sorted(files)]
    doc = statement(subjects, SLSA_PROVENANCE_TYPE, provenance())
    assert doc["_type"] == STATEMENT_TYPE == "https://in-toto.io/Statement/v1"
    assert doc["predicateType"] == "https://slsa.dev/provenance/v1"
    for entry in doc["subject"]:
        assert entry["digest"] == {"sha256": hashlib.sha256(files[entry["name"]]).hexdigest()}
    with pytest.raises(FormatError, match="not a sha256"):
        statement([("model.pt", "blake3:" + "0" * 64)], SLSA_PROVENANCE_TYPE, {})
    with pytest.raises(FormatError, match="at least one subject"):
        statement([], SLSA_PROVENANCE_TYPE, {})


def test_provenance_has_the_slsa_v1_shape() -> None:
    doc = provenance()
    definition, details = doc["buildDefinition"], doc["runDetails"]
    assert definition["buildType"] == "https://tether.dev/run/v1"
    assert definition["externalParameters"]["seeds"] == {"python": 42}
    assert definition["internalParameters"] == {"command": ["python", "train.py"]}
    assert definition["resolvedDependencies"][0]["digest"] == {"gitCommit": "ab" * 20}
    assert details["builder"] == {"id": "https://tether.dev/tether", "version": {"tether": "0.1.0"}}
    assert details["metadata"] == {
        "invocationId": "0190-run",
        "startedOn": "2025-01-02T03:04:05Z",
        "finishedOn": "2025-01-02T03:09:05Z",
    }
    json.dumps(doc, allow_nan=False)


def test_provenance_refuses_bad_input() -> None:
    base: dict[str, Any] = {
        "build_type": "b",
        "external_parameters": {},
        "builder_id": "x",
        "builder_version": "1",
    }
    with pytest.raises(FormatError, match="needs a uri and a digest"):
        slsa_provenance(resolved_dependencies=[{"uri": "git+file:///r"}], **base)
    with pytest.raises(FormatError, match="is not hex"):
        slsa_provenance(resolved_dependencies=[{"uri": "u", "digest": {"sha256": "xyz"}}], **base)
    with pytest.raises(FormatError, match="no time zone"):
        slsa_provenance(resolved_dependencies=[], started_on=datetime(2025, 1, 1), **base)
    with pytest.raises(FormatError, match="cannot be written as JSON"):
        slsa_provenance(
            **{**base, "external_parameters": {"f": float("nan")}}, resolved_dependencies=[]
        )


def test_signed_statement_round_trip(tmp_path: Path) -> None:
    signer = signer_from(RFC_SEED)
    (tmp_path / "model.pt").write_bytes(b"w")
    doc = statement(
        [("model.pt", sha256_file(tmp_path / "model.pt"))], SLSA_PROVENANCE_TYPE, provenance()
    )
    envelope = sign_statement(signer, doc)
    assert envelope["payloadType"] == IN_TOTO_PAYLOAD_TYPE
    body, who = verify_statement(envelope, trusted_for(signer))
    assert body == doc and who.keyid == signer.keyid
    with pytest.raises(SignatureError, match="expected an in-toto statement"):
        verify_statement(signer.sign("text/plain", b"hi"), trusted_for(signer))


def test_importing_signing_does_not_import_cryptography() -> None:
    code = "import sys, tether.signing; print('cryptography' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
