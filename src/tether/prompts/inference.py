"""The statistical building blocks of :mod:`tether.prompts.stats`: the Wilson interval of a
pass rate, the exact McNemar test, the paired percentile bootstrap (and its own p-value), the
Wilcoxon signed-rank test of paired latencies, and Holm's adjustment. SciPy and NumPy are
imported inside the functions that need them."""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Mapping, Sequence
from statistics import NormalDist
from typing import TYPE_CHECKING

from tether.errors import UsageError

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

RESAMPLES = 10_000
_CHUNK = 2_000_000  # bootstrap indices drawn per block, so memory stays flat at any n


def z_of(confidence: float) -> float:
    """The two-sided normal quantile of ``confidence``."""
    return NormalDist().inv_cdf((1 + confidence) / 2)


def check_level(name: str, value: float) -> None:
    if not 0 < value < 1:
        raise UsageError(f"{name} must be between 0 and 1 (exclusive), got {value}")


def wilson_interval(passes: float, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a pass rate; ``passes`` may be a sum of per-case pass fractions.

    No trials say nothing: ``n == 0`` gives (0.0, 1.0).
    """
    check_level("confidence", confidence)
    if not 0 <= passes <= n:
        raise UsageError(f"passes must be between 0 and n={n}, got {passes}")
    if n == 0:
        return 0.0, 1.0
    z2, p = z_of(confidence) ** 2, passes / n
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = math.sqrt(z2) / (1 + z2 / n) * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def percentile(values: Iterable[float], q: float) -> float | None:
    """The q-th percentile (0-100, NumPy's linear interpolation); None for no values."""
    if not 0 <= q <= 100:
        raise UsageError(f"a percentile is between 0 and 100, got {q}")
    data = sorted(values)
    if not data:
        return None
    # NumPy's default ("linear") method, without importing NumPy on the eval path
    h = (len(data) - 1) * q / 100
    lo = math.floor(h)
    hi = min(lo + 1, len(data) - 1)
    return float(data[lo] + (h - lo) * (data[hi] - data[lo]))


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p: a binomial test of b against b + c discordant pairs at 1/2."""
    from scipy.stats import binomtest  # type: ignore[import-untyped]

    if b < 0 or c < 0:
        raise UsageError(f"discordant counts cannot be negative, got b={b}, c={c}")
    if b + c == 0:
        return 1.0
    return min(1.0, float(binomtest(b, b + c, 0.5, alternative="two-sided").pvalue))


def bootstrap_means(diffs: Sequence[float], resamples: int, seed: int) -> NDArray[np.float64]:
    """Means of ``resamples`` resamples (with replacement) of ``diffs``, drawn in blocks."""
    import numpy as np

    if not diffs:
        raise UsageError("there are no paired differences to resample")
    if resamples < 1:
        raise UsageError(f"resamples must be at least 1, got {resamples}")
    data = np.asarray(diffs, dtype=np.float64)
    rng = np.random.default_rng(seed)
    rows = max(1, _CHUNK // data.size)
    blocks = []
    for start in range(0, resamples, rows):
        idx = rng.integers(0, data.size, size=(min(rows, resamples - start), data.size))
        blocks.append(data[idx].mean(axis=1))
    return np.concatenate(blocks)


def paired_bootstrap(
    diffs: Sequence[float], *, confidence: float = 0.95, resamples: int = RESAMPLES, seed: int = 0
) -> tuple[float, float, float]:
    """(mean, low, high): the mean paired difference and its percentile bootstrap interval.

    Resamples whole pairs, so give one difference per case. The same seed gives the same interval.
    """
    check_level("confidence", confidence)
    low, high = percentile_interval(bootstrap_means(diffs, resamples, seed), confidence)
    return math.fsum(diffs) / len(diffs), low, high


def percentile_interval(means: NDArray[np.float64], confidence: float) -> tuple[float, float]:
    import numpy as np

    tail = (1 - confidence) / 2
    low, high = np.quantile(means, [tail, 1 - tail])
    return float(low), float(high)


def bootstrap_p(means: NDArray[np.float64]) -> float:
    below, above = int((means <= 0).sum()), int((means >= 0).sum())
    return min(1.0, 2 * (min(below, above) + 1) / (means.size + 1))


def wilcoxon_latency(a: Sequence[float], b: Sequence[float]) -> float:
    """Two-sided Wilcoxon signed-rank p for paired latencies (B - A).

    Zero differences (cached calls, a coarse clock) use Pratt's method: they are ranked, as the
    smallest, and then dropped, so the other pairs keep the ranks they hold among *all* pairs
    rather than being re-ranked as if the zeros had never been run; the null variance is corrected
    for them. With no zeros or ties and at most 50 pairs the p-value is exact; with zeros or tied
    differences SciPy permutes exhaustively up to 13 pairs and uses the zero- and tie-corrected
    normal approximation above that. No pairs, or every difference zero: 1.0.
    """
    from scipy.stats import wilcoxon

    if len(a) != len(b):
        raise UsageError(f"latencies must be paired: {len(a)} for A, {len(b)} for B")
    if not a or all(x == y for x, y in zip(a, b, strict=True)):
        return 1.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        p = float(wilcoxon(b, a, zero_method="pratt").pvalue)
    return 1.0 if math.isnan(p) else min(1.0, p)


def holm(pvalues: Mapping[str, float]) -> dict[str, float]:
    """Holm step-down adjusted p-values: sorted ascending, the i-th (from 0) of m is multiplied
    by m - i, then made non-decreasing along that order and capped at 1."""
    order = sorted(pvalues, key=lambda name: (pvalues[name], name))
    adjusted: dict[str, float] = {}
    running = 0.0
    for i, name in enumerate(order):
        running = max(running, min(1.0, (len(order) - i) * pvalues[name]))
        adjusted[name] = running
    return {name: adjusted[name] for name in pvalues}
