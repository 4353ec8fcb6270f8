"""docs/cli.md is the help of every command, checked against ``--help`` (``make docs`` rewrites it),
and the README's tour names every command."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from click.testing import CliRunner

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


def render() -> str:
    parts = [
        "# Command reference\n",
        "Generated from the commands' own help by `make docs`; a test keeps it in step.\n",
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
