"""Two versions on one suite, compared with paired statistics (``tether prompt compare``), and the
CI gate built on it (``tether prompt ci``): every prompt version added or changed since a base
revision is evaluated against the version labelled ``production``, and a significant regression
fails the build.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tether.gitio.repo import git
from tether.prompts import labels
from tether.prompts.evaluate import EvalResult, Progress, evaluate
from tether.prompts.providers import Provider
from tether.prompts.stats import GATE_PASS, Comparison, MetricComparison, compare
from tether.prompts.suite import Suite
from tether.prompts.templates import PROMPTS_DIR, VERSION, Prompt, load
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
) -> Compared:
    """Evaluate both versions (recorded as runs; cached answers are reused) and compare them on
    the cases both ran."""
    ra = evaluate(ws, a, suite, provider, repeat=repeat, jobs=jobs, progress=progress)
    rb = evaluate(ws, b, suite, provider, repeat=repeat, jobs=jobs, progress=progress)
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


def markdown(results: list[Compared], alone: list[EvalResult]) -> str:
    """A pull-request comment: one table per comparison, the verdict and the gate."""
    out = ["## Tether prompt check", ""]
    if not results and not alone:
        out.append("No prompt version changed.")
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
            f"### {e.prompt} on `{e.suite}` ({e.provider}): no production version to compare with",
            "",
            *(f"- {line}" for line in e.metrics.summary()),
            f"- suite thresholds: **{mark}**; run {e.run}",
            "",
        ]
    return "\n".join(out) + "\n"


def _gate_line(c: Comparison) -> str:
    return c.summary()[-1].removeprefix("gate: ")


def changed_versions(root: Path, base: str) -> list[tuple[str, str]]:
    """(name, version) of every prompt version whose files differ from ``base``."""
    out = git(root, "diff", "--name-only", "--diff-filter=AMR", base, "--", PROMPTS_DIR)
    found = set()
    for path in out.decode().splitlines():
        parts = path.split("/")
        if len(parts) >= 4 and VERSION.match(parts[2]):
            found.add((parts[1], parts[2]))
    return sorted(found)


def production_of(ws: Workspace, name: str, label: str = "production") -> Prompt | None:
    found = labels.current(ws, name, label)
    return None if found is None else load(ws.root, name, found.version)
