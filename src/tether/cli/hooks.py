"""``tether policy check-commits`` and ``tether hooks install|uninstall``, and the two git hooks
themselves: ``python -m tether.cli.hooks commit-msg FILE`` and ``python -m tether.cli.hooks
pre-commit``. What they check is :mod:`tether.gitio.hooks` (through ``tether.api``); this prints it.

The hooks run on every commit, so this module imports only click, ``tether.api`` (light until a
verb is used) and :mod:`tether.gitio` through it (no rich, no SQLAlchemy).
"""

from __future__ import annotations

import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

import click

from tether import api
from tether.cli import exitcodes
from tether.errors import TetherError

HOOK_NAMES = api.HOOK_NAMES
SPEC_URL = api.COMMIT_SPEC_URL


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
    done = api.check_commits(rev_range, types, max_header)
    commits = done.commits
    for f in done.findings:
        click.echo(f"{f.commit[:8]}  {f.header}")
        click.echo(f"    {f.problem.message}")
        click.echo("    e.g. " + _indent(f.problem.example, " " * 9))
    if done.findings:
        click.echo(
            f"{len(done.findings)} of {len(commits)} commits do not follow Conventional Commits "
            f"({SPEC_URL}): reword them with `git rebase -i` before pushing"
        )
        raise SystemExit(exitcodes.NEGATIVE)
    if not commits:
        click.echo(f"no commits in {done.range}: nothing to check")
        return
    click.echo(f"all {len(commits)} commits follow Conventional Commits")


# -- tether hooks install / uninstall --------------------------------------------------------------
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
    changes = api.install_hooks(force=force)
    for backup in changes.backed_up:
        click.echo(f"kept the old hook as {backup}")
    for path in changes.written:
        click.echo(f"installed {path}")


@hooks.command()
def uninstall() -> None:
    """Remove the hooks Tether installed (putting back any hook --force replaced)."""
    changes = api.uninstall_hooks()
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
def commit_msg(message_file: Path) -> int:
    """Check the message git is about to store; 1 (and why, on stderr) when it does not pass."""
    found = api.check_commit_message(message_file)
    if found is None:
        return exitcodes.OK
    header, problem = found
    example = _indent(problem.example, " " * 6)
    _err(
        f"tether: this commit message does not follow Conventional Commits ({SPEC_URL}):\n"
        f"  {header}\n  {problem.message}\n  e.g. {example}\n"
        f"Your message is kept in {message_file}; skip the check once with --no-verify."
    )
    return exitcodes.NEGATIVE


def pre_commit() -> int:
    """Refuse staged files that are too large, or that a .tether pointer already tracks."""
    from tether.cli.render import human_size

    refused, limit = api.refused_staged_files()
    for f in refused:
        if f.pointer is not None:
            _err(
                f"tether: {f.path} is data tracked by {f.pointer}: unstage it with "
                f"`git rm --cached -- {shlex.quote(f.path)}`; `tether add` records its changes"
            )
        else:
            _err(
                f"tether: {f.path} is {human_size(f.size)}, over the "
                f"{human_size(limit)} limit ([hooks] max_file_mb in tether.toml): "
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
        if len(argv) == 2 and argv[0] == "commit-msg":
            return commit_msg(Path(argv[1]))
        if len(argv) == 1 and argv[0] == "pre-commit":
            return pre_commit()
    except TetherError as exc:
        _err(f"tether: {exc}")
        return exc.exit_code
    _err("usage: python -m tether.cli.hooks commit-msg FILE | pre-commit")
    return exitcodes.USAGE


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
