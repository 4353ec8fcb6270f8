"""The vendored JavaScript is what its manifest says: each file's SRI hash matches, each package
ships its licence, and the pages load only vendored or Tether's own files (no CDN)."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from pathlib import Path

import pytest

UI = Path(__file__).resolve().parents[2] / "src" / "tether" / "ui"
VENDOR = UI / "static" / "vendor"


@pytest.mark.parametrize("folder", [VENDOR, Path(__file__).resolve().parent / "vendor"])
def test_vendored_files_match_their_integrity_hashes(folder: Path) -> None:
    manifest = json.loads((folder / "vendor.json").read_text())
    assert manifest, "nothing vendored"
    for name, entry in manifest.items():
        digest = hashlib.sha384((folder / name).read_bytes()).digest()
        assert entry["integrity"] == "sha384-" + base64.b64encode(digest).decode(), name
    packages = {e["package"] for e in manifest.values()}
    for package in packages:
        assert any(
            n.endswith(".LICENSE") and e["package"] == package for n, e in manifest.items()
        ), f"{package} ships no licence"
    on_disk = {p.name for p in folder.iterdir()} - {"vendor.json"}
    assert on_disk == set(manifest), "a vendored file is not in the manifest (or one is missing)"


def test_pages_load_nothing_from_another_origin() -> None:
    for template in (UI / "templates").glob("*.html"):
        text = template.read_text()
        for url in re.findall(r'(?:src|href)="([^"]+)"', text):
            assert url.startswith(("/", "#", "{{")), f"{template.name} loads {url}"
        assert "<script>" not in text, f"{template.name} has an inline script (the CSP refuses it)"
