"""Git hooks that check every commit, as a library: the project's rules ([policy] commit_types
and max_header, [hooks] max_file_mb), installing and removing the hook scripts, and the checks
each hook makes. ``tether.cli.hooks`` prints what these return.

An installed hook is a POSIX sh script that runs the Python which installed it, by its absolute
path (not resolved through the virtualenv's symlink, which would lose the virtualenv). Git GUIs,
IDEs and plain shells commit without the project's virtualenv on PATH, so a bare ``tether`` would
often be missing or another install; when that Python is gone (the virtualenv was deleted) the
hook falls back to ``tether hooks run`` from PATH, and says how to reinstall when neither exists.

Hooks run on every commit: this imports only :mod:`tether.gitio`; :mod:`tether.config` loads
when a hook needs the project's limits.
"""

from __future__ import annotations

import os
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path

from tether.errors import ConfigError, UsageError
from tether.gitio.commits import (
    DEFAULT_TYPES,
    MAX_HEADER,
    Finding,
    Problem,
    StagedFile,
    check_messages,
    check_staged,
    cleanup,
    default_range,
    log_messages,
    parse,
)
from tether.gitio.repo import git, git_maybe

HOOK_NAMES = ("commit-msg", "pre-commit")
MARKER = "# tether-hook"  # the line that tells a hook Tether wrote from the user's own
DEFAULT_MAX_FILE_MB = 10.0


# -- the project's rules: [policy] commit_types / max_header, [hooks] max_file_mb -----------------
@dataclass(frozen=True)
class Rules:
    types: tuple[str, ...] = DEFAULT_TYPES
    max_header: int = MAX_HEADER
    max_file_bytes: int = int(DEFAULT_MAX_FILE_MB * 1024 * 1024)


def load_rules(root: Path, types: str | None = None, max_header: int | None = None) -> Rules:
    """The rules in tether.toml (and its local layers), overridden by command-line options."""
    from tether.config import Config

    config = Config.load(root)
    raw_types = types if types is not None else config.get("policy.commit_types", DEFAULT_TYPES)
    if isinstance(raw_types, str):
        raw_types = raw_types.split(",")
    if not isinstance(raw_types, list | tuple) or not all(isinstance(t, str) for t in raw_types):
        raise ConfigError("policy.commit_types must be a list of type names, e.g. ['feat', 'fix']")
    parsed_types = tuple(t.strip().lower() for t in raw_types if t.strip())
    if not parsed_types:
        raise UsageError("no commit types given: list some, e.g. --types feat,fix,docs")
    header = max_header if max_header is not None else config.get("policy.max_header", MAX_HEADER)
    megabytes = config.get("hooks.max_file_mb", DEFAULT_MAX_FILE_MB)
    try:
        header, megabytes = int(header), float(megabytes)
    except (TypeError, ValueError) as exc:
        raise ConfigError(
            "policy.max_header and hooks.max_file_mb must be numbers: fix them in tether.toml"
        ) from exc
    return Rules(parsed_types, header, int(megabytes * 1024 * 1024))


@dataclass
class HookChanges:
    written: list[Path] = field(default_factory=list)
    backed_up: list[Path] = field(default_factory=list)
    removed: list[Path] = field(default_factory=list)
    restored: list[Path] = field(default_factory=list)
    foreign: list[Path] = field(default_factory=list)


def hooks_folder(root: Path) -> Path:
    """Where git looks for hooks: ``.git/hooks``, or ``core.hooksPath`` when set."""
    out = git(root, "rev-parse", "--git-path", "hooks").decode().strip()
    return root / out  # an absolute ``out`` stays as it is


def hook_script(name: str, python: str) -> str:
    args = ' commit-msg "$1"' if name == "commit-msg" else " pre-commit"
    py = shlex.quote(python)
    return (
        "#!/bin/sh\n"
        f"{MARKER}: {name}, written by `tether hooks install` (`tether hooks uninstall`)\n"
        "# Runs the Python that installed Tether by its absolute path, so it works where\n"
        "# the virtualenv is not on PATH (git GUIs, IDEs); else `tether` on PATH.\n"
        f"if [ -x {py} ]; then\n"
        f"    exec {py} -m tether.cli.hooks{args}\n"
        "fi\n"
        "if command -v tether >/dev/null 2>&1; then\n"
        f"    exec tether hooks run{args}\n"
        "fi\n"
        f"echo 'tether: cannot run the {name} hook: '{py}' is gone and `tether` is not on PATH;' "
        "'reinstall with `tether hooks install`, or skip the hook once with --no-verify' >&2\n"
        "exit 1\n"
    )


def is_tether_hook(path: Path) -> bool:
    try:
        return MARKER in path.read_text(errors="replace")
    except FileNotFoundError:
        return False


def install_hooks(root: Path, *, force: bool, python: str | None = None) -> HookChanges:
    """Write both hooks; a hook Tether did not write is refused, or with ``force`` kept as
    ``HOOK.bak``. Nothing is written unless every hook can be."""
    from tether._fs import atomic_write

    folder = hooks_folder(root)
    paths = [folder / name for name in HOOK_NAMES]
    foreign = [p for p in paths if p.exists() and not is_tether_hook(p)]
    if foreign and not force:
        names = ", ".join(str(p) for p in foreign)
        raise UsageError(
            f"{names} exists and was not written by Tether: run `tether hooks install --force` "
            "to replace it (the old hook is kept as .bak), or call Tether from it yourself"
        )
    taken = [p.with_name(p.name + ".bak") for p in foreign if p.with_name(p.name + ".bak").exists()]
    if taken:
        raise UsageError(f"{taken[0]} exists already: move it away, then install again")
    changes = HookChanges()
    folder.mkdir(parents=True, exist_ok=True)
    for path in paths:
        if path in foreign:
            backup = path.with_name(path.name + ".bak")
            os.replace(path, backup)
            changes.backed_up.append(backup)
        script = hook_script(path.name, python or os.path.abspath(sys.executable))
        atomic_write(path, script.encode(), mode=0o755)
        changes.written.append(path)
    return changes


def uninstall_hooks(root: Path) -> HookChanges:
    """Remove the hooks Tether wrote, putting back any ``HOOK.bak`` an install replaced."""
    changes = HookChanges()
    folder = hooks_folder(root)  # one `git rev-parse`, not one per hook
    for name in HOOK_NAMES:
        path = folder / name
        if not path.exists():
            continue
        if not is_tether_hook(path):
            changes.foreign.append(path)
            continue
        path.unlink()
        changes.removed.append(path)
        backup = path.with_name(name + ".bak")
        if backup.exists():
            os.replace(backup, path)
            changes.restored.append(path)
    return changes


# -- what the hooks and `tether policy check-commits` check ----------------------------------------
@dataclass(frozen=True)
class CommitsChecked:
    commits: list[tuple[str, str]]  # (id, message) of every commit looked at
    findings: list[Finding]  # those whose message does not pass
    range: str  # the range looked at, in words


def check_commits(
    root: Path, rev_range: str | None, types: str | None = None, max_header: int | None = None
) -> CommitsChecked:
    """The messages of ``rev_range`` (default: the commits not pushed yet) against the rules."""
    rules = load_rules(root, types, max_header)
    commits = log_messages(root, rev_range)
    findings = check_messages(commits, types=rules.types, max_header=rules.max_header)
    return CommitsChecked(commits, findings, rev_range or default_range(root) or "HEAD")


def check_message_file(root: Path, message_file: Path) -> tuple[str, Problem] | None:
    """The header and the problem of the message git is about to store, or None when it passes
    (git's cleanup applied first: comments, the scissors line)."""
    rules = load_rules(root)
    comment_char = (git_maybe(root, "config", "core.commentChar") or b"#").decode().strip()
    if len(comment_char) != 1:  # unset, or "auto": git then picks a character the text lacks
        comment_char = "#"
    message = cleanup(message_file.read_text(errors="replace"), comment_char)
    result = parse(message, types=rules.types, max_header=rules.max_header)
    if not isinstance(result, Problem):
        return None
    return message.split("\n", 1)[0], result


def refused_staged(root: Path) -> tuple[list[StagedFile], int]:
    """The staged files a commit must not hold, and the size limit in bytes."""
    rules = load_rules(root)
    return check_staged(root, max_bytes=rules.max_file_bytes), rules.max_file_bytes
