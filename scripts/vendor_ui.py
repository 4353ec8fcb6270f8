"""Re-vendor the web UI's JavaScript from npm at pinned versions (no Node toolchain is needed to
install or run Tether: the files are committed). ``python scripts/vendor_ui.py`` runs
``npm pack`` for each package below (npm checks the tarball against the registry's integrity),
copies the listed files and the licence into ``src/tether/ui/static/vendor/`` and writes
``vendor.json``: each file's package, version and SRI hash, which the pages put in their
``integrity`` attributes and a test checks against the files."""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
import tarfile
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent
VENDOR = HERE / "src" / "tether" / "ui" / "static" / "vendor"
TEST_VENDOR = HERE / "tests" / "ui" / "vendor"  # what only the tests load (axe-core)
TEST_PACKAGES: dict[str, tuple[str, dict[str, str]]] = {
    "axe-core": (
        "4.14.1",
        {"package/axe.min.js": "axe.min.js", "package/LICENSE": "axe-core.LICENSE"},
    ),
}
PACKAGES: dict[str, tuple[str, dict[str, str]]] = {
    "uplot": (
        "1.6.32",
        {
            "package/dist/uPlot.iife.min.js": "uPlot.iife.min.js",
            "package/dist/uPlot.min.css": "uPlot.min.css",
            "package/LICENSE": "uPlot.LICENSE",
        },
    ),
    "cytoscape": (
        "3.35.0",
        {
            "package/dist/cytoscape.min.js": "cytoscape.min.js",
            "package/LICENSE": "cytoscape.LICENSE",
        },
    ),
    "cytoscape-dagre": (  # dagre is bundled in its dist file
        "4.0.1",
        {
            "package/dist/cytoscape-dagre.min.js": "cytoscape-dagre.min.js",
            "package/LICENSE": "cytoscape-dagre.LICENSE",
        },
    ),
}


def integrity(data: bytes) -> str:
    return "sha384-" + base64.b64encode(hashlib.sha384(data).digest()).decode()


def main() -> None:
    vendor(PACKAGES, VENDOR)
    vendor(TEST_PACKAGES, TEST_VENDOR)


def vendor(packages: dict[str, tuple[str, dict[str, str]]], into: Path) -> None:
    into.mkdir(parents=True, exist_ok=True)
    manifest: dict[str, dict[str, str]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for package, (version, files) in packages.items():
            out = subprocess.run(
                ["npm", "pack", f"{package}@{version}", "--silent"],
                cwd=tmp, capture_output=True, text=True, check=True,
            ).stdout.strip().splitlines()[-1]  # fmt: skip
            with tarfile.open(Path(tmp) / out) as tar:
                for member, name in files.items():
                    extracted = tar.extractfile(member)
                    if extracted is None:
                        raise SystemExit(f"{package}@{version} has no file {member}")
                    data = extracted.read()
                    (into / name).write_bytes(data)
                    manifest[name] = {
                        "package": package,
                        "version": version,
                        "integrity": integrity(data),
                    }
    (into / "vendor.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    print(f"vendored {len(manifest)} files into {into}")


if __name__ == "__main__":
    main()
