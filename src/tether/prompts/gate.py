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
from tether.prompts.templates import PROMPTS_DIR, VERSION, Prompt, PromptError, load, names
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
    from its registration tag (never from the work tree), or alone without one; a prompt whose
    suite (``SUITES/NAME.yaml`` or a case file it reads, wherever it is) changed is evaluated on
    it even when no version changed. Everything is planned and checked first: a registered
    version changed in place, a suite removed or renamed, a ``python`` check beside changed
    code or a provider that would carry its key elsewhere is refused with the reason, and then
    nothing is asked at all. What the pull request brings (suites, prompts, tether.toml) is
    content: a suite reads no file outside the repository, and a provider whose API key is set
    keeps the endpoint the trusted config gives (tether.toml at ``base``, .tether/config.toml,
    the environment)."""
    trusted = trusted_providers(ws, base)
    out = CiOutcome([], [], [])
    status = _status(ws.root, base)
    versions: dict[str, list[str]] = {}
    for name, version in changed_versions(ws.root, base):
        known = registered(ws.root, name).get(version)
        if known is not None and load(ws.root, name, version).content_id != known.content_id:
            out.refused.append(
                f"{name}@{version} is registered with content {known.content_id[:19]}…, "
                f"and this branch changes its files: a registered version never changes; "
                f"`tether prompt bump {name} --from {version}` makes the next one"
            )
            continue
        versions.setdefault(name, []).append(version)
    plans: list[tuple[str | None, Prompt | None, Suite, Provider]] = []
    for name in names(ws.root):
        rel = f"{PurePosixPath(suite_dir).as_posix()}/{name}.yaml"
        path = ws.root / rel
        if status.get(rel) in ("D", "R"):
            out.refused.append(
                f"this branch removes or renames {rel}, {name}'s suite: `tether prompt ci` "
                f"evaluates {name} on it; restore it, or rename the prompt with it"
            )
            continue
        if not path.exists() and not path.is_symlink():
            if name in versions:
                out.refused.append(f"{name}@{versions[name][0]} changed but has no suite {rel}")
            continue
        try:
            suite = load_suite(path, ws.root)
            touched = any(_rel(ws.root, f) in status for f in suite.sources)
            if name not in versions and not touched:
                continue
            _check_python(ws.root, base, suite)
            prov = provider_for(ws, suite, suite.provider_names(provider)[0], trusted)
            embeddings = str(ws.config.get("prompts.embeddings") or "")
            if embeddings:  # where the `similar` check's texts (and key) would go
                provider_for(ws, suite, embeddings, trusted)
            for v in versions.get(name, []):
                load(ws.root, name, v)  # its files and params, checked before any call
            baseline = production_of(ws, name, label)
        except (PromptError, ConfigError) as exc:
            out.refused.append(str(exc))
            continue
        if name in versions:
            plans += [(v, baseline, suite, prov) for v in versions[name]]
        else:  # only the suite changed: the labelled version (else the newest) on it
            plans.append((None, baseline or load(ws.root, name), suite, prov))
    if out.refused:
        return out  # nothing is asked for a pull request that is refused anyway
    for wanted, baseline, suite, prov in plans:
        new = baseline if wanted is None else load(ws.root, suite.name, wanted)
        assert new is not None
        if baseline is None or baseline.content_id == new.content_id:
            out.alone.append(evaluate(ws, new, suite, prov, trusted=trusted))
        else:
            done = compare_versions(
                ws, baseline, new, suite, prov, max_regression=max_regression, trusted=trusted
            )
            out.compared.append(done)
    return out


def _status(root: Path, base: str) -> dict[str, str]:
    """Every path changed since ``base`` -> A, M, D or R (a rename: its old and new path)."""
    out = git(root, "diff", "--name-status", "-M", base).decode()
    found: dict[str, str] = {}
    for line in out.splitlines():
        kind, *paths = line.split("\t")
        for path in paths:
            found.setdefault(path, kind[:1])
        if kind.startswith("R") and paths:
            found[paths[0]] = "R"
            found[paths[-1]] = "A"
    return found


def _rel(root: Path, path: Path) -> str:
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return str(path)


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
    content id): a branch that edits it in place cannot move the baseline, and a label tag the
    log does not back is refused as it is everywhere a label is served."""
    if labels.current(ws, name, label) is None:
        return None
    return registered_version(ws.root, name, labels.version_for(ws, name, label))
