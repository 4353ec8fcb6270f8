"""``tether policy check-commits`` and ``tether hooks install|uninstall``, and the two git hooks
themselves: ``python -m tether.cli.hooks commit-msg FILE`` and ``python -m tether.cli.hooks
pre-commit``.

The hooks run on every commit, so this module imports only click and :mod:`tether.gitio` at the
top (no rich, no SQLAlchemy); :mod:`tether.config` loads when a hook needs the project's limits.

An installed hook is a POSIX sh script that runs the Python which installed it, by its absolute
path (not resolved through the virtualenv's symlink, which would lose the virtualenv). Git GUIs,
IDEs and plain shells commit without the project's virtualenv on PATH, so a bare ``tether`` would
often be missing or another install; when that Python is gone (the virtualenv was deleted) the
hook falls back to ``tether hooks run`` from PATH, and says how to reinstall when neither exists.
"""

from __future__ import annotations

import os
import shlex
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import click

from tether.cli import exitcodes
from tether.errors import ConfigError, TetherError, UsageError
from tether.gitio.commits import (
    DEFAULT_TYPES,
    MAX_HEADER,
    SPEC_URL,
    Problem,
    check_messages,
    check_staged,
    cleanup,
    default_range,
    log_messages,
    parse,
)
from tether.gitio.repo import find_root, git, git_maybe

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


# -- tether policy check-commits ------------------------------------------------------------------
@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def policy() -> None:
    """Check the repository against the project's conventions."""


@policy.command("check-commits")
@click.argument("rev_range", metavar="[RANGE]", required=False)
@click.option("--types", help="Allowed types, comma-separated (default: [policy] commit_types).")
@click.option(
    "--max-header", type=click.IntRange(min=10), help="Longest header allowed (default: 100)."
)
def check_commits(rev_range: str | None, types: str | None, max_header: int | None) -> None:
    """Check that commit messages follow Conventional Commits (type(scope)!: description).

    RANGE is a git revision range; by default the commits not pushed yet (@{upstream}..HEAD), or
    every commit on HEAD when the branch has no upstream. Merge commits, fixup!/squash!/amend!
    commits and git's own Revert "…" messages pass as they are.
    """
    root = find_root()
    rules = load_rules(root, types, max_header)
    commits = log_messages(root, rev_range)
    findings = check_messages(commits, types=rules.types, max_header=rules.max_header)
    for f in findings:
        click.echo(f"{f.commit[:8]}  {f.header}")
        click.echo(f"    {f.problem.message}")
        click.echo("    e.g. " + _indent(f.problem.example, " " * 9))
    if findings:
        click.echo(
            f"{len(findings)} of {len(commits)} commits do not follow Conventional Commits "
            f"({SPEC_URL}): reword them with `git rebase -i` before pushing"
        )
        raise SystemExit(exitcodes.NEGATIVE)
    if not commits:
        click.echo(f"no commits in {rev_range or default_range(root) or 'HEAD'}: nothing to check")
        return
    click.echo(f"all {len(commits)} commits follow Conventional Commits")


# -- tether hooks install / uninstall --------------------------------------------------------------
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
    for name in HOOK_NAMES:
        path = hooks_folder(root) / name
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


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def hooks() -> None:
    """Git hooks that check every commit: its message and its staged files."""


@hooks.command()
@click.option("--force", is_flag=True, help="Replace hooks Tether did not write (kept as .bak).")
def install(force: bool) -> None:
    """Install the commit-msg and pre-commit hooks in this repository.

    commit-msg refuses a message that does not follow Conventional Commits (as `tether policy
    check-commits` checks it); pre-commit refuses staged files over [hooks] max_file_mb (default
    10) and files a .tether pointer already tracks. Skip them once with `git commit --no-verify`.
    """
    changes = install_hooks(find_root(), force=force)
    for backup in changes.backed_up:
        click.echo(f"kept the old hook as {backup}")
    for path in changes.written:
        click.echo(f"installed {path}")


@hooks.command()
def uninstall() -> None:
    """Remove the hooks Tether installed (putting back any hook --force replaced)."""
    changes = uninstall_hooks(find_root())
    for path in changes.removed:
        click.echo(
            f"removed {path}" + (" (restored the old hook)" if path in changes.restored else "")
        )
    for path in changes.foreign:
        click.echo(f"left {path}: Tether did not write it")
    if not changes.removed and not changes.foreign:
        click.echo("no Tether hooks installed")


@hooks.command("run", hidden=True)
@click.argument("hook", type=click.Choice(HOOK_NAMES))
@click.argument("args", nargs=-1)
def run(hook: str, args: tuple[str, ...]) -> None:
    """Run a hook as git would (what an installed hook calls when its Python is gone)."""
    raise SystemExit(main([hook, *args]))


# -- the hooks themselves --------------------------------------------------------------------------
def commit_msg(root: Path, message_file: Path) -> int:
    """Check the message git is about to store; 1 (and why, on stderr) when it does not pass."""
    rules = load_rules(root)
    comment_char = (git_maybe(root, "config", "core.commentChar") or b"#").decode().strip()
    if len(comment_char) != 1:  # unset, or "auto": git then picks a character the text lacks
        comment_char = "#"
    message = cleanup(message_file.read_text(errors="replace"), comment_char)
    result = parse(message, types=rules.types, max_header=rules.max_header)
    if not isinstance(result, Problem):
        return exitcodes.OK
    header = message.split("\n", 1)[0]
    example = _indent(result.example, " " * 6)
    _err(
        f"tether: this commit message does not follow Conventional Commits ({SPEC_URL}):\n"
        f"  {header}\n  {result.message}\n  e.g. {example}\n"
        f"Your message is kept in {message_file}; skip the check once with --no-verify."
    )
    return exitcodes.NEGATIVE


def pre_commit(root: Path) -> int:
    """Refuse staged files that are too large, or that a .tether pointer already tracks."""
    from tether.cli.render import human_size

    rules = load_rules(root)
    refused = check_staged(root, max_bytes=rules.max_file_bytes)
    for f in refused:
        if f.pointer is not None:
            _err(
                f"tether: {f.path} is data tracked by {f.pointer}: unstage it with "
                f"`git rm --cached -- {shlex.quote(f.path)}`; `tether add` records its changes"
            )
        else:
            _err(
                f"tether: {f.path} is {human_size(f.size)}, over the "
                f"{human_size(rules.max_file_bytes)} limit ([hooks] max_file_mb in tether.toml): "
                f"track it with `tether add {shlex.quote(f.path)}` instead (it keeps the data next "
                "to git and a small pointer in it), after "
                f"`git rm --cached -- {shlex.quote(f.path)}`"
            )
    return exitcodes.NEGATIVE if refused else exitcodes.OK


def _indent(text: str, prefix: str) -> str:
    """Every line after the first indented by ``prefix`` (blank lines left blank)."""
    first, *rest = text.split("\n")
    return "\n".join([first, *(prefix + line if line else "" for line in rest)])


def _err(text: str) -> None:
    print(text, file=sys.stderr)


def main(argv: Sequence[str]) -> int:
    """``commit-msg FILE`` or ``pre-commit``: what the installed hooks run; the exit status."""
    try:
        root = find_root()
        if len(argv) == 2 and argv[0] == "commit-msg":
            return commit_msg(root, Path(argv[1]))
        if len(argv) == 1 and argv[0] == "pre-commit":
            return pre_commit(root)
    except TetherError as exc:
        _err(f"tether: {exc}")
        return exc.exit_code
    _err("usage: python -m tether.cli.hooks commit-msg FILE | pre-commit")
    return exitcodes.USAGE


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
