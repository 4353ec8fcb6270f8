"""A metric's history as binary columns with a precomputed pyramid, for charts.

A run's history document (JSON, every metric) is parsed once per metric into columns of
doubles (steps, values; NaN and infinities kept apart as marks) plus one level of summaries:
for each block of :data:`BLOCK` points, where its smallest and largest value are. The columns are
kept in a cache folder (``<key>.col``: rebuildable from the document at any time, so losing
them loses nothing) and in memory for the few most recent series.

A chart asks for a step range and a pixel width. With at most 4 points per pixel the raw points
are sent; else M4 (Jugel et al., VLDB 2014): one bucket per pixel column, by step value, each
keeping its first, last, smallest and largest point. A bucket's extremes come from the blocks
it covers whole and the raw points at its two edges, so a query costs about ``width x (log n
+ n / width / BLOCK + 2 BLOCK)`` steps, not a pass over every point.
"""

from __future__ import annotations

import bisect
import math
import struct
import threading
from array import array
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BLOCK = 64
RAW_PER_PIXEL = 4
FORMAT = b"TTHCOL1\n"
_KEPT = 32  # columns kept in memory per process


@dataclass(frozen=True)
class Column:
    steps: array[float]  # sorted
    values: array[float]  # finite
    marks: list[tuple[float, str]]  # (step, "NaN" | "Infinity" | "-Infinity")
    lows: array[int]  # per block: the index of its smallest value
    highs: array[int]  # per block: the index of its largest value

    @classmethod
    def build(cls, points: list[tuple[float, float]]) -> Column:
        """From (step, value) points in any order."""
        points.sort(key=lambda p: p[0])
        steps, values = array("d"), array("d")
        marks: list[tuple[float, str]] = []
        for s, v in points:
            if math.isfinite(v):
                steps.append(s)
                values.append(v)
            else:
                marks.append(
                    (s, "NaN" if math.isnan(v) else ("Infinity" if v > 0 else "-Infinity"))
                )
        lows, highs = array("q"), array("q")
        for start in range(0, len(values), BLOCK):
            chunk = values[start : start + BLOCK]
            lows.append(start + min(range(len(chunk)), key=chunk.__getitem__))
            highs.append(start + max(range(len(chunk)), key=chunk.__getitem__))
        return cls(steps, values, marks, lows, highs)

    # -- the binary file -------------------------------------------------------------------
    def dump(self) -> bytes:
        marks = "\n".join(f"{s!r} {m}" for s, m in self.marks).encode()
        head = struct.pack("<QQQ", len(self.steps), len(self.lows), len(marks))
        return b"".join(
            [FORMAT, head, self.steps.tobytes(), self.values.tobytes(), self.lows.tobytes(),
             self.highs.tobytes(), marks]
        )  # fmt: skip

    @classmethod
    def load(cls, data: bytes) -> Column | None:
        """The column in ``data``, or None when it is not one (a cache is only a cache)."""
        try:
            if not data.startswith(FORMAT):
                return None
            at = len(FORMAT)
            n, blocks, marks_len = struct.unpack_from("<QQQ", data, at)
            at += 24
            floats: list[array[float]] = []
            ints: list[array[int]] = []
            for typecode, count in (("d", n), ("d", n), ("q", blocks), ("q", blocks)):
                a: array[Any] = array(typecode)
                a.frombytes(data[at : at + 8 * count])
                if len(a) != count:
                    return None
                (floats if typecode == "d" else ints).append(a)
                at += 8 * count
            text = data[at : at + marks_len].decode()
            rows = (ln.partition(" ") for ln in text.split("\n") if ln)
            marks = [(float(s), m) for s, _, m in rows]
            return cls(floats[0], floats[1], marks, ints[0], ints[1])
        except (struct.error, ValueError, UnicodeDecodeError):
            return None

    # -- a chart's points ------------------------------------------------------------------
    def span(self, start: float | None, end: float | None) -> tuple[int, int]:
        lo = 0 if start is None else bisect.bisect_left(self.steps, start)
        hi = len(self.steps) if end is None else bisect.bisect_right(self.steps, end)
        return lo, max(lo, hi)

    def points(self, lo: int, hi: int, width: int) -> tuple[list[float], list[float], bool]:
        """The points of ``[lo, hi)`` for ``width`` pixels: raw, or M4-reduced (True)."""
        if hi - lo <= RAW_PER_PIXEL * width:
            return self.steps[lo:hi].tolist(), self.values[lo:hi].tolist(), False
        x0, x1 = self.steps[lo], self.steps[hi - 1]
        span = (x1 - x0) or 1.0
        keep: list[int] = []
        i0 = lo
        for b in range(width):
            edge = x0 + span * (b + 1) / width
            i1 = hi if b == width - 1 else bisect.bisect_left(self.steps, edge, i0, hi)
            if i1 > i0:
                low, high = self._extremes(i0, i1)
                keep.extend(sorted({i0, low, high, i1 - 1}))
            i0 = i1
        return [self.steps[i] for i in keep], [self.values[i] for i in keep], True

    def _extremes(self, i0: int, i1: int) -> tuple[int, int]:
        """The indexes of the smallest and largest value in ``[i0, i1)``."""
        v = self.values
        first_block, last_block = -(-i0 // BLOCK), i1 // BLOCK  # blocks wholly inside
        candidates_low: list[int] = []
        candidates_high: list[int] = []
        if first_block < last_block:
            candidates_low += self.lows[first_block:last_block].tolist()
            candidates_high += self.highs[first_block:last_block].tolist()
            edges = [*range(i0, first_block * BLOCK), *range(last_block * BLOCK, i1)]
        else:
            edges = list(range(i0, i1))
        candidates_low += edges
        candidates_high += edges
        return min(candidates_low, key=v.__getitem__), max(candidates_high, key=v.__getitem__)


def _mark(value: float) -> str:
    return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")


class Columns:
    """The columns of the series a server charts: memory first, then the cache folder, then
    the run's history document (``parse``: key -> points), which rebuilds both."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._kept: OrderedDict[tuple[str, str], Column] = OrderedDict()
        self._lock = threading.Lock()
        self._building = threading.Lock()

    def get(
        self, oid: str, key: str, parse: Callable[[], dict[str, list[tuple[float, float]]]]
    ) -> Column | None:
        """``key``'s column of the history ``oid`` (None: the history has no such metric)."""
        with self._lock:
            if (oid, key) in self._kept:
                self._kept.move_to_end((oid, key))
                return self._kept[(oid, key)]
        with self._building:  # one parse of a history at a time, whoever asks
            found = self._read_or_build(oid, key, parse)
        if found is None:
            return None
        with self._lock:
            self._kept[(oid, key)] = found
            while len(self._kept) > _KEPT:
                self._kept.popitem(last=False)
        return found

    def _read_or_build(
        self, oid: str, key: str, parse: Callable[[], dict[str, list[tuple[float, float]]]]
    ) -> Column | None:
        import os
        import tempfile

        folder = self.folder / oid.replace(":", "-")
        path = folder / _name(key)
        found = Column.load(path.read_bytes()) if path.exists() else None
        if found is not None:
            return found
        series = parse()
        if key not in series:
            return None
        folder.mkdir(parents=True, exist_ok=True)
        for other, points in series.items():  # one parse fills the whole history's columns
            col = Column.build(points)
            fd, tmp = tempfile.mkstemp(dir=folder, suffix=".tmp")
            with os.fdopen(fd, "wb") as f:
                f.write(col.dump())
            os.replace(tmp, folder / _name(other))
            if other == key:
                found = col
        return found


def _name(key: str) -> str:
    import hashlib

    return hashlib.sha256(key.encode()).hexdigest()[:32] + ".col"


class ParseSeries:
    """The metric history document's points, read on demand: key -> [(step, value)]."""

    def __init__(self, read: Callable[[], bytes], oid: str) -> None:
        self.read, self.oid = read, oid

    def __call__(self) -> dict[str, list[tuple[float, float]]]:
        from tether.runs.record import load_series

        return {
            key: [(float(s), v) for s, _, v in points]
            for key, points in load_series(self.read(), self.oid).items()
        }
