"""What a run record could not capture, named so that ``tether diff`` and ``tether reproduce``
never blame nondeterminism while something uncaptured could explain a difference: an interpreter
that could not be inspected, code imported or run from outside the repository, files too big to
store, and what older records did not look at."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tether.capture.code import skipped_files
from tether.errors import MissingObjectError
from tether.workspace.repo import Workspace


def script_of(argv: list[str]) -> list[str]:
    """The command without the Python that runs it: which Python is the environment's part,
    and a script that started its own run records ``train.py ...`` (its ``sys.argv``), which
    ``tether reproduce`` re-runs as ``python train.py ...``."""
    import re

    if len(argv) > 1 and re.fullmatch(r"python[0-9.]*", argv[0].rsplit("/", 1)[-1]):
        return argv[1:] if not argv[1].startswith("-") else argv
    return argv


def uncaptured(ws: Workspace, record: dict[str, Any], label: str) -> list[str]:
    """What the record could not capture: while anything is listed, two runs whose captured
    pillars match may still differ by what was not captured, not only by nondeterminism."""
    out = []
    code, data = record.get("code") or {}, record.get("data") or {}
    from tether.runs.compare import environment

    try:
        env = environment(ws, record)
    except MissingObjectError:
        env = {}
    info = env.get("interpreter")
    if not env:
        out.append(f"{label}: its environment is not in this cache (`tether pull`)")
    elif isinstance(info, dict) and not info.get("known"):
        out.append(f"{label}: the command's Python environment ({info.get('reason')})")
    elif info is None and _foreign_command(record.get("command") or []):
        out.append(f"{label}: an older record: its environment may be Tether's interpreter's")
    out += [f"{label}: {what}" for what in outside_code(env, ws.root)]
    script = _script_outside(record, ws.root)
    if script:
        out.append(f"{label}: the script {script} is outside the repository, so not in its code")
    for path, item in skipped_files(code).items():
        out.append(f"{label}: untracked {path} ({item.get('size')} bytes), too big to store")
    if code.get("dirty") and "submodules" not in code:
        out.append(f"{label}: an older record: changes inside submodules were not captured")
    if data.get("pointers_start") and "modified" not in data:
        out.append(f"{label}: an older record: tracked data was not checked for edits")
    return out


def _script_outside(record: dict[str, Any], root: Path) -> str | None:
    """The ``.py`` file the command runs, when it lies outside the repository (by an absolute
    path, or a relative one from the folder the run started in)."""
    argv = script_of(list(record.get("command") or []))
    if not argv or not argv[0].endswith(".py"):
        return None
    script = Path(argv[0])
    if not script.is_absolute():
        script = root / str(record.get("cwd") or ".") / script
    return None if _within(str(script), root) else argv[0]


def outside_code(env: dict[str, Any], root: Path) -> list[str]:
    """Code the run could import from outside the repository, which the code pillar does not
    hold: editable installs of other source trees, and ``PYTHONPATH`` folders (Tether's own
    source, the recorder, is not the run's code)."""
    out = []
    for name, info in sorted((env.get("packages") or {}).items()):
        source = info.get("source") if isinstance(info, dict) else None
        if isinstance(source, dict) and source.get("editable") and name != "tether-ml":
            where = _local(str(source.get("url") or ""))
            if where is None or _within(where, root) or source.get("dirty") is False:
                continue  # inside the repository, or a clean checkout of a recorded commit
            said = "its uncommitted changes are" if source.get("dirty") else "its source is"
            out.append(f"editable install {name} from {where}: {said} not recorded")
    for entry in env.get("pythonpath") or []:
        if not _within(str(entry), root) and not (Path(entry) / "tether" / "__init__.py").exists():
            out.append(f"PYTHONPATH folder {entry}: its code is not recorded")
    return out


def _local(url: str) -> str | None:
    from urllib.parse import unquote, urlparse

    parsed = urlparse(url)
    return unquote(parsed.path) if parsed.scheme == "file" else None


def _within(path: str, root: Path) -> bool:
    try:
        Path(path).resolve().relative_to(root.resolve())
    except (ValueError, OSError):
        return False
    return True


def _foreign_command(argv: list[str]) -> bool:
    """A command run by ``tether run`` (not a script that started its own run)."""
    return bool(argv) and not argv[0].endswith((".py", ".ipynb")) and argv[0] not in ("-c", "")
