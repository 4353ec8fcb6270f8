"""A live run's journal: each process logging to a run appends to its own ``events-<pid>.tsv`` in
the run's folder, so ``tether run`` and the script it starts never contend for one file.

One event per line, tab-separated; text fields are JSON strings so tabs and newlines inside
values are safe. Params, tags, inputs and outputs are written at once; metrics are buffered and
written by a background thread every :data:`FLUSH_INTERVAL` seconds, then ``fdatasync``-ed, so a
``log_metric`` call costs a list append and every point is durable within a second.

    m KEY VALUE STEP TS     metric point (VALUE is Python's float repr: nan and inf round-trip)
    p KEY "VALUE"           param           t KEY "VALUE"   tag
    i "PATH" ID             input           o "PATH" ID     output
    a "NAME" ID             artifact        s SEED          seed
    n "TEXT"                note

A reader skips a torn last line (a process killed mid-write).
"""

from __future__ import annotations

import json
import math
import os
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tether.errors import RunError

FLUSH_INTERVAL = 0.25
_KEY = re.compile(r"^[\w./ :-]{1,250}$")


def check_key(key: object, what: str = "key") -> str:
    if not isinstance(key, str) or not _KEY.match(key) or key.strip() != key:
        raise RunError(
            f"{what} {key!r} is not valid: use 1-250 letters, digits, spaces and _ - . / :"
        )
    return key


class Journal:
    """The appending side, one per process per run. Thread-safe."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / f"events-{os.getpid()}.tsv"
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self._points: list[tuple[str, float, int, float]] = []
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._closed = False
        self._error: OSError | None = None
        self._thread = threading.Thread(target=self._flush_loop, name="tether-journal", daemon=True)
        self._thread.start()

    # -- writing ---------------------------------------------------------------------------
    def metric(self, key: str, value: float, step: int, ts: float) -> None:
        self._points.append((key, value, step, ts))  # list.append is atomic under the GIL

    def event(self, kind: str, *fields: str) -> None:
        """A non-metric event, written through at once (it survives ``kill -9`` right after)."""
        self._write((kind + "\t" + "\t".join(fields) + "\n").encode("utf-8", "surrogateescape"))

    def flush(self) -> None:
        with self._lock:
            # slice-then-delete, never swap the list: an append racing a swap would be lost
            n = len(self._points)
            points = self._points[:n]
            del self._points[:n]
            if points:
                self._write(_format(points))
                os.fdatasync(self._fd)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._wake.set()
        self._thread.join()
        self.flush()
        os.close(self._fd)
        if self._error is not None:
            raise RunError(f"metrics could not be written to {self.path}: {self._error}")

    def _write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(self._fd, view) :]

    def _flush_loop(self) -> None:
        while not self._closed:
            self._wake.wait(FLUSH_INTERVAL)
            try:
                self.flush()
            except OSError as exc:  # a full disk: reported by close()
                self._error = exc
                return


def _format(points: list[tuple[str, float, int, float]]) -> bytes:
    return "".join(f"m\t{k}\t{v!r}\t{s}\t{t!r}\n" for k, v, s, t in points).encode()


def text(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)


@dataclass
class Events:
    """Everything the journals of one run say, merged."""

    params: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    inputs: dict[str, str] = field(default_factory=dict)
    outputs: dict[str, str] = field(default_factory=dict)
    artifacts: dict[str, str] = field(default_factory=dict)
    seeds: list[int] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    # key -> [(step, ts, value)] in logging order
    series: dict[str, list[tuple[int, float, float]]] = field(default_factory=dict)
    last_ts: float = 0.0


def read_events(folder: Path) -> Events:
    out = Events()
    for path in sorted(folder.glob("events-*.tsv")):
        for line in _lines(path):
            _apply(out, line.split("\t"))
    for points in out.series.values():
        points.sort(key=lambda p: (p[1], p[0]))
    return out


def _lines(path: Path) -> Iterator[str]:
    data = path.read_bytes().decode("utf-8", "surrogateescape")
    complete, _, _torn = data.rpartition("\n")
    yield from complete.split("\n") if complete else ()


def _apply(out: Events, f: list[str]) -> None:
    try:
        kind = f[0]
        if kind == "m":
            ts = float(f[4])
            out.series.setdefault(f[1], []).append((int(f[3]), ts, float(f[2])))
            out.last_ts = max(out.last_ts, ts)
        elif kind in ("p", "t"):
            (out.params if kind == "p" else out.tags)[f[1]] = json.loads(f[2])
        elif kind in ("i", "o", "a"):
            target = {"i": out.inputs, "o": out.outputs, "a": out.artifacts}[kind]
            target[json.loads(f[1])] = f[2]
        elif kind == "s":
            out.seeds.append(int(f[1]))
        elif kind == "n":
            out.notes.append(json.loads(f[1]))
    except (IndexError, ValueError):
        return  # a line torn by a crash in the middle of a write


def now() -> float:
    return time.time()


def finite_or_text(value: float) -> float | str:
    """JSON has no NaN or infinity: those travel as the strings JavaScript also understands."""
    if math.isfinite(value):
        return value
    return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
