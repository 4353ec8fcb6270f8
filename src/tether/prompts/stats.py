"""Statistics for one evaluation suite, and for two prompt versions run on the same suite
(the tests and intervals themselves are in :mod:`tether.prompts.inference`).

``tether prompt eval`` reports :func:`suite_metrics`; ``tether prompt compare`` reports
:func:`compare`. Everything here is a pure function of :class:`CaseOutcome` values and returns a
frozen dataclass with ``to_dict()`` (JSON) and ``summary()`` (lines for the CLI table). SciPy and
NumPy are imported inside the functions that need them, so loading this module is cheap.

Repeats (``--repeat K``) are never paired attempt by attempt: attempt *k* of A has nothing to do
with attempt *k* of B. Each side is first reduced to one row per case id — pass = the fraction of
its attempts that passed (an attempt that errored counts as failed), score and latency = the mean
over the attempts that recorded one, cost = the mean per attempt — and the *case* is the unit that
is paired and resampled. Repeats sharpen a case's row without posing as extra independent cases,
and A and B may have different repeat counts. Case ids on one side only are reported and left out.

How :func:`compare` decides, with d_i = row_B - row_A per paired case and n paired cases:

* **pass rate** — difference = mean(d_i), a percentile bootstrap over cases. A percentile
  bootstrap has no width when no case differs, and is too narrow when few do, so each side of the
  interval is widened to at least h0 = 1 - ((1 - confidence) / 2) ** (1 / n): the exact
  (Clopper-Pearson) bound on a rate of which 0 of n were seen, about 3.7/n at 95% — n cases
  cannot resolve a difference finer than that. Tested with the exact McNemar test on the cases
  where A did better (b) and where B did better (c); with repeats this is the sign test on
  per-case pass rates, which is McNemar's when every case ran once.
* **score** — mean paired difference with a bootstrap interval; its p-value is the bootstrap's own
  two-sided p, 2 * min(#means <= 0, #means >= 0 plus one each) / (resamples + 1), so it agrees
  with the interval. Higher scores are better.
* **latency** — Wilcoxon signed-rank (:func:`wilcoxon_latency`); medians are shown.
* **cost** — per-case mean cost summed over the cases costed on both sides (one pass over the
  suite), and B - A; not tested.
* **Holm** adjusts the p-values of the metrics tested. The verdict is the pass rate's: better or
  worse when its adjusted p < alpha, by the sign of the difference. When no case's pass rate
  differs there is no pass/fail signal and the score decides instead, if there are scores.
* **minimum detectable difference** (pass rate, two-sided, 80% power) =
  (z[1 - alpha / 2m] + z[0.80]) * SE with SE = interval width / (2 z[(1 + confidence) / 2]),
  m = metrics tested: the best case Holm allows, and the floor above keeps it honest at n small.
* **gate** (pass-rate non-inferiority, margin M = ``max_regression``) — pass when the interval's
  low end > -M, fail when its high end < -M, else inconclusive. ``cases_needed`` assumes the
  estimate stays put and the bootstrap side shrinks as 1/sqrt(n): the smallest n' with
  n * (side / gap)^2 < n' and h0(n') < gap, gap = |difference + M|.

The verdict is a significance statement and the gate a margin statement, so "worse" with a passing
gate is possible: a real regression smaller than the margin.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, replace
from statistics import NormalDist
from typing import Any

from tether.errors import UsageError
from tether.prompts.inference import (
    RESAMPLES,
    bootstrap_means,
    bootstrap_p,
    check_level,
    holm,
    mcnemar_exact,
    paired_bootstrap,
    percentile,
    percentile_interval,
    wilcoxon_latency,
    wilson_interval,
    z_of,
)

__all__ = [
    "BETTER",
    "GATE_FAIL",
    "GATE_INCONCLUSIVE",
    "GATE_PASS",
    "NO_DIFFERENCE",
    "WORSE",
    "CaseOutcome",
    "Comparison",
    "MetricComparison",
    "SuiteMetrics",
    "compare",
    "holm",
    "mcnemar_exact",
    "paired_bootstrap",
    "percentile",
    "suite_metrics",
    "wilcoxon_latency",
    "wilson_interval",
]

FORMAT = 1
BETTER, WORSE, NO_DIFFERENCE = "better", "worse", "no detectable difference"
GATE_PASS, GATE_FAIL, GATE_INCONCLUSIVE = "pass", "fail", "inconclusive"
POWER = 0.80
_TEST_NAMES = {"mcnemar-exact": "McNemar", "paired-bootstrap": "bootstrap", "wilcoxon": "Wilcoxon"}


@dataclass(frozen=True)
class CaseOutcome:
    """One attempt at one case of a suite (several per case id with ``--repeat``)."""

    case_id: str
    passed: bool
    score: float | None = None
    latency_s: float | None = None
    cost: float | None = None
    error: bool = False


# -- one suite -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _CaseRow:
    """One side of one case, its repeats reduced (see the module docstring)."""

    passed: float
    score: float | None
    latency_s: float | None
    cost: float | None


def _mean(values: Sequence[float]) -> float | None:
    return math.fsum(values) / len(values) if values else None


def _case_rows(outcomes: Iterable[CaseOutcome]) -> dict[str, _CaseRow]:
    attempts: dict[str, list[CaseOutcome]] = {}
    for outcome in outcomes:
        attempts.setdefault(outcome.case_id, []).append(outcome)
    return {
        case: _CaseRow(
            passed=sum(o.passed and not o.error for o in group) / len(group),
            score=_mean([o.score for o in group if o.score is not None]),
            latency_s=_mean([o.latency_s for o in group if o.latency_s is not None]),
            cost=_mean([o.cost for o in group if o.cost is not None]),
        )
        for case, group in attempts.items()
    }


@dataclass(frozen=True)
class SuiteMetrics:
    """What ``tether prompt eval`` records for one version on one suite."""

    cases: int
    attempts: int
    errors: int
    pass_rate: float  # mean of per-case pass fractions
    pass_low: float  # Wilson interval on cases (repeats are not independent trials)
    pass_high: float
    confidence: float
    score_mean: float | None  # mean of per-case mean scores
    latency_p50_s: float | None  # over every attempt that recorded a latency
    latency_p95_s: float | None
    cost_total: float | None  # what the run cost: every attempt

    def to_dict(self) -> dict[str, Any]:
        return {"tether": "prompt-eval", "format": FORMAT, **asdict(self)}

    def summary(self) -> list[str]:
        level = f"{self.confidence:.0%}"
        lines = [
            f"{self.cases} cases, {self.attempts} attempts, {self.errors} errors",
            f"pass rate {self.pass_rate:.1%} ({level} interval {self.pass_low:.1%}"
            f"-{self.pass_high:.1%})",
        ]
        if self.score_mean is not None:
            lines.append(f"score mean {self.score_mean:.4g}")
        if self.latency_p50_s is not None and self.latency_p95_s is not None:
            lines.append(f"latency p50 {self.latency_p50_s:.3g}s, p95 {self.latency_p95_s:.3g}s")
        if self.cost_total is not None:
            lines.append(f"cost {self.cost_total:.4g}")
        return lines


def suite_metrics(outcomes: Sequence[CaseOutcome], *, confidence: float = 0.95) -> SuiteMetrics:
    """Pass rate with its Wilson interval, mean score, latency p50/p95 and cost of one eval."""
    rows = list(_case_rows(outcomes).values())
    passes = math.fsum(r.passed for r in rows)
    low, high = wilson_interval(passes, len(rows), confidence)
    latencies = [o.latency_s for o in outcomes if o.latency_s is not None]
    costs = [o.cost for o in outcomes if o.cost is not None]
    return SuiteMetrics(
        cases=len(rows),
        attempts=len(outcomes),
        errors=sum(o.error for o in outcomes),
        pass_rate=passes / len(rows) if rows else 0.0,
        pass_low=low,
        pass_high=high,
        confidence=confidence,
        score_mean=_mean([r.score for r in rows if r.score is not None]),
        latency_p50_s=percentile(latencies, 50),
        latency_p95_s=percentile(latencies, 95),
        cost_total=math.fsum(costs) if costs else None,
    )


# -- two versions --------------------------------------------------------------------------------


@dataclass(frozen=True)
class MetricComparison:
    """One metric of A against B on the paired cases that carry it; differences are B - A."""

    name: str  # "pass_rate", "score", "latency_s" (medians) or "cost" (totals)
    n: int
    a: float
    b: float
    difference: float
    low: float | None = None  # interval for the difference, at the comparison's confidence
    high: float | None = None
    test: str | None = None  # "mcnemar-exact", "paired-bootstrap", "wilcoxon" or None
    p_value: float | None = None
    p_adjusted: float | None = None  # Holm, across the metrics tested

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> list[str]:
        line = f"{self.name:<10} {self.a:.4g} -> {self.b:.4g}  B-A {self.difference:+.4g}"
        if self.low is not None and self.high is not None:
            line += f" [{self.low:+.4g}, {self.high:+.4g}]"
        if self.test is not None and self.p_value is not None:
            line += f"  {_TEST_NAMES[self.test]} p={self.p_value:.3g}"
            if self.p_adjusted is not None:
                line += f" (Holm {self.p_adjusted:.3g})"
        return [f"{line}  n={self.n}"]


@dataclass(frozen=True)
class Comparison:
    """Version B against version A on the cases both ran (see the module docstring)."""

    n: int
    only_in_a: tuple[str, ...]  # case ids left out of the comparison
    only_in_b: tuple[str, ...]
    a_better: int  # cases where A's pass rate is higher (McNemar's b)
    b_better: int  # cases where B's pass rate is higher (McNemar's c)
    pass_rate: MetricComparison
    score: MetricComparison | None
    latency: MetricComparison | None
    cost: MetricComparison | None
    verdict: str  # BETTER, WORSE or NO_DIFFERENCE
    verdict_metric: str  # "pass_rate", or "score" when no case's pass rate differs
    minimum_detectable_difference: float  # in pass rate
    gate: str  # GATE_PASS, GATE_FAIL or GATE_INCONCLUSIVE
    cases_needed: int | None  # inconclusive: paired cases estimated to settle it
    max_regression: float
    alpha: float
    confidence: float

    @property
    def metrics(self) -> tuple[MetricComparison, ...]:
        found = (self.pass_rate, self.score, self.latency, self.cost)
        return tuple(m for m in found if m is not None)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"tether": "prompt-comparison", "format": FORMAT}
        out.update(asdict(self))
        out["only_in_a"], out["only_in_b"] = list(self.only_in_a), list(self.only_in_b)
        return out

    def headline(self) -> str | None:
        """A significant difference, said first: what a reviewer must not miss."""
        if self.verdict not in (BETTER, WORSE):
            return None
        m = self.pass_rate if self.verdict_metric == "pass_rate" else self.score
        assert m is not None
        p = f", Holm-adjusted p={m.p_adjusted:.3g}" if m.p_adjusted is not None else ""
        word = "worse" if self.verdict == WORSE else "better"
        return f"B is significantly {word} than A on {m.name} ({m.difference:+.3g}{p})"

    def summary(self) -> list[str]:
        first = self.headline()
        lines = [first] if first else []
        lines.append(f"{self.n} paired cases" + _left_out(self.only_in_a, self.only_in_b))
        lines += [line for m in self.metrics for line in m.summary()]
        lines.append(
            f"verdict: {self.verdict} (on {self.verdict_metric}; smallest detectable pass-rate"
            f" difference ~{self.minimum_detectable_difference:.3f} at n={self.n})"
        )
        bound = f"a regression larger than {self.max_regression:g}"
        if self.gate == GATE_PASS:
            lines.append(f"gate: pass ({bound} is ruled out)")
        elif self.gate == GATE_FAIL:
            lines.append(f"gate: fail ({bound} is established)")
        else:
            real = "the drop is real, but " if self.verdict == WORSE else ""
            settle = (
                "the estimate sits on the margin"
                if self.cases_needed is None
                else f"about {self.cases_needed} paired cases would settle it"
            )
            lines.append(
                f"gate: inconclusive ({real}{bound} is neither ruled out nor established; {settle})"
            )
        return lines


def _left_out(only_a: tuple[str, ...], only_b: tuple[str, ...]) -> str:
    if not only_a and not only_b:
        return ""
    return f" ({len(only_a)} only in A and {len(only_b)} only in B, left out)"


def _pair(
    rows_a: dict[str, _CaseRow], rows_b: dict[str, _CaseRow]
) -> tuple[list[tuple[_CaseRow, _CaseRow]], tuple[str, ...], tuple[str, ...]]:
    """The rows of the cases both sides ran, in case-id order, and the ids on one side only."""
    shared = sorted(rows_a.keys() & rows_b.keys())
    if not shared:
        raise UsageError(
            f"the two versions share no case ids ({len(rows_a)} in A, {len(rows_b)} in B):"
            " run both on the same suite file"
        )
    only_a, only_b = rows_a.keys() - rows_b.keys(), rows_b.keys() - rows_a.keys()
    return [(rows_a[c], rows_b[c]) for c in shared], tuple(sorted(only_a)), tuple(sorted(only_b))


def _resolution(n: int, confidence: float) -> float:
    """h0: the exact upper bound on a rate with 0 events seen in n, at ``confidence`` two-sided."""
    return 1.0 - math.pow((1 - confidence) / 2, 1 / n)


def _pass_rate(
    pairs: Sequence[tuple[_CaseRow, _CaseRow]],
    counts: tuple[int, int],
    confidence: float,
    seed: int,
) -> tuple[MetricComparison, tuple[float, float]]:
    """The pass-rate metric, and the bootstrap's own (unwidened) low and high."""
    diffs = [b.passed - a.passed for a, b in pairs]
    mean, raw_low, raw_high = paired_bootstrap(diffs, confidence=confidence, seed=seed)
    floor = _resolution(len(pairs), confidence)
    metric = MetricComparison(
        name="pass_rate",
        n=len(pairs),
        a=math.fsum(a.passed for a, _ in pairs) / len(pairs),
        b=math.fsum(b.passed for _, b in pairs) / len(pairs),
        difference=mean,
        low=max(-1.0, min(raw_low, mean - floor)),
        high=min(1.0, max(raw_high, mean + floor)),
        test="mcnemar-exact",
        p_value=mcnemar_exact(*counts),
    )
    return metric, (raw_low, raw_high)


def _score(
    pairs: Sequence[tuple[_CaseRow, _CaseRow]], confidence: float, seed: int
) -> MetricComparison | None:
    scored = [(a.score, b.score) for a, b in pairs if a.score is not None and b.score is not None]
    if not scored:
        return None
    diffs = [sb - sa for sa, sb in scored]
    means = bootstrap_means(diffs, RESAMPLES, seed)
    low, high = percentile_interval(means, confidence)
    return MetricComparison(
        name="score",
        n=len(scored),
        a=math.fsum(sa for sa, _ in scored) / len(scored),
        b=math.fsum(sb for _, sb in scored) / len(scored),
        difference=math.fsum(diffs) / len(diffs),
        low=low,
        high=high,
        test="paired-bootstrap",
        p_value=bootstrap_p(means),
    )


def _latency(pairs: Sequence[tuple[_CaseRow, _CaseRow]]) -> MetricComparison | None:
    timed = [(a.latency_s, b.latency_s) for a, b in pairs]
    la = [x for x, y in timed if x is not None and y is not None]
    lb = [y for x, y in timed if x is not None and y is not None]
    p50_a, p50_b = percentile(la, 50), percentile(lb, 50)
    if p50_a is None or p50_b is None:
        return None
    if all(x == y for x, y in zip(la, lb, strict=True)):  # nothing to test: no Holm share
        return MetricComparison("latency_s", len(la), p50_a, p50_b, p50_b - p50_a)
    return MetricComparison(
        name="latency_s",
        n=len(la),
        a=p50_a,
        b=p50_b,
        difference=p50_b - p50_a,
        test="wilcoxon",
        p_value=wilcoxon_latency(la, lb),
    )


def _cost(pairs: Sequence[tuple[_CaseRow, _CaseRow]]) -> MetricComparison | None:
    costed = [(a.cost, b.cost) for a, b in pairs if a.cost is not None and b.cost is not None]
    if not costed:
        return None
    total_a = math.fsum(ca for ca, _ in costed)
    total_b = math.fsum(cb for _, cb in costed)
    return MetricComparison("cost", len(costed), total_a, total_b, total_b - total_a)


def _verdict(
    pass_rate: MetricComparison,
    counts: tuple[int, int],
    score: MetricComparison | None,
    alpha: float,
) -> tuple[str, str]:
    a_better, b_better = counts
    if a_better + b_better == 0 and score is not None:
        metric, direction = score, score.difference
    else:
        # McNemar/the sign test counts cases; with repeats the mean of per-case differences can
        # point the other way (many small gains, a few total losses): then no direction is called
        agree = (b_better - a_better) * pass_rate.difference > 0
        metric, direction = pass_rate, pass_rate.difference if agree else 0.0
    p = metric.p_adjusted
    if p is None or p >= alpha or direction == 0:
        return NO_DIFFERENCE, metric.name
    return (BETTER if direction > 0 else WORSE), metric.name


def _gate(
    metric: MetricComparison, raw: tuple[float, float], margin: float, confidence: float
) -> tuple[str, int | None]:
    """The non-inferiority gate on the pass rate, and the paired cases an inconclusive one needs."""
    assert metric.low is not None and metric.high is not None
    if metric.low > -margin:
        return GATE_PASS, None
    if metric.high < -margin:
        return GATE_FAIL, None
    d, n = metric.difference, metric.n
    if d > -margin:
        gap, side = d + margin, d - raw[0]
    elif d < -margin:
        gap, side = -margin - d, raw[1] - d
    else:
        return GATE_INCONCLUSIVE, None
    by_width = math.floor(n * (side / gap) ** 2) + 1
    by_floor = 1 if gap >= 1 else math.floor(math.log((1 - confidence) / 2) / math.log1p(-gap)) + 1
    return GATE_INCONCLUSIVE, max(n + 1, by_width, by_floor)


def _detectable(metric: MetricComparison, confidence: float, alpha: float, tested: int) -> float:
    assert metric.low is not None and metric.high is not None
    se = (metric.high - metric.low) / (2 * z_of(confidence))
    z_alpha = NormalDist().inv_cdf(1 - alpha / (2 * tested))
    return min(1.0, (z_alpha + NormalDist().inv_cdf(POWER)) * se)


def compare(
    a: Sequence[CaseOutcome],
    b: Sequence[CaseOutcome],
    *,
    max_regression: float = 0.05,
    alpha: float = 0.05,
    confidence: float = 0.95,
    seed: int = 0,
) -> Comparison:
    """Version B against version A on the cases both ran: tests, verdict and gate."""
    check_level("alpha", alpha)
    check_level("confidence", confidence)
    if not 0 <= max_regression < 1:
        raise UsageError(
            f"--max-regression is a pass-rate fraction in [0, 1), got {max_regression}"
        )
    pairs, only_in_a, only_in_b = _pair(_case_rows(a), _case_rows(b))
    counts = (
        sum(x.passed > y.passed for x, y in pairs),
        sum(x.passed < y.passed for x, y in pairs),
    )
    pass_rate, raw = _pass_rate(pairs, counts, confidence, seed)
    others = (_score(pairs, confidence, seed), _latency(pairs), _cost(pairs))
    tested = (pass_rate, *others)
    adjusted = holm({m.name: m.p_value for m in tested if m is not None and m.p_value is not None})
    pass_rate = replace(pass_rate, p_adjusted=adjusted["pass_rate"])
    score, latency, cost = (
        m if m is None or m.p_value is None else replace(m, p_adjusted=adjusted[m.name])
        for m in others
    )
    verdict, verdict_metric = _verdict(pass_rate, counts, score, alpha)
    gate, cases_needed = _gate(pass_rate, raw, max_regression, confidence)
    return Comparison(
        n=len(pairs),
        only_in_a=only_in_a,
        only_in_b=only_in_b,
        a_better=counts[0],
        b_better=counts[1],
        pass_rate=pass_rate,
        score=score,
        latency=latency,
        cost=cost,
        verdict=verdict,
        verdict_metric=verdict_metric,
        minimum_detectable_difference=_detectable(pass_rate, confidence, alpha, len(adjusted)),
        gate=gate,
        cases_needed=cases_needed,
        max_regression=max_regression,
        alpha=alpha,
        confidence=confidence,
    )
