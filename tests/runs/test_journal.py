"""The live run's journal: what a crash mid-write leaves behind is read, torn tails are not."""

from __future__ import annotations

import math
import os
from pathlib import Path

from tether.runs.journal import POINT, Journal, read_events, text


def test_points_and_events_round_trip_with_nan_and_infinities(tmp_path: Path) -> None:
    j = Journal(tmp_path)
    j.event("p", "lr", text("0.1"))
    for i, v in enumerate([1.0, math.nan, math.inf, -math.inf]):
        j.metric("m", v, i, 100.0 + i)
    j.metric("other", 2.0, 0, 99.0)
    j.close()
    ev = read_events(tmp_path)
    assert ev.params == {"lr": "0.1"}
    steps = [p[0] for p in ev.series["m"]]
    values = [p[2] for p in ev.series["m"]]
    assert steps == [0, 1, 2, 3] and values[0] == 1.0 and math.isnan(values[1])
    assert values[2:] == [math.inf, -math.inf]
    assert ev.series["other"] == [(0, 99.0, 2.0)]
    assert ev.last_ts == 103.0


def test_torn_tails_are_skipped(tmp_path: Path) -> None:
    j = Journal(tmp_path)
    j.metric("m", 1.0, 0, 1.0)
    j.metric("m", 2.0, 1, 2.0)
    j.close()
    pid = os.getpid()
    with open(tmp_path / f"metrics-{pid}.bin", "ab") as f:
        f.write(POINT.pack(0, 2, 3.0, 3.0)[:13])  # killed in the middle of a record
    with open(tmp_path / f"events-{pid}.tsv", "ab") as f:
        f.write(b'p\tbatch\t"3')  # and in the middle of a line
    ev = read_events(tmp_path)
    assert [p[2] for p in ev.series["m"]] == [1.0, 2.0]
    assert ev.params == {}


def test_two_processes_journals_merge_in_time_order(tmp_path: Path) -> None:
    a = Journal(tmp_path)
    a.metric("m", 1.0, 0, 10.0)
    a.metric("m", 3.0, 2, 30.0)
    a.close()
    other = tmp_path / "events-999999.tsv"  # as a child process would have written them
    other.write_text("k\t0\tm\n")
    (tmp_path / "metrics-999999.bin").write_bytes(POINT.pack(0, 1, 20.0, 2.0))
    ev = read_events(tmp_path)
    assert [p[2] for p in ev.series["m"]] == [1.0, 2.0, 3.0]
