"""Prompt bundles are signed: every test here has a signing key (``TETHER_SIGNING_KEY``) whose
public half verifies bundles (``TETHER_BUNDLE_KEYS``), and helpers to read and re-sign one."""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tether import signing
from tether.prompts.bundles import PAYLOAD_TYPE


@pytest.fixture(autouse=True, scope="session")
def bundle_key(tmp_path_factory: pytest.TempPathFactory) -> Iterator[signing.KeyInfo]:
    """Session-wide (property tests take no function-scoped fixture); a test that acts as
    someone else sets ``TETHER_SIGNING_KEY`` itself, through monkeypatch."""
    folder = tmp_path_factory.mktemp("bundle-key")
    key = signing.generate("bundler@example.com", folder / "keys")
    public = folder / "bundler.pub.pem"
    public.write_text(key.public_pem)
    saved = {k: os.environ.get(k) for k in (signing.SIGNING_KEY_ENV, "TETHER_BUNDLE_KEYS")}
    os.environ[signing.SIGNING_KEY_ENV] = str(key.private_path)
    os.environ["TETHER_BUNDLE_KEYS"] = str(public)
    yield key
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def contents(bundle: Path) -> dict[str, Any]:
    """What a bundle's signature covers."""
    doc = json.loads(bundle.read_text())
    return dict(json.loads(base64.b64decode(doc["signed"]["payload"])))


def rewrite(bundle: Path, new: dict[str, Any], *, sign: bool) -> None:
    """Put ``new`` in the bundle: re-signed by the trusted key (``sign``: an insider, or a
    bundle whose signer was careless), or keeping the old signature (an outsider's edit)."""
    doc = json.loads(bundle.read_text())
    payload = json.dumps(new, sort_keys=True).encode()
    if sign:
        doc["signed"] = signing.load_signer().sign(PAYLOAD_TYPE, payload)
    else:
        doc["signed"]["payload"] = base64.b64encode(payload).decode()
    bundle.write_text(json.dumps(doc))
