"""``tether lineage TARGET`` (short for ``tether lineage show TARGET``) and
``tether lineage export``."""

from __future__ import annotations

import click

from tether.api import lineage_formats


class _TargetFirst(click.Group):
    """A first word that is not a subcommand (nor a help flag) is a TARGET for ``show``."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ctx.help_option_names:
            args = ["show", *args]
        return super().parse_args(ctx, args)


@click.group(cls=_TargetFirst, context_settings={"help_option_names": ["-h", "--help"]})
def lineage() -> None:
    """Trace what a result came from (upstream) or what was built from it (downstream), and
    export lineage as OpenLineage events or W3C PROV.

    \b
      tether lineage TARGET [--up|--down] [--depth N] [--format tree|mermaid|dot|json]
      tether lineage export [RUN...] --openlineage FILE [--url URL] [--prov FILE]

    TARGET is a path (what it holds now), an object id (blake3:…) or a run (id, id prefix or
    name). `tether lineage TARGET` is short for `tether lineage show TARGET`; use `show` for a
    path named like a subcommand (`tether lineage show export`).
    """


@lineage.command("show")
@click.argument("target")
@click.option(
    "--up/--down",
    "upstream",
    default=True,
    help="Upstream: the runs, inputs, code, environment and params that made TARGET (default). "
    "Downstream: the runs that used it and what they made.",
)
@click.option(
    "--depth", type=click.IntRange(min=1), help="At most N levels of runs (default: all)."
)
@click.option(
    "-f",
    "--format",
    "fmt",
    type=click.Choice(lineage_formats()),
    default="tree",
    show_default=True,
    help="A text tree, a Mermaid flowchart, Graphviz DOT or JSON.",
)
def show(target: str, upstream: bool, depth: int | None, fmt: str) -> None:
    """Show TARGET's lineage: a path, an object id (blake3:…) or a run.

    \b
      tether lineage models/model.pkl
      tether lineage data/raw.csv --down --depth 2
      tether lineage train-run --format mermaid > lineage.mmd
    """
    from tether.api import Project, render_lineage

    with Project.open() as project:
        direction = "up" if upstream else "down"
        graph = project.lineage(target, direction=direction, depth=depth)
        if graph.root.startswith("run:"):  # a name several runs bear: say which it took
            notice = project.pick_run(target).notice
            if notice:
                click.secho(notice, fg="yellow", err=True)
        click.echo(render_lineage(graph, fmt), nl=False)


@lineage.command("export")
@click.argument("runs", nargs=-1)
@click.option(
    "--openlineage",
    "ol_file",
    metavar="FILE",
    type=click.Path(dir_okay=False, allow_dash=True),
    help="Write OpenLineage run events to FILE, one JSON event per line (- for stdout).",
)
@click.option("--url", help="POST the OpenLineage events to this endpoint (URL/api/v1/lineage).")
@click.option(
    "--api-key",
    envvar="OPENLINEAGE_API_KEY",
    show_envvar=True,
    help="A bearer token for --url.",
)
@click.option(
    "--prov",
    "prov_file",
    metavar="FILE",
    type=click.Path(dir_okay=False, allow_dash=True),
    help="Write a W3C PROV-JSON document to FILE (- for stdout).",
)
def export(
    runs: tuple[str, ...],
    ol_file: str | None,
    url: str | None,
    api_key: str | None,
    prov_file: str | None,
) -> None:
    """Export the lineage of RUNs (default: every run) as OpenLineage events or W3C PROV-JSON.

    Each run gives a START and a COMPLETE, FAIL or ABORT event; datasets are the paths runs
    logged, versioned by object id.

    \b
      tether lineage export --openlineage lineage.jsonl --url http://localhost:5000
      tether lineage export prep train --prov lineage.prov.json
    """
    from tether.api import Project, openlineage_ndjson, prov_json
    from tether.errors import UsageError

    if not (ol_file or url or prov_file):
        raise UsageError("say what to export: --openlineage FILE, --url URL or --prov FILE")
    with Project.open() as project:
        if ol_file or url:
            events = project.openlineage_events(list(runs))
            if ol_file:
                _write(ol_file, openlineage_ndjson(events), f"{len(events)} OpenLineage events")
            if url:
                sent = project.send_openlineage(url, events, api_key=api_key)
                click.echo(f"sent {sent} OpenLineage events to {url}", err=True)
        if prov_file:
            document = project.prov_document(list(runs))
            _write(prov_file, prov_json(document), "a PROV-JSON document")


def _write(path: str, text: str, what: str) -> None:
    with click.open_file(path, "w", encoding="utf-8", atomic=path != "-") as f:
        f.write(text)
    if path != "-":
        click.echo(f"wrote {what} to {path}", err=True)
