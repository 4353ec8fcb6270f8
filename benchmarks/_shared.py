"""What both benchmarks share: running an untimed setup command. Standard library only (it is
also imported by the run-tracking worker, inside MLflow's virtual environment)."""

from __future__ import annotations

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
