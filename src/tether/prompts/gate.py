"""Two versions on one suite, compared with paired statistics (``tether prompt compare``), and the
CI gate built on it (``tether prompt ci``): every prompt version added or changed since a base
revision is evaluated against the version labelled ``production``, and a significant regression
fails the build.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from tether.errors import ConfigError
from tether.gitio.repo import git, git_maybe
from tether.prompts import labels
from tether.prompts.assertions import own_function
from tether.prompts.evaluate import EvalResult, Progress, Trusted, evaluate, provider_for
from tether.prompts.providers import Provider
from tether.prompts.registry import registered
from tether.prompts.runtime import registered_version
from tether.prompts.stats import GATE_PASS, Comparison, MetricComparison, compare
from tether.prompts.suite import Suite, load_suite
from tether.prompts.templates import PROMPTS_DIR, VERSION, Prompt, PromptError, load
from tether.workspace.repo import Workspace


@dataclass
class Compared:
    a: EvalResult
    b: EvalResult
    comparison: Comparison

    @property
    def passed(self) -> bool:
        """Not worse than the baseline by more than the margin, and the suite's thresholds met."""
        return self.comparison.gate == GATE_PASS and self.b.passed


def compare_versions(
    ws: Workspace,
    a: Prompt,
    b: Prompt,
    suite: Suite,
    provider: Provider,
    *,
    repeat: int = 1,
    jobs: int = 8,
    max_regression: float = 0.05,
    progress: Progress | None = None,
    trusted: Trusted | None = None,
) -> Compared:
    """Evaluate both versions (recorded as runs; cached answers are reused) and compare them on
    the cases both ran."""
    kw: dict[str, Any] = {"repeat": repeat, "jobs": jobs, "progress": progress}
    ra = evaluate(ws, a, suite, provider, trusted=trusted, **kw)
    rb = evaluate(ws, b, suite, provider, trusted=trusted, **kw)
    result = compare(ra.outcomes(), rb.outcomes(), max_regression=max_regression)
    return Compared(ra, rb, result)


def rows(c: Comparison) -> list[list[str]]:
    """The comparison as table rows: metric, A, B, B - A, interval, test, p, p (Holm)."""

    def num(x: float | None, spec: str = ".4g") -> str:
        return "-" if x is None else format(x, spec)

    def row(m: MetricComparison) -> list[str]:
        interval = "-" if m.low is None or m.high is None else f"[{m.low:+.3f}, {m.high:+.3f}]"
        return [
            m.name, num(m.a), num(m.b), f"{m.difference:+.4g}", interval, m.test or "-",
            num(m.p_value, ".3g"), num(m.p_adjusted, ".3g"),
        ]  # fmt: skip

    return [row(m) for m in c.metrics]


HEADER = ["metric", "A", "B", "B - A", "interval", "test", "p", "p (Holm)"]


def markdown(results: list[Compared], alone: list[EvalResult], refused: list[str]) -> str:
    """A pull-request comment: what was refused, then one table per comparison, the verdict
    and the gate."""
    out = ["## Tether prompt check", ""]
    if not results and not alone and not refused:
        out.append("No prompt version or suite changed.")
    out += [f"**Refused:** {why}" for why in refused] + ([""] if refused else [])
    for r in results:
        c = r.comparison
        mark = "passed" if r.passed else "FAILED"
        out += [
            f"### {r.b.prompt} vs production {r.a.prompt} on `{r.b.suite}` ({r.b.provider})",
            "",
            "| " + " | ".join(HEADER) + " |",
            "|" + "---|" * len(HEADER),
            *("| " + " | ".join(cells) + " |" for cells in rows(c)),
            "",
            f"**Verdict:** {c.verdict}. **Gate ({mark}):** {_gate_line(c)}",
            *(
                f"Suite threshold {key} not met: {value:.4g} (limit {limit:g})."
                for key, (limit, value, ok) in r.b.thresholds.items()
                if not ok
            ),
            f"Runs: {r.a.run} (A), {r.b.run} (B).",
            "",
        ]
    for e in alone:
        mark = "passed" if e.passed else "FAILED"
        out += [
            f"### {e.prompt} on `{e.suite}` ({e.provider}): evaluated alone",
            "",
            *(f"- {line}" for line in e.metrics.summary()),
            f"- suite thresholds: **{mark}**; run {e.run}",
            "",
        ]
    return "\n".join(out) + "\n"


def _gate_line(c: Comparison) -> str:
    gate = c.summary()[-1].removeprefix("gate: ")
    first = c.headline()
    return f"{first}; gate {gate}" if first else gate


def changed_versions(root: Path, base: str) -> list[tuple[str, str]]:
    """(name, version) of every prompt version whose files differ from ``base``."""
    out = git(root, "diff", "--name-only", "--diff-filter=AMR", base, "--", PROMPTS_DIR)
    found = set()
    for path in out.decode().splitlines():
        parts = path.split("/")
        if len(parts) >= 4 and VERSION.match(parts[2]):
            found.add((parts[1], parts[2]))
    return sorted(found)


@dataclass
class CiOutcome:
    """What ``ci`` found: comparisons, versions evaluated alone (no baseline, or only their
    suite changed), and changes refused before anything was asked, each with its reason."""

    compared: list[Compared]
    alone: list[EvalResult]
    refused: list[str]


def ci(
    ws: Workspace,
    base: str,
    label: str,
    suite_dir: str,
    provider: str | None,
    max_regression: float,
) -> CiOutcome:
    """Every version added or changed since ``base`` against the one ``label`` points at, read
    from its registration tag (never from the work tree), or alone without one; a registered
    version changed in place is refused with the reason; a suite changed alone re-evaluates the
    labelled version on it. What the pull request brings (suites, prompts, tether.toml) is
    content: a suite reads no file outside the repository, and a provider whose API key is set
    keeps the endpoint the trusted config gives (tether.toml at ``base``, .tether/config.toml,
    the environment)."""
    trusted = trusted_providers(ws, base)
    out = CiOutcome([], [], [])
    changed = changed_versions(ws.root, base)
    todo: list[tuple[str, str | None]] = []
    for name, version in changed:
        known = registered(ws.root, name).get(version)
        if known is not None:
            now = load(ws.root, name, version)
            if now.content_id != known.content_id:
                out.refused.append(
                    f"{name}@{version} is registered with content {known.content_id[:19]}…, "
                    f"and this branch changes its files: a registered version never changes; "
                    f"`tether prompt bump {name} --from {version}` makes the next one"
                )
                continue
        todo.append((name, version))
    done_names = {name for name, _ in changed}
    todo += [(n, None) for n in _suites_changed(ws.root, base, suite_dir) if n not in done_names]
    for name, wanted in todo:
        path = ws.root / suite_dir / f"{name}.yaml"
        if not path.exists() and not path.is_symlink():
            raise PromptError(f"{name}@{wanted or label} changed but has no suite at {path}")
        suite = load_suite(path, ws.root)
        _check_python(ws.root, base, suite)
        prov = provider_for(ws, suite, suite.provider_names(provider)[0], trusted)
        baseline = production_of(ws, name, label)
        if wanted is None:  # only the suite changed: the labelled version on the new suite
            if baseline is not None:
                out.alone.append(evaluate(ws, baseline, suite, prov, trusted=trusted))
            continue
        new = load(ws.root, name, wanted)
        if baseline is None or baseline.content_id == new.content_id:
            out.alone.append(evaluate(ws, new, suite, prov, trusted=trusted))
        else:
            done = compare_versions(
                ws, baseline, new, suite, prov, max_regression=max_regression, trusted=trusted
            )
            out.compared.append(done)
    return out


def _suites_changed(root: Path, base: str, suite_dir: str) -> list[str]:
    """Names whose suite (``SUITES/NAME.yaml``) or a case file beside it changed since ``base``
    (a case file counts for every suite in the folder that names it)."""
    out = git(root, "diff", "--name-only", "--diff-filter=AMR", base, "--", suite_dir)
    changed = [PurePosixPath(p) for p in out.decode().splitlines()]
    names = {
        p.stem for p in changed if p.suffix == ".yaml" and p.parent.name == Path(suite_dir).name
    }
    cases = {p.name for p in changed if p.suffix != ".yaml"}
    if cases:
        for suite in sorted((root / suite_dir).glob("*.yaml")):
            text = suite.read_text(errors="replace")
            if any(name in text for name in cases):
                names.add(suite.stem)
    return sorted(names)


def trusted_providers(ws: Workspace, base: str) -> Trusted:
    """``prompts.providers`` as the sources a pull request cannot change give it: tether.toml
    as committed at ``base``, then .tether/config.toml and ``TETHER_*`` variables."""
    import tomllib

    from tether.config import PROJECT_FILE, Config

    where = f"{PROJECT_FILE} at {base}"
    found = git_maybe(ws.root, "rev-parse", "--verify", "-q", f"{base}:{PROJECT_FILE}")
    project: dict[str, Any] = {}
    if found is not None:
        text = git(ws.root, "cat-file", "blob", found.decode().strip())
        try:
            project = tomllib.loads(text.decode("utf-8", "replace"))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{where} is not valid TOML ({exc})") from exc
    table = Config.load(ws.root, project=project).get("prompts.providers") or {}
    source = f"the trusted config ({where}, .tether/config.toml, the environment)"
    return Trusted(dict(table) if isinstance(table, Mapping) else {}, source)


def _check_python(root: Path, base: str, suite: Suite) -> None:
    """A ``python`` assertion runs the repository's code in this job, with its secrets in
    reach: before anything is asked, each must name the project's own function, and none may
    run while the pull request changes Python files."""
    specs: list[tuple[str, dict[str, Any]]] = [("", a) for a in suite.asserts]
    specs += [(c.id, a) for c in suite.cases for a in c.asserts]
    python = [(case, spec["python"]) for case, spec in specs if "python" in spec]
    if not python:
        return
    for _case, arg in python:
        function = arg.get("function") if isinstance(arg, dict) else arg
        own_function(root, str(function))
    uses = python[0][0]
    changed = git(root, "diff", "--name-only", base, "--", "*.py").decode().split()
    if changed:
        where = f"suite {suite.path}" + (f" case {uses}" if uses else "")
        raise PromptError(
            f"{where} has a `python` assertion, and this pull request changes Python files "
            f"({', '.join(changed[:3])}{', ...' if len(changed) > 3 else ''}): the check would "
            "run code it changed with this job's secrets (API keys) in reach. Merge the code "
            "first, or evaluate with `tether prompt eval` in a job that holds no secret"
        )


def production_of(ws: Workspace, name: str, label: str = "production") -> Prompt | None:
    """The version ``label`` points at, as registered (its tag's commit, checked against the
    content id): a branch that edits it in place cannot move the baseline."""
    found = labels.current(ws, name, label)
    return None if found is None else registered_version(ws.root, name, found.version)
