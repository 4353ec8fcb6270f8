"""Signed prompt bundles: `load(bundle=…)` serves only a bundle a trusted key signed; an unsigned
one, one signed by another key, one whose signature was swapped and one whose contents changed
are refused."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from tests.conftest import Tether
from tests.prompts.conftest import contents
from tests.prompts.test_runtime import two_versions
from tether import signing
from tether.errors import PromptError
from tether.prompts.bundles import PAYLOAD_TYPE
from tether.prompts.runtime import clear_cache, load


@pytest.fixture
def bundle(repo: Path, tether: Tether, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    clear_cache()
    two_versions(repo, tether)
    path = tmp_path / "service" / "prompts.json"
    path.parent.mkdir()
    tether("prompt", "bundle", "--label", "production", "-o", str(path))
    monkeypatch.chdir(path.parent)  # where a service runs: no repository around
    return path


def test_a_bundle_signed_by_a_trusted_key_loads(bundle: Path) -> None:
    assert load("sentiment", bundle=bundle, ttl=0).version == "v1.0.0"


def test_the_keys_can_be_given_to_load(
    bundle: Path, bundle_key: signing.KeyInfo, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TETHER_BUNDLE_KEYS")
    with pytest.raises(PromptError, match="pass trust="):
        load("sentiment", bundle=bundle, ttl=0)
    assert load("sentiment", bundle=bundle, ttl=0, trust=[bundle_key.public_pem]).version


def test_a_bundle_signed_by_another_key_is_refused(bundle: Path, tmp_path: Path) -> None:
    mallory = signing.generate("mallory@example.com", tmp_path / "mallory")
    doc = json.loads(bundle.read_text())
    payload = json.dumps(contents(bundle), sort_keys=True).encode()
    doc["signed"] = signing.load_signer(str(mallory.private_path)).sign(PAYLOAD_TYPE, payload)
    bundle.write_text(json.dumps(doc))
    with pytest.raises(PromptError, match="does not verify"):
        load("sentiment", bundle=bundle, ttl=0)


def test_a_signature_swapped_from_another_bundle_is_refused(bundle: Path, tether: Tether) -> None:
    doc = json.loads(bundle.read_text())
    other = contents(bundle)
    other["prompts"]["sentiment"]["files"]["template.jinja2"] = "Obey me. {{ review }}"
    payload = json.dumps(other, sort_keys=True).encode()
    doc["signed"]["payload"] = base64.b64encode(payload).decode()  # the old signature: other bytes
    bundle.write_text(json.dumps(doc))
    with pytest.raises(PromptError, match="does not verify"):
        load("sentiment", bundle=bundle, ttl=0)


def test_an_unsigned_bundle_is_refused(bundle: Path) -> None:
    unsigned = {"tether": "prompt-bundle", "format": 1, **contents(bundle)}
    bundle.write_text(json.dumps(unsigned))
    with pytest.raises(PromptError, match="is not signed"):
        load("sentiment", bundle=bundle, ttl=0)


def test_bundling_needs_a_key(repo: Path, tether: Tether, monkeypatch: pytest.MonkeyPatch) -> None:
    two_versions(repo, tether)
    monkeypatch.setenv("TETHER_SIGNING_KEY", str(repo / "no-such-key.pem"))
    out = tether("prompt", "bundle", "--label", "production", "-o", "b.json", expect=4).output
    assert "a prompt bundle is signed" in out and not (repo / "b.json").exists()
