"""The root command. Sub-commands load lazily, so ``tether status`` imports only what it needs."""

from __future__ import annotations

import importlib
import sys
from typing import Any

import click

from tether import __version__
from tether.errors import TetherError

# command name -> "module:attribute" under tether.cli
COMMANDS = {
    "init": "project:init",
    "new": "project:new",
    "config": "project:config",
    "add": "data:add",
    "status": "data:status",
    "checkout": "data:checkout",
    "data": "data:data",
    "remote": "sync:remote",
    "push": "sync:push",
    "fetch": "sync:fetch",
    "pull": "sync:pull",
    "gc": "maintenance:gc",
    "fsck": "maintenance:fsck",
    "run": "runs:run",
    "runs": "runs:runs",
    "diff": "runs:diff",
    "reindex": "runs:reindex",
    "env": "runs:env",
    "lineage": "lineage:lineage",
    "repro": "pipelines:repro",
    "reproduce": "reproduce:reproduce",
    "prompt": "prompts:prompt",
    "model": "models:model",
    "audit": "models:audit",
    "keys": "keys:keys",
    "policy": "hooks:policy",
    "hooks": "hooks:hooks",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        target = COMMANDS.get(name)
        if target is None:
            return None
        module, attr = target.split(":")
        command: click.Command = getattr(importlib.import_module(f"tether.cli.{module}"), attr)
        return command

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except TetherError as exc:
            click.secho(f"error: {exc}", fg="red", err=True)
            ctx.exit(exc.exit_code)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="tether")
def cli() -> None:
    """Tether ties every ML result to its code, data, environment and parameters.

    Data versioning: `tether add` data next to git, `push` it to a remote, `pull` it anywhere.
    Run tracking: `tether run -- python train.py --lr 0.1`, then `runs list`, `runs compare`,
    and `tether diff RUN_A RUN_B` to see why two results differ.
    """


def main() -> None:
    sys.exit(cli.main(prog_name="tether"))
