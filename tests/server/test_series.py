"""The chart columns: M4 over the block pyramid gives exactly what M4 over every point gives
(the same first, last, smallest and largest point of each pixel column), raw points once few
enough, NaN and infinities as marks; the binary file round-trips and a damaged one is refused
(it is rebuilt from the history document)."""

from __future__ import annotations

import bisect
import itertools
import math
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from tether.team.series import BLOCK, Column, Columns

finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False)


def _bucket_edges(steps: list[float], width: int) -> list[int]:
    x0, span = steps[0], (steps[-1] - steps[0]) or 1.0
    return [bisect.bisect_left(steps, x0 + span * (b + 1) / width) for b in range(width - 1)]


def _naive(steps: list[float], values: list[float], width: int) -> list[tuple[float, ...]]:
    """Each non-empty bucket's (first step, last step, min value, max value)."""
    cuts = [0, *_bucket_edges(steps, width), len(steps)]
    out = []
    for a, b in itertools.pairwise(cuts):
        if b > a:
            out.append((steps[a], steps[b - 1], min(values[a:b]), max(values[a:b])))
    return out


@settings(max_examples=150, deadline=None)
@given(
    st.lists(finite, min_size=1, max_size=3 * BLOCK * 8),
    st.integers(min_value=1, max_value=60),
    st.integers(min_value=1, max_value=5),
)
def test_m4_over_the_pyramid_is_m4_over_every_point(
    values: list[float], width: int, gap: int
) -> None:
    steps = [float(i * gap) for i in range(len(values))]
    col = Column.build(list(zip(steps, values, strict=True)))
    xs, ys, reduced = col.points(0, len(steps), width)
    assert reduced == (len(steps) > 4 * width)
    if not reduced:
        assert (xs, ys) == (steps, values)
        return
    assert xs == sorted(xs)
    got: dict[int, list[tuple[float, float]]] = {}
    cuts = _bucket_edges(steps, width)
    for x, y in zip(xs, ys, strict=True):
        got.setdefault(bisect.bisect_right(cuts, steps.index(x)), []).append((x, y))
    shown = [
        (min(p[0] for p in pts), max(p[0] for p in pts), min(p[1] for p in pts),
         max(p[1] for p in pts))
        for _, pts in sorted(got.items())
    ]  # fmt: skip
    assert shown == _naive(steps, values, width)


def test_nan_and_infinities_are_marks_and_the_file_round_trips() -> None:
    points = [(float(i), float(i % 7)) for i in range(1000)]
    points[10] = (10.0, math.nan)
    points[20] = (20.0, math.inf)
    points[30] = (30.0, -math.inf)
    col = Column.build(points)
    assert col.marks == [(10.0, "NaN"), (20.0, "Infinity"), (30.0, "-Infinity")]
    assert len(col.steps) == 997
    again = Column.load(col.dump())
    assert again is not None and again.dump() == col.dump()
    assert Column.load(b"not a column") is None
    truncated = col.dump()[: len(col.dump()) // 2]
    assert Column.load(truncated) is None


def test_a_zoomed_range_is_raw_and_exact() -> None:
    points = [(float(i), math.sin(i / 50)) for i in range(100_000)]
    col = Column.build(points)
    lo, hi = col.span(70_000, 70_100)
    xs, ys, reduced = col.points(lo, hi, 800)
    assert not reduced and xs == [float(i) for i in range(70_000, 70_101)]
    assert ys == [math.sin(i / 50) for i in range(70_000, 70_101)]


def test_columns_are_cached_on_disk_and_a_damaged_file_is_rebuilt(tmp_path: Path) -> None:
    parsed: list[int] = []

    def parse() -> dict[str, list[tuple[float, float]]]:
        parsed.append(1)
        return {"loss": [(float(i), 1 / (i + 1)) for i in range(500)], "acc": [(0.0, 0.5)]}

    oid = "blake3:" + "ab" * 32
    first = Columns(tmp_path).get(oid, "loss", parse)
    assert first is not None and len(parsed) == 1
    again = Columns(tmp_path).get(oid, "acc", parse)  # another process: from the files
    assert again is not None and list(again.values) == [0.5] and len(parsed) == 1
    for f in (tmp_path / oid.replace(":", "-")).glob("*.col"):
        f.write_bytes(b"damaged")
    rebuilt = Columns(tmp_path).get(oid, "loss", parse)
    assert rebuilt is not None and rebuilt.dump() == first.dump() and len(parsed) == 2
    assert Columns(tmp_path).get(oid, "missing", parse) is None
