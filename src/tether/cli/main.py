"""The root command. Sub-commands load lazily, so ``tether status`` imports only what it needs.

Errors become exit codes here and only here (the table is :mod:`tether.cli.exitcodes`).
"""

from __future__ import annotations

import importlib
import os
import signal
import sys
import threading
from typing import Any, NoReturn

import click

from tether import __version__
from tether.cli import exitcodes
from tether.errors import LaunchError, TetherError

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
    "trust": "trust:trust",
    "policy": "hooks:policy",
    "hooks": "hooks:hooks",
    "server": "server:server",
    "sync": "server:sync",
    "ui": "server:ui",
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

    def make_context(self, *args: Any, **kwargs: Any) -> click.Context:
        try:  # `tether --help | head -1` prints while the options are parsed
            return super().make_context(*args, **kwargs)
        except BrokenPipeError:
            if not _stdout_closed():
                raise
            _silence_stdout()
            raise click.exceptions.Exit(exitcodes.CLOSED_PIPE) from None

    def invoke(self, ctx: click.Context) -> Any:
        previous = _on_sigterm()
        try:
            return super().invoke(ctx)
        except Terminated:  # cleanup (remote locks, temp files) ran as for Ctrl-C
            click.secho("terminated", fg="yellow", err=True)
            ctx.exit(exitcodes.TERMINATED)
        except LaunchError as exc:  # `tether run`'s command did not start: 125, 126, 127
            click.secho(f"error: {exc}", fg="red", err=True)
            ctx.exit(exc.exit_code)
        except TetherError as exc:
            click.secho(f"error: {exc}", fg="red", err=True)
            ctx.exit(_own(ctx, exc.exit_code))
        except click.ClickException as exc:  # a bad option or argument of a sub-command: 2
            exc.exit_code = _own(ctx, exc.exit_code)  # type: ignore[misc]
            raise
        except (click.exceptions.Exit, click.exceptions.Abort):
            raise
        except KeyboardInterrupt:
            click.secho("interrupted", fg="yellow", err=True)
            ctx.exit(exitcodes.INTERRUPTED)
        except SystemExit as exc:  # rich ends a print to a closed pipe with SystemExit(1)
            if exc.code == 1 and isinstance(exc.__context__, BrokenPipeError):
                ctx.exit(exitcodes.CLOSED_PIPE)  # (it has pointed stdout at /dev/null already)
            raise
        except BrokenPipeError as exc:
            if not _stdout_closed():
                internal_error(ctx, exc)  # a socket, a child's pipe: not the reader of our output
            _silence_stdout()
            ctx.exit(exitcodes.CLOSED_PIPE)
        except Exception as exc:
            internal_error(ctx, exc)
        finally:
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)


class Terminated(KeyboardInterrupt):
    """SIGTERM (a CI timeout, ``docker stop``): unwinds like Ctrl-C, so every ``with`` releases
    what it holds (a remote lock above all), then the command exits 143."""


def _raise_terminated(_signum: int, _frame: object) -> None:
    raise Terminated


def _on_sigterm() -> Any:
    """Turn SIGTERM into :class:`Terminated` while a command runs; the handler it replaced
    (None when it could not: not the main thread, or SIGTERM is ignored, as under nohup)."""
    if threading.current_thread() is not threading.main_thread():
        return None
    if signal.getsignal(signal.SIGTERM) is signal.SIG_IGN:
        return None
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    return signal.SIG_DFL if previous is None else previous  # None: set outside Python


def _stdout_closed() -> bool:
    """Whether whoever read our stdout has gone (`tether diff A B | head -1`)."""
    import select

    try:
        poll = select.poll()
        poll.register(sys.stdout.fileno(), select.POLLOUT)
        return any(events & select.POLLERR for _, events in poll.poll(0))
    except (OSError, ValueError, AttributeError):
        return False


def _silence_stdout() -> None:
    """Quietly drop what is still buffered for a reader that has gone, as a shell's command
    killed by SIGPIPE would (no "Exception ignored" at exit)."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass


def _own(ctx: click.Context, code: int) -> int:
    """``code``, or for a command that passes its child's status through (``tether run``) the
    one code that says Tether itself failed, so a script's own 2 or 4 is never mistaken for it."""
    if ctx.invoked_subcommand in exitcodes.PASS_THROUGH:
        return exitcodes.RUN_OWN_FAILURE
    return code


def internal_error(ctx: click.Context, exc: BaseException) -> NoReturn:
    """An unexpected exception: a bug. One line on stderr, the traceback in a file (and on
    stderr too with TETHER_DEBUG=1), exit 70."""
    import tempfile
    import traceback

    text = "".join(traceback.format_exception(exc))
    where = None
    try:
        fd, where = tempfile.mkstemp(prefix="tether-internal-error-", suffix=".txt")
        with os.fdopen(fd, "w") as f:
            f.write(f"tether {__version__}: {' '.join(sys.argv)}\n\n{text}")
    except OSError:
        where = None
    if where is None or os.environ.get("TETHER_DEBUG", "") not in ("", "0"):
        click.echo(text, err=True, nl=False)
    click.secho(
        f"internal error (a bug in tether): {type(exc).__name__}: {exc}", fg="red", err=True
    )
    if where is not None:
        click.echo(
            f"the traceback is in {where}: please report it with that file "
            "(TETHER_DEBUG=1 prints it here)",
            err=True,
        )
    ctx.exit(_own(ctx, exitcodes.INTERNAL))


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


if __name__ == "__main__":
    main()
