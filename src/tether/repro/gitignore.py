"""Paths git must not see in a rebuilt worktree, for as long as the reproduction runs.

Restored data that the original run's code capture never saw (a stage's upstream outs are
written after the pipeline run captured the code) would otherwise be recorded as untracked code
in the reproduction. The worktree shares ``info/exclude`` with the user's repository, so the
paths go in an excludes file of the reproduction's own, named through ``GIT_CONFIG_COUNT`` in
this process's environment (every git command the reproduction runs inherits it); the user's
own global excludes file is copied into it, so nothing else changes.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tether.gitio import git_maybe


@contextmanager
def hidden_from_git(tree: Path, paths: list[str]) -> Iterator[None]:
    if not paths:
        yield
        return
    excludes = tree.parent / f"{tree.name}.exclude"
    lines = [_global_excludes(tree), *("/" + _escaped(p) for p in sorted(paths))]
    excludes.write_text("\n".join(lines) + "\n")
    count = int(os.environ.get("GIT_CONFIG_COUNT") or 0)
    added = {
        "GIT_CONFIG_COUNT": str(count + 1),
        f"GIT_CONFIG_KEY_{count}": "core.excludesFile",
        f"GIT_CONFIG_VALUE_{count}": str(excludes),
    }
    from unittest.mock import patch  # sets them, and restores exactly what was there

    try:
        with patch.dict(os.environ, added):
            yield
    finally:
        excludes.unlink(missing_ok=True)


def _global_excludes(tree: Path) -> str:
    """The user's excludes file's patterns (``core.excludesFile``, else git's default)."""
    named = (git_maybe(tree, "config", "--path", "--get", "core.excludesFile") or b"").strip()
    if named:
        path = Path(os.fsdecode(named)).expanduser()
    else:
        home = os.environ.get("XDG_CONFIG_HOME") or os.path.expanduser("~/.config")
        path = Path(home) / "git" / "ignore"
    try:
        return path.read_text(errors="surrogateescape")
    except OSError:
        return ""


def _escaped(path: str) -> str:
    """A path as a gitignore pattern matching only itself."""
    out = re.sub(r"([\\*?\[\]!#])", r"\\\1", path)
    return out[:-1] + "\\ " if out.endswith(" ") else out
