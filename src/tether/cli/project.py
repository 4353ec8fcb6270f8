"""``tether init``, ``tether new`` and ``tether config``."""

from __future__ import annotations

import click


@click.command()
@click.option(
    "--ci",
    type=click.Choice(["github", "gitlab"]),
    help="Also write a CI workflow: `tether repro` on every push, and a `tether diff` report "
    "against the base branch on pull/merge requests.",
)
def init(ci: str | None) -> None:
    """Set up Tether in the current git repository.

    Writes tether.toml (committed settings), creates .tether/ (the local object cache, git-ignored)
    and adds .tether/ to .gitignore. Running it again changes nothing.
    """
    from tether.api import Project

    project = Project.init()
    click.echo(f"Initialised Tether in {project.root}")
    if ci:
        click.echo(f"Wrote {project.write_ci(ci).relative_to(project.root)}: commit it")
    click.echo("Next: `tether add PATH` to track data, then commit the .tether pointer file.")


@click.command()
@click.argument("name")
def new(name: str) -> None:
    """Create a new project NAME from the template.

    Lays out data/raw, data/processed, src/, params.yaml, pipeline.yaml, prompts/, evals/,
    models/, notebooks/ and a README, with git and Tether initialised.
    """
    from tether.api import new_project

    project = new_project(name)
    click.echo(f"Created {project.root} (git and Tether initialised)")
    click.echo(f"Next: cd {name}, put data in data/raw, then `tether add data/raw`.")


@click.group()
def config() -> None:
    """Read and write settings.

    Layers, later winning: tether.toml (committed, shared: never credentials) < .tether/config.toml
    (local, uncommitted) < TETHER_* environment variables (TETHER_REMOTE__ORIGIN__URL is
    remote.origin.url).
    """


@config.command("get")
@click.argument("key")
def config_get(key: str) -> None:
    """Print the value of KEY (e.g. cache.link), after all layers."""
    from tether.api import Project
    from tether.errors import ConfigError

    value = Project.open().config_get(key)
    if value is None:
        raise ConfigError(f"{key} is not set: `tether config list` shows what is")
    click.echo(value if not isinstance(value, bool) else str(value).lower())


@config.command("set")
@click.argument("key")
@click.argument("value")
@click.option("--local", is_flag=True, help="Write to .tether/config.toml (uncommitted).")
def config_set(key: str, value: str, local: bool) -> None:
    """Set KEY to VALUE in tether.toml, or with --local in .tether/config.toml.

    Values that look like credentials are refused in tether.toml.
    """
    from tether.api import Project

    path = Project.open().config_set(key, value, local=local)
    click.echo(f"{key} = {value}  ({path.name})")


@config.command("list")
def config_list() -> None:
    """Print every setting after all layers (credentials masked)."""
    from tether.api import Project

    for key, value in Project.open().config_items(mask_secrets=True):
        click.echo(f"{key} = {value}")
