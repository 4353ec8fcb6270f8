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
