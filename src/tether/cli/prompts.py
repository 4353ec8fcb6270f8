"""``tether prompt``: versioned prompt templates."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from tether.cli import exitcodes

if TYPE_CHECKING:
    from tether.api import PromptLibrary


@click.group()
def prompt() -> None:
    """Prompt templates versioned in git: prompts/NAME/vX.Y.Z/ holds prompt.yaml (variables,
    default model and params, output format) and template.jinja2 or messages.yaml.

    \b
      tether prompt new NAME [--chat]
      tether prompt bump NAME --minor
      tether prompt render NAME@v1.1.0 --var review="A fine film"
      tether prompt diff NAME@v1.0.0 NAME@v1.1.0
      tether prompt register NAME@v1.1.0

    Templates run in Jinja2's sandbox with strict undefined variables. A registered version is
    immutable: change a copy made by `bump`. In a project pointed at a team server, `promote`
    and `rollback` need it, as model registry decisions do (`tether model --help`).
    """


def _library() -> PromptLibrary:
    from tether.api import prompts_here

    return prompts_here()


@prompt.command("new")
@click.argument("name")
@click.option("--chat", is_flag=True, help="Chat messages (messages.yaml), not one text.")
def new(name: str, chat: bool) -> None:
    """Create prompts/NAME/v1.0.0/ with a starting prompt.yaml and template."""
    lib = _library()
    made = lib.new(name, chat=chat)
    click.echo(f"created {made.folder.relative_to(lib.root)}: edit it, then commit and register it")


@prompt.command("bump")
@click.argument("name")
@click.option("--major", "part", flag_value="major", help="vX.0.0: an incompatible change.")
@click.option("--minor", "part", flag_value="minor", default=True, help="vX.Y.0 (the default).")
@click.option("--patch", "part", flag_value="patch", help="vX.Y.Z: a fix.")
@click.option(
    "--from",
    "base",
    metavar="VERSION",
    help="Start from this version or label (a hotfix of production: --from production --patch).",
)
def bump(name: str, part: str, base: str | None) -> None:
    """Copy NAME's newest version (or --from's) to the next version's folder, to edit there."""
    lib = _library()
    made = lib.bump(name, part, base)
    click.echo(f"created {made.ref} in {made.folder.relative_to(lib.root)}")


@prompt.command("list")
def list_() -> None:
    """Every prompt with its versions; registered ones marked with *."""
    lib = _library()
    names = lib.names()
    if not names:
        click.echo("no prompts yet: `tether prompt new NAME` makes one")
        return
    for name in names:
        known = lib.registered(name)
        shown = [v + ("*" if v in known else "") for v in lib.versions(name)]
        click.echo(f"{name}  {' '.join(shown)}")


@prompt.command("show")
@click.argument("ref")
def show(ref: str) -> None:
    """Show NAME[@VERSION] (default: the newest): metadata, variables, content id, template."""
    lib = _library()
    p = lib.resolve(ref, check=False)
    known = lib.registered(p.name).get(p.version)
    click.echo(f"{p.ref}  ({p.kind})")
    click.echo(f"content: {p.content_id}")
    if known is None:
        click.echo("registered: no")
    elif known.content_id == p.content_id:
        click.echo(f"registered: yes, at commit {known.commit[:12]}")
    else:
        click.echo(f"registered: yes, but its files CHANGED since (was {known.content_id[:19]})")
    if p.meta.get("description"):
        click.echo(f"description: {p.meta['description']}")
    click.echo(f"model: {p.model or '-'}  params: {p.params or '-'}  output: {p.output}")
    for var in p.variables.values():
        how = "required" if var.required else f"default {var.default!r}"
        click.echo(
            f"  {var.name}: {var.type}, {how}" + (f"  {var.description}" if var.description else "")
        )
    for file in sorted(p.files):
        if file != "prompt.yaml":
            click.echo(f"--- {file}")
            click.echo(p.files[file].decode("utf-8", "replace").rstrip("\n"))


@prompt.command("render")
@click.argument("ref")
@click.option("--var", "pairs", multiple=True, metavar="K=V", help="A variable's value.")
@click.option(
    "--vars-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Variables from a YAML or JSON mapping (--var wins).",
)
@click.option("--json", "as_json", is_flag=True, help="Chat messages as JSON.")
def render(ref: str, pairs: tuple[str, ...], vars_file: Path | None, as_json: bool) -> None:
    """Render NAME@VERSION with the given variables (defaults fill the rest)."""
    import json

    from tether.cli.render import parse_pairs

    lib = _library()
    p = lib.resolve(ref)
    values = lib.values(p, parse_pairs(pairs, "K=V"), vars_file)
    if as_json:
        click.echo(json.dumps(p.messages(**values), indent=2, ensure_ascii=False))
    else:
        click.echo(p.render(**values), nl=False)


@prompt.command("diff")
@click.argument("a")
@click.argument("b")
def diff(a: str, b: str) -> None:
    """What changed between two versions: variables, then the files as a unified diff."""
    click.echo(_library().diff(a, b) or "no difference")


@prompt.command("lint")
@click.argument("refs", nargs=-1)
@click.option(
    "--suite",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Also check that every case of this suite gives each required variable.",
)
def lint(refs: tuple[str, ...], suite: Path | None) -> None:
    """Check prompts (default: the newest version of each): undeclared or unused variables,
    malformed metadata, variables a suite's cases do not give. Exits 1 on a problem."""
    problems = _library().lint(list(refs), suite)
    for problem in problems:
        click.echo(problem)
    if problems:
        raise SystemExit(exitcodes.NEGATIVE)
    click.echo("no problems found")


@prompt.command("register")
@click.argument("ref")
def register(ref: str) -> None:
    """Pin NAME@VERSION's content: an annotated tag NAME@VERSION on the current commit, which
    must hold the version's files as they are. Its files can no longer change."""
    p, done = _library().register(ref)
    click.echo(f"registered {p.ref}: content {done.content_id} at commit {done.commit[:12]}")


@prompt.command("eval")
@click.argument("ref")
@click.option(
    "--suite",
    "suite_path",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The suite: evals/NAME.yaml.",
)
@click.option(
    "-p",
    "--provider",
    "providers",
    multiple=True,
    help="A provider in tether.toml [prompts.providers.NAME], or `scripted` (the suite's rules); "
    "repeat for a prompt x provider matrix. Default: the suite's `providers:`.",
)
@click.option(
    "--repeat",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Ask K times per case: measures flakiness (each repeat is cached apart).",
)
@click.option(
    "-j",
    "--jobs",
    type=click.IntRange(min=1),
    default=8,
    show_default=True,
    help="Requests in flight.",
)
@click.option(
    "--html",
    "html",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write a self-contained HTML report.",
)
@click.option("--no-record", is_flag=True, help="Do not record the eval as a run.")
def eval_(
    ref: str,
    suite_path: Path,
    providers: tuple[str, ...],
    repeat: int,
    jobs: int,
    html: Path | None,
    no_record: bool,
) -> None:
    """Evaluate NAME@VERSION (or several, comma-separated) on a suite: render each case, call
    the model, score the answers; each prompt x provider is recorded as a run with pass rate
    (and its Wilson 95% interval), latency p50/p95, tokens, cost and errors. Exits 1 when a
    suite threshold is not met."""
    from tether.cli.progress import Bar

    lib = _library()
    the_suite = lib.load_suite(suite_path)
    names = the_suite.provider_names(providers)
    judge = lib.judge(the_suite)
    # every prompt and provider is checked before the first call is paid for
    prompts = [lib.resolve(one) for one in ref.split(",")]
    built = {name: lib.provider(the_suite, name) for name in names}
    for p in prompts:
        lib.check_suite(p, the_suite, judge)
    results = []
    for p in prompts:
        for name, provider in built.items():
            with Bar(f"{p.ref} on {name}") as bar:
                bar.set_size(len(the_suite.cases) * repeat)
                done = lib.evaluate(
                    p,
                    the_suite,
                    provider,
                    repeat=repeat,
                    jobs=jobs,
                    record=not no_record,
                    progress=lambda _d, _t: bar.relative_update(),
                    judge=judge,
                )
            results.append(done)
            _print_eval(done)
    if html is not None:
        html.write_text(lib.eval_html(results))
        click.echo(f"report: {html}")
    if not all(r.passed for r in results):
        raise SystemExit(exitcodes.NEGATIVE)


def _print_eval(done: Any) -> None:
    m = done.metrics
    cached = sum(r.cached for r in done.results)
    click.echo(f"{done.prompt} on {done.provider} ({done.model}), suite {done.suite}:")
    for line in m.summary():
        click.echo(f"  {line}")
    click.echo(f"  {cached} of {len(done.results)} answers from the cache")
    for key, (limit, value, ok) in done.thresholds.items():
        click.echo(f"  threshold {key}: {value:.4g} vs {limit:g} {'ok' if ok else 'NOT MET'}")
    if done.verdict is None:
        click.echo(
            "  no verdict: the suite sets no thresholds (add `thresholds: {pass_rate: 0.9}`)"
        )
    failed = [r for r in done.results if not r.passed][:5]
    for r in failed:
        why = r.error or "; ".join(c["why"] or c["kind"] for c in r.checks if not c["passed"])
        click.echo(f"  failed {r.case}#{r.repeat}: {why}")
    if done.run:
        click.echo(f"  recorded as run {done.run}")


@prompt.command("import")
@click.argument("kind", type=click.Choice(["promptfoo"]))
@click.argument("config", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the suite here (evals/NAME.yaml; a new file). Default: standard output.",
)
def import_(kind: str, config: Path, output: Path | None) -> None:
    """Convert a promptfoo configuration (promptfooconfig.yaml) to Tether's suite form. The
    supported subset: openai:MODEL providers; tests inline or from file:// CSV, YAML, JSON or
    JSONL inside the repository; defaultTest; vars; assertions equals, contains, icontains,
    contains-any/-all, icontains-any/-all, regex, starts-with, is-json, their not- forms,
    similar, llm-rubric, latency, cost, with weight and threshold. prompts are not converted
    (evaluate a Tether version). Exits 1, after writing the rest, when a part was left out."""
    done = _library().import_promptfoo(config, output)
    if output is None:
        click.echo(done.text, nl=False)
    else:
        click.echo(f"wrote {output}: {done.cases} cases")
    for line in done.notes:
        click.echo(f"note: {line}", err=True)
    for line in done.refused:
        click.echo(f"not converted: {line}", err=True)
    if done.refused:
        raise SystemExit(exitcodes.NEGATIVE)


@prompt.command("promote")
@click.argument("ref")
@click.option("--label", required=True, help="The label: production, staging, champion...")
@click.option(
    "--require-eval",
    is_flag=True,
    help="Refuse unless an eval of this exact content on the committed suite, by a real "
    "provider, passed its thresholds.",
)
@click.option(
    "--suite",
    "suite_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The suite --require-eval needs evidence on (default: evals/NAME.yaml).",
)
@click.option("--push", "remote", flag_value="origin", help="Then push tags and log (origin).")
def promote(
    ref: str, label: str, require_eval: bool, suite_path: Path | None, remote: str | None
) -> None:
    """Assign LABEL to a registered NAME@VERSION: the annotated tag NAME#LABEL#N and an event in
    the hash-chained log (who, when, which version, which eval run on which suite)."""
    lib = _library()
    p, done, run = lib.promote(ref, label, require_eval=require_eval, suite=suite_path)
    click.echo(f"{p.name}#{label}#{done.n} -> {p.version}" + (f" (eval run {run})" if run else ""))
    if remote:
        lib.push(p.name, remote)
        click.echo(f"pushed to {remote}")


@prompt.command("rollback")
@click.argument("name")
@click.option("--label", required=True, help="The label to move back.")
@click.option("--push", "remote", flag_value="origin", help="Then push tags and log (origin).")
def rollback(name: str, label: str, remote: str | None) -> None:
    """Move LABEL back to the version it had before, as a new assignment (NAME#LABEL#N+1)."""
    lib = _library()
    done = lib.rollback(name, label)
    click.echo(f"{name}#{label}#{done.n} -> {done.version} (rolled back)")
    if remote:
        lib.push(name, remote)
        click.echo(f"pushed to {remote}")


@prompt.command("history")
@click.argument("name")
def history(name: str) -> None:
    """Every label assignment of NAME (who, when, version, eval run), and any tag that
    disagrees with the log (deleted, moved or made by hand)."""
    import time

    found, problems = _library().history(name)
    if not found:
        click.echo(f"{name} has no label assignments")
    for a in found:
        when = time.strftime("%Y-%m-%d %H:%M", time.gmtime(a.time))
        extra = f"  eval {a.eval_run[:13]}" if a.eval_run else ""
        click.echo(
            f"{when}  {name}#{a.label}#{a.n}  -> {a.version}  {a.reason} by {a.actor}{extra}"
        )
    for problem in problems:
        click.secho(f"PROBLEM: {problem}", fg="red")
    if problems:
        raise SystemExit(exitcodes.NEGATIVE)


@prompt.command("push")
@click.argument("name")
@click.option("--remote", default="origin", show_default=True, help="The git remote.")
def push(name: str, remote: str) -> None:
    """Push NAME's version and label tags and the label log to a git remote, in one atomic
    push (refused if the remote's log moved on: `tether prompt pull` first)."""
    _library().push(name, remote)
    click.echo(f"pushed {name} to {remote}")


@prompt.command("pull")
@click.option("--remote", default="origin", show_default=True, help="The git remote.")
@click.option(
    "--discard-local",
    is_flag=True,
    help="When both sides moved on, drop this clone's unpushed assignments and take the "
    "remote's log.",
)
def pull(remote: str, discard_local: bool) -> None:
    """Take prompt tags and the label log from a git remote. When this clone and the remote
    both assigned labels, a merge event joins the two logs (events are never rewritten); both
    taking the same assignment NAME#LABEL#N is refused: --discard-local keeps the remote's."""
    from tether.cli.render import echo_pulled

    pulled = _library().pull(remote, discard_local=discard_local)
    if echo_pulled(pulled, remote, "label", "tether prompt push NAME", "tether prompt pull"):
        raise SystemExit(exitcodes.NEGATIVE)


@prompt.command("compare")
@click.argument("a")
@click.argument("b")
@click.option(
    "--suite",
    "suite_path",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The suite both versions run.",
)
@click.option("-p", "--provider", help="The provider (default: the suite's first).")
@click.option("--repeat", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("-j", "--jobs", type=click.IntRange(min=1), default=8, show_default=True)
@click.option(
    "--max-regression",
    type=click.FloatRange(min=0.0, max=1.0),
    default=0.05,
    show_default=True,
    help="The non-inferiority margin on pass rate: the gate passes only when the interval "
    "rules out a drop larger than this.",
)
@click.option("--json", "as_json", is_flag=True, help="The comparison as JSON.")
def compare_(
    a: str,
    b: str,
    suite_path: Path,
    provider: str | None,
    repeat: int,
    jobs: int,
    max_regression: float,
    as_json: bool,
) -> None:
    """Compare NAME@A (the baseline) with NAME@B on the same cases: exact McNemar on pass/fail,
    a paired bootstrap interval on the pass-rate and score differences, Wilcoxon on latency,
    cost delta, Holm-corrected. Exits 0 when the non-inferiority gate passes, 1 when B is worse
    by more than the margin or the suite cannot tell (it says how many cases would)."""
    import json

    lib = _library()
    the_suite = lib.load_suite(suite_path)
    name = the_suite.provider_names(provider)[0]
    done = lib.compare(
        a, b, the_suite, lib.provider(the_suite, name),
        repeat=repeat, jobs=jobs, max_regression=max_regression,
    )  # fmt: skip
    if as_json:
        click.echo(json.dumps(done.comparison.to_dict(), indent=2))
    else:
        from rich.table import Table

        from tether.cli.tables import console

        header, rows = lib.comparison_table(done)
        table = Table(*header, title=f"{done.b.prompt} (B) vs {done.a.prompt} (A)")
        for cells in rows:
            table.add_row(*cells)
        console().print(table)
        for line in done.comparison.summary()[-2:]:
            click.echo(line)
        click.echo(f"runs: {done.a.run} (A), {done.b.run} (B)")
    if not done.passed:
        raise SystemExit(exitcodes.NEGATIVE)


@prompt.command("ci")
@click.option("--base", required=True, help="The revision to compare with (the PR's base).")
@click.option("--label", default="production", show_default=True, help="The baseline label.")
@click.option(
    "--suites",
    "suite_dir",
    default="evals",
    show_default=True,
    help="Where each prompt's suite is: SUITES/NAME.yaml.",
)
@click.option("-p", "--provider", help="The provider (default: each suite's first).")
@click.option("--max-regression", type=float, default=0.05, show_default=True)
@click.option(
    "--report",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the markdown report here (for a pull-request comment).",
)
def ci(
    base: str,
    label: str,
    suite_dir: str,
    provider: str | None,
    max_regression: float,
    report: Path | None,
) -> None:
    """Evaluate every prompt version added or changed since BASE against the version labelled
    production, on SUITES/NAME.yaml; write a markdown report; exit 1 on a significant
    regression (or an inconclusive gate). What the pull request brings is content: its suites
    and prompts read no file outside the repository, and a provider whose API key is set must
    keep the endpoint that tether.toml at BASE, .tether/config.toml or the environment gives."""
    done = _library().ci(base, label, suite_dir, provider, max_regression)
    if report is not None:
        report.write_text(done.markdown)
    click.echo(done.markdown, nl=False)
    if not done.passed:
        raise SystemExit(exitcodes.NEGATIVE)


@prompt.command("bundle")
@click.argument("names", nargs=-1)
@click.option("--label", default="production", show_default=True, help="The label to bundle.")
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The bundle file to write (JSON).",
)
def bundle(names: tuple[str, ...], label: str, output: Path) -> None:
    """Write the versions LABEL points at (of NAMES; default every prompt that has LABEL) to one
    JSON file, read from their registration commits and verified, for services that run
    without git: tether.prompts.load(NAME, bundle=FILE)."""
    pins = _library().bundle(list(names) or None, label, output)
    for pin in pins:
        click.echo(f"{pin.name}#{label} -> {pin.version}  content {pin.content_id}")
    click.echo(f"wrote {output}: {len(pins)} prompt(s) at label {label}")
