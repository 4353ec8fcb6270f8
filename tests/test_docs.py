"""docs/cli.md is the help of every command, checked against ``--help`` (``make docs`` rewrites it),
with the one table of exit codes (tether.cli.exitcodes); and the README's tour names every command.
tests/cli/test_exitcodes.py checks that table against the code."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from click.testing import CliRunner

from tether.cli import exitcodes
from tether.cli.main import cli

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "cli.md"


def commands() -> list[list[str]]:
    """Every command path: [], ["add"], ["config", "get"], ..."""
    out: list[list[str]] = [[]]
    ctx = click.Context(cli)
    for name in cli.list_commands(ctx):
        cmd = cli.get_command(ctx, name)
        out.append([name])
        if isinstance(cmd, click.Group):
            out.extend([name, sub] for sub in sorted(cmd.commands))
    return out


def leaf_commands(group: click.Group = cli, prefix: tuple[str, ...] = ()) -> list[list[str]]:
    """Every command path that does something, at any depth (not the groups that list them)."""
    out: list[list[str]] = []
    ctx = click.Context(group)
    for name in group.list_commands(ctx):
        cmd = group.get_command(ctx, name)
        if isinstance(cmd, click.Group):
            out += leaf_commands(cmd, (*prefix, name))
        elif cmd is not None:
            out.append([*prefix, name])
    return out


def exit_code_table() -> str:
    """One table: what each code means, then the codes of every command."""
    lines = ["## Exit codes\n", "| code | meaning |", "| --- | --- |"]
    lines += [f"| {code} | {meaning} |" for code, meaning in exitcodes.MEANINGS.items()]
    lines += [
        "",
        "Every command can also exit 70 (internal error) and 130 (interrupted). `tether run` "
        "exits with its command's own status, and uses 125 (never 2 or 4) for a failure of "
        "Tether's own.\n",
        "| command | exits with | when not 0 |",
        "| --- | --- | --- |",
    ]
    for path in leaf_commands():
        name = " ".join(path)
        special = exitcodes.BY_COMMAND.get(name, {})
        codes = ", ".join(str(c) for c in exitcodes.codes(name))
        if name in exitcodes.PASS_THROUGH:
            codes += ", the command's status"
        when = "; ".join(f"{c}: {why}" for c, why in sorted(special.items()))
        lines.append(f"| `tether {name}` | {codes} | {when} |")
    return "\n".join(lines) + "\n"


def render() -> str:
    parts = [
        "# Command reference\n",
        "Generated from the commands' own help by `make docs`; a test keeps it in step.\n",
        exit_code_table(),
    ]
    for path in commands():
        result = CliRunner().invoke(cli, [*path, "--help"], prog_name="tether", terminal_width=100)
        assert result.exit_code == 0, result.output
        title = " ".join(["tether", *path])
        parts.append(f"## `{title}`\n\n```\n{result.output.rstrip()}\n```\n")
    return "\n".join(parts)


def test_cli_reference_matches_help() -> None:
    assert DOC.read_text() == render(), "docs/cli.md is stale: run `make docs`"


def test_readme_tours_every_command() -> None:
    readme = (ROOT / "README.md").read_text()
    missing = [p for p in commands() if p and f"tether {' '.join(p)}" not in readme]
    top = [p for p in missing if len(p) == 1 and p[0] not in ("data", "remote", "config")]
    assert not top, f"README does not mention: {top}"


if __name__ == "__main__" and "--write" in sys.argv:
    DOC.parent.mkdir(exist_ok=True)
    DOC.write_text(render())
    print(f"wrote {DOC}")
