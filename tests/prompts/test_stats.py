"""Statistics for ``tether prompt eval`` and ``tether prompt compare``, against hand values."""

from __future__ import annotations

import json
import math
import random
import sys
from pathlib import Path
from statistics import NormalDist

import pytest

from tests.conftest import run_python
from tether.errors import UsageError
from tether.prompts.stats import (
    BETTER,
    GATE_FAIL,
    GATE_INCONCLUSIVE,
    GATE_PASS,
    NO_DIFFERENCE,
    WORSE,
    CaseOutcome,
    compare,
    holm,
    mcnemar_exact,
    paired_bootstrap,
    percentile,
    suite_metrics,
    wilcoxon_latency,
    wilson_interval,
)


def _suite(passed: list[bool], **fields: list[float]) -> list[CaseOutcome]:
    """One attempt per case, ids c0, c1, ...; ``fields`` are per-case columns (score=[...])."""
    return [
        CaseOutcome(f"c{i}", ok, **{name: column[i] for name, column in fields.items()})
        for i, ok in enumerate(passed)
    ]


# -- building blocks -----------------------------------------------------------------------------


def test_wilson_matches_known_values() -> None:
    assert wilson_interval(8, 10) == pytest.approx((0.4902, 0.9433), abs=5e-4)
    assert wilson_interval(0, 10) == pytest.approx((0.0, 0.2775), abs=5e-4)
    assert wilson_interval(10, 10) == pytest.approx((0.7225, 1.0), abs=5e-4)
    assert wilson_interval(0, 0) == (0.0, 1.0)
    low95, high95 = wilson_interval(8, 10)
    low99, high99 = wilson_interval(8, 10, confidence=0.99)
    assert low99 < low95 and high99 > high95
    with pytest.raises(UsageError, match="between 0 and n=10"):
        wilson_interval(11, 10)


def test_percentile_interpolates_linearly_and_is_none_when_empty() -> None:
    assert percentile([4.0, 1.0, 3.0, 2.0], 50) == pytest.approx(2.5)
    assert percentile([1.0, 2.0, 3.0, 4.0], 95) == pytest.approx(3.85)
    assert percentile([], 50) is None
    with pytest.raises(UsageError):
        percentile([1.0], 101)


def test_mcnemar_exact_is_the_binomial_test_on_discordant_pairs() -> None:
    # P(X <= 1 | 10, 1/2) = 11/1024, doubled
    assert mcnemar_exact(1, 9) == pytest.approx(22 / 1024, rel=1e-12)
    assert mcnemar_exact(9, 1) == pytest.approx(22 / 1024, rel=1e-12)
    assert mcnemar_exact(0, 10) == pytest.approx(2 / 1024, rel=1e-12)
    assert mcnemar_exact(5, 5) == 1.0
    assert mcnemar_exact(0, 0) == 1.0


def test_holm_worked_example() -> None:
    # sorted: d .005*4=.02, a .01*3=.03, c .03*2=.06, b .04*1=.04 -> raised to .06 (monotone)
    adjusted = holm({"a": 0.01, "b": 0.04, "c": 0.03, "d": 0.005})
    assert adjusted == pytest.approx({"a": 0.03, "b": 0.06, "c": 0.06, "d": 0.02})
    assert list(adjusted) == ["a", "b", "c", "d"]
    assert holm({"x": 0.6, "y": 0.7}) == {"x": 1.0, "y": 1.0}
    assert holm({"only": 0.2}) == {"only": 0.2}
    assert holm({}) == {}


def test_bootstrap_is_deterministic_with_its_seed() -> None:
    rng = random.Random(3)
    diffs = [rng.gauss(0.2, 1.0) for _ in range(60)]
    first = paired_bootstrap(diffs, seed=7)
    assert paired_bootstrap(diffs, seed=7) == first
    assert paired_bootstrap(diffs, seed=8) != first
    mean, low, high = first
    assert mean == pytest.approx(math.fsum(diffs) / 60)
    assert low < mean < high


def test_bootstrap_interval_has_about_the_width_and_coverage_it_claims() -> None:
    rng = random.Random(11)
    big = [rng.gauss(0.0, 2.0) for _ in range(400)]
    _, low, high = paired_bootstrap(big, resamples=4000)
    sd = math.sqrt(math.fsum((x - sum(big) / 400) ** 2 for x in big) / 399)
    assert (high - low) / 2 == pytest.approx(1.96 * sd / 20, rel=0.1)

    covered = 0
    for trial in range(300):
        sample = [rng.gauss(0.3, 1.0) for _ in range(40)]
        _, low, high = paired_bootstrap(sample, resamples=1000, seed=trial)
        covered += low <= 0.3 <= high
    assert 0.88 <= covered / 300 <= 0.99


def test_wilcoxon_exact_small_sample_and_degenerate_inputs() -> None:
    # five positive, distinct differences: exact two-sided p = 2 / 2^5
    assert wilcoxon_latency([1, 2, 3, 4, 5], [2, 4, 6, 8, 10]) == pytest.approx(0.0625)
    assert wilcoxon_latency([1.0, 2.0], [1.0, 2.0]) == 1.0
    assert wilcoxon_latency([], []) == 1.0
    with pytest.raises(UsageError, match="paired"):
        wilcoxon_latency([1.0], [1.0, 2.0])


def test_wilcoxon_ranks_zero_differences_the_pratt_way() -> None:
    # 10 zero differences and 5 positive: ranks 11..15 kept, W+ = 65; null mean and variance over
    # all 15 ranks minus the 10 zero ranks: 60 - 27.5 and (7440 - 2310) / 24
    a = [1.0] * 15
    b = [1.0] * 10 + [2.0, 3.0, 4.0, 5.0, 6.0]
    z = (65 - 32.5) / math.sqrt(5130 / 24)
    assert wilcoxon_latency(a, b) == pytest.approx(2 * (1 - NormalDist().cdf(z)), rel=1e-6)


# -- one suite -----------------------------------------------------------------------------------


def test_suite_metrics_counts_cases_not_attempts() -> None:
    outcomes = [
        CaseOutcome("x", True, score=0.2, latency_s=1.0, cost=0.5),
        CaseOutcome("x", False, score=0.4, latency_s=3.0, cost=0.5),
        CaseOutcome("y", True, latency_s=2.0, cost=1.0),
        CaseOutcome("z", True, latency_s=10.0, error=True),  # an error fails whatever passed says
    ]
    metrics = suite_metrics(outcomes)
    assert (metrics.cases, metrics.attempts, metrics.errors) == (3, 4, 1)
    assert metrics.pass_rate == pytest.approx(0.5)  # (1/2 + 1 + 0) / 3
    assert (metrics.pass_low, metrics.pass_high) == pytest.approx(wilson_interval(1.5, 3))
    assert metrics.score_mean == pytest.approx(0.3)
    assert metrics.latency_p50_s == pytest.approx(2.5)
    assert metrics.latency_p95_s == pytest.approx(8.95)
    assert metrics.cost_total == pytest.approx(2.0)
    assert json.loads(json.dumps(metrics.to_dict()))["pass_rate"] == pytest.approx(0.5)
    assert "3 cases, 4 attempts, 1 errors" in metrics.summary()


# -- two versions --------------------------------------------------------------------------------


def test_a_clearly_better_b_is_better_and_passes_the_gate() -> None:
    a = _suite([i % 2 == 0 for i in range(200)])  # 100 pass
    b = _suite([i % 10 != 1 for i in range(200)])  # 180 pass, all of A's among them
    result = compare(a, b)
    assert (result.n, result.a_better, result.b_better) == (200, 0, 80)
    assert (result.pass_rate.a, result.pass_rate.b) == pytest.approx((0.5, 0.9))
    assert result.pass_rate.difference == pytest.approx(0.4)
    # SE of the mean of 80 ones in 200 = sqrt(.4 * .6 / 200) = .0346
    assert result.pass_rate.low == pytest.approx(0.4 - 1.96 * 0.0346, abs=0.015)
    assert result.pass_rate.high == pytest.approx(0.4 + 1.96 * 0.0346, abs=0.015)
    assert result.pass_rate.p_value == pytest.approx(2 * 0.5**80, rel=1e-9)
    assert (result.verdict, result.verdict_metric, result.gate) == (BETTER, "pass_rate", GATE_PASS)
    assert result.cases_needed is None


def test_a_clearly_worse_b_is_worse_and_fails_the_gate() -> None:
    a = _suite([i % 10 != 1 for i in range(200)])
    b = _suite([i % 2 == 0 for i in range(200)])
    result = compare(a, b)
    assert result.pass_rate.difference == pytest.approx(-0.4)
    assert result.pass_rate.high is not None and result.pass_rate.high < -0.05
    assert (result.verdict, result.gate) == (WORSE, GATE_FAIL)
    assert result.summary()[-1] == "gate: fail (a regression larger than 0.05 is established)"


def test_identical_outcomes_on_many_cases_pass_the_gate_with_an_honest_interval() -> None:
    suite = _suite([i % 3 != 0 for i in range(200)])
    result = compare(suite, suite)
    # no case differs: the interval is the 0-in-200 exact bound, 1 - 0.025^(1/200)
    h0 = 1 - 0.025 ** (1 / 200)
    assert h0 == pytest.approx(0.01828, abs=1e-5)
    assert (result.pass_rate.low, result.pass_rate.high) == pytest.approx((-h0, h0))
    assert (result.verdict, result.gate) == (NO_DIFFERENCE, GATE_PASS)
    # one metric tested: (z.975 + z.80) * h0 / z.975
    assert result.minimum_detectable_difference == pytest.approx(1.4294 * h0, rel=1e-3)


def test_identical_outcomes_on_few_cases_are_inconclusive() -> None:
    suite = _suite([i % 2 == 0 for i in range(20)])
    result = compare(suite, suite)
    assert result.gate == GATE_INCONCLUSIVE
    # smallest n with 1 - 0.025^(1/n) < 0.05: n > ln(.025) / ln(.95) = 71.9
    assert result.cases_needed == 72


def test_a_small_noisy_suite_is_inconclusive_and_says_how_many_cases_would_settle_it() -> None:
    a = _suite([i in (0, 1, 4, 5, 6) for i in range(10)])
    b = _suite([i in (2, 3, 4, 5, 6) for i in range(10)])
    result = compare(a, b)
    assert (result.a_better, result.b_better) == (2, 2)
    assert result.pass_rate.difference == 0.0
    assert (result.verdict, result.gate) == (NO_DIFFERENCE, GATE_INCONCLUSIVE)
    # n * (side / gap)^2 with side the bootstrap's own low side, gap = 0 + 0.05
    _, low, _ = paired_bootstrap([-1.0, -1.0, 1.0, 1.0] + [0.0] * 6)  # compare's case order
    assert result.cases_needed == math.floor(10 * (-low / 0.05) ** 2) + 1
    # per-case SD sqrt(.4): 1.96 * .632 / sqrt(n) < .05 needs n > 614
    assert result.cases_needed is not None and 400 < result.cases_needed < 1000
    assert f"about {result.cases_needed} paired cases would settle it" in result.summary()[-1]


def test_holm_across_metrics_can_take_away_a_marginal_pass_rate_result() -> None:
    passed_a = [True] * 34 + [False] * 6
    a_only, b_only = _suite(passed_a), _suite([True] * 40)
    alone = compare(a_only, b_only)
    assert alone.pass_rate.p_value == pytest.approx(2 / 64)  # 6 discordant, all for B
    assert alone.verdict == BETTER
    # the same outcomes, now also testing latency (no signal in it): p doubles to 1/16
    lat = [1.0 + 0.01 * i for i in range(40)]
    with_latency = compare(
        _suite(passed_a, latency_s=lat), _suite([True] * 40, latency_s=lat[::-1])
    )
    assert with_latency.pass_rate.p_adjusted == pytest.approx(2 * 2 / 64)
    assert with_latency.latency is not None and with_latency.latency.p_adjusted is not None
    assert with_latency.latency.p_adjusted > 0.5
    assert with_latency.verdict == NO_DIFFERENCE
    # identical latencies carry nothing to test: reported, not tested, no share of alpha
    flat = [1.0] * 40
    same = compare(_suite(passed_a, latency_s=flat), _suite([True] * 40, latency_s=flat))
    assert same.latency is not None and same.latency.test is None
    assert same.pass_rate.p_adjusted == pytest.approx(2 / 64) and same.verdict == BETTER


def test_score_decides_when_pass_fail_never_differs() -> None:
    rng = random.Random(5)
    base = [rng.uniform(0.2, 0.8) for _ in range(100)]
    a = _suite([True] * 100, score=base)
    b = _suite([True] * 100, score=[s - 0.1 + rng.gauss(0, 0.02) for s in base])
    result = compare(a, b)
    assert result.score is not None
    assert result.score.difference == pytest.approx(-0.1, abs=0.01)
    assert result.score.high is not None and result.score.high < 0
    assert result.score.p_value == pytest.approx(2 / 10_001)  # no resample reaches 0
    assert (result.verdict, result.verdict_metric) == (WORSE, "score")
    # the gate is about the pass rate, which 0-in-100 pins within +-0.036 of no change
    assert result.gate == GATE_PASS


def test_latency_and_cost_are_compared_on_the_cases_that_carry_them() -> None:
    lat_a = [1.0 + 0.05 * i for i in range(30)]
    lat_b = [x + 0.2 + 0.001 * i for i, x in enumerate(lat_a)]  # slower, by distinct amounts
    a = _suite([True] * 30, latency_s=lat_a, cost=[0.01] * 30)
    b = _suite([True] * 30, latency_s=lat_b, cost=[0.015] * 30)
    result = compare(a, b)
    assert result.latency is not None and result.cost is not None
    assert (result.latency.a, result.latency.b) == pytest.approx((1.725, 1.9395))  # medians
    assert result.latency.p_value == pytest.approx(2 / 2**30)  # all 30 slower, no ties: exact
    assert (result.cost.a, result.cost.b, result.cost.difference) == pytest.approx(
        (0.3, 0.45, 0.15)
    )
    assert result.cost.p_value is None and result.cost.p_adjusted is None


def test_repeats_are_reduced_per_case_before_pairing() -> None:
    a = [
        CaseOutcome("x", True, score=0.2, cost=1.0),
        CaseOutcome("x", False, score=0.4, cost=3.0),
        CaseOutcome("y", True),
        CaseOutcome("z", False),
        CaseOutcome("z", True, error=True),  # errored: a failure
    ]
    b = [CaseOutcome("x", True, score=0.9, cost=1.0)] * 3
    b += [CaseOutcome("y", False), CaseOutcome("y", False), CaseOutcome("z", True)]
    result = compare(a, b)
    assert result.n == 3  # cases, not 5 or 6 attempts
    assert (result.pass_rate.a, result.pass_rate.b) == pytest.approx((0.5, 2 / 3))
    assert (result.a_better, result.b_better) == (1, 2)  # y for A; x (1/2 -> 1) and z for B
    assert result.score is not None and result.score.n == 1
    assert (result.score.a, result.score.b) == pytest.approx((0.3, 0.9))
    assert result.cost is not None
    assert (result.cost.a, result.cost.b) == pytest.approx((2.0, 1.0))  # mean per attempt


def test_no_direction_is_called_when_case_counts_and_mean_disagree() -> None:
    def attempts(case: str, passes: int) -> list[CaseOutcome]:
        return [CaseOutcome(case, k < passes) for k in range(10)]

    # 18 cases a little better in B (5/10 -> 6/10), 2 cases lost outright (10/10 -> 0/10)
    a = [o for i in range(20) for o in attempts(f"c{i:02}", 5 if i < 18 else 10)]
    b = [o for i in range(20) for o in attempts(f"c{i:02}", 6 if i < 18 else 0)]
    result = compare(a, b)
    assert (result.a_better, result.b_better) == (2, 18)
    assert result.pass_rate.difference == pytest.approx((18 * 0.1 - 2) / 20)  # -0.01
    assert result.pass_rate.p_value == pytest.approx(2 * (1 + 20 + 190) / 2**20)  # sign test
    assert result.verdict == NO_DIFFERENCE


def test_cases_on_one_side_only_are_reported_and_left_out() -> None:
    a = [CaseOutcome(c, True) for c in ("a", "b", "c", "d")]
    b = [CaseOutcome(c, c != "b") for c in ("b", "c", "d", "e")]
    result = compare(a, b)
    assert (result.n, result.only_in_a, result.only_in_b) == (3, ("a",), ("e",))
    assert result.pass_rate.a == 1.0 and result.pass_rate.b == pytest.approx(2 / 3)
    assert result.summary()[0] == "3 paired cases (1 only in A and 1 only in B, left out)"


def test_comparison_is_json_and_refuses_what_it_cannot_compare() -> None:
    a = _suite([True, False, True], score=[0.1, 0.2, 0.3], latency_s=[1.0, 2.0, 3.0])
    doc = json.loads(json.dumps(compare(a, a).to_dict()))
    assert (doc["tether"], doc["format"], doc["n"]) == ("prompt-comparison", 1, 3)
    assert doc["pass_rate"]["test"] == "mcnemar-exact" and doc["cost"] is None
    assert doc["only_in_a"] == []
    with pytest.raises(UsageError, match="share no case ids"):
        compare([CaseOutcome("a", True)], [CaseOutcome("b", True)])
    with pytest.raises(UsageError, match="max-regression"):
        compare(a, a, max_regression=-0.1)


def test_importing_the_module_loads_neither_scipy_nor_numpy() -> None:
    code = (
        "import sys, tether.prompts.stats\n"
        "assert not {'scipy', 'numpy'} & set(sys.modules), 'stats imports SciPy/NumPy eagerly'"
    )
    done = run_python(code, cwd=Path(sys.prefix))
    assert done.returncode == 0, done.stderr


def test_percentile_matches_numpys_linear_method() -> None:
    import numpy as np

    rng = random.Random(3)
    for n in (1, 2, 5, 100):
        data = [rng.uniform(0, 10) for _ in range(n)]
        for q in (0, 5, 37.5, 50, 95, 100):
            assert percentile(data, q) == pytest.approx(float(np.percentile(data, q)), abs=1e-12)


def test_a_significant_drop_is_said_first_even_when_the_gate_is_inconclusive() -> None:
    # 200 cases: B loses 12 that A passed and wins none: McNemar is clear, but whether the drop
    # (-0.06) is beyond a 0.05 margin is not settled
    a = [CaseOutcome(f"c{i}", True) for i in range(200)]
    b = [CaseOutcome(f"c{i}", i >= 12) for i in range(200)]
    result = compare(a, b, max_regression=0.05)
    lines = result.summary()
    assert lines[0].startswith("B is significantly worse than A on pass_rate (-0.06")
    assert result.gate == "inconclusive"
    assert "the drop is real" in lines[-1] and "paired cases would settle it" in lines[-1]
