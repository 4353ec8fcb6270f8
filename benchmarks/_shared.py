"""What the benchmarks share: running an untimed setup command, snapshotting Tether's source,
writing the results. Standard library only (it is also imported by the run-tracking worker,
inside MLflow's virtual environment)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any


class CommandError(RuntimeError):
    pass


def tail(text: str, lines: int = 15) -> str:
    return "\n".join(text.rstrip().splitlines()[-lines:])


def run(argv: list[Any], cwd: Path | None = None, env: dict[str, str] | None = None) -> str:
    """An untimed setup command; a failure raises CommandError carrying its output."""
    args = [str(a) for a in argv]
    try:
        proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, check=True)
    except subprocess.CalledProcessError as exc:
        raise CommandError(
            f"`{' '.join(args)}` failed with exit code {exc.returncode} in {cwd}:\n"
            + tail(exc.stdout + exc.stderr)
        ) from exc
    return proc.stdout


def chosen_workloads(parser: Any, opts: Any, known: Any) -> list[str]:
    """The comma list in ``opts.workloads``, each one of ``known`` (else a usage error)."""
    names = [n.strip() for n in opts.workloads.split(",") if n.strip()]
    unknown = [n for n in names if n not in known]
    if unknown or not names:
        parser.error(f"unknown workload(s) {unknown}: choose from {', '.join(known)}")
    return names


PROJECT = Path(__file__).resolve().parent.parent


def snapshot_tether(dest: Path, python: Any, env: dict[str, str]) -> None:
    """Copy src/tether to ``dest``, so edits made while a benchmark runs do not change what it
    runs, and check that ``python`` with ``env`` imports that copy."""
    shutil.rmtree(dest, ignore_errors=True)
    ignore = shutil.ignore_patterns("__pycache__")
    shutil.copytree(PROJECT / "src" / "tether", dest / "tether", ignore=ignore)
    where = run([python, "-c", "import tether; print(tether.__file__)"], env=env).strip()
    if not where.startswith(str(dest)):
        raise CommandError(f"the Tether snapshot is not the one imported: {where}")


def write_results(out: Path, doc: dict[str, Any], errors: list[str], seconds: float) -> int:
    """Print the failures, write ``doc`` (with ``errors``) as JSON; the exit status."""
    for error in errors:
        print(f"FAILED: {error}")
    out.write_text(json.dumps({**doc, "errors": errors}, indent=2, default=str) + "\n")
    print(f"\nresults: {out} ({seconds} s)", flush=True)
    return 1 if errors else 0
