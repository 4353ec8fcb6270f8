"""A live run's journal: each process logging to a run appends to its own files in the run's
folder, so ``tether run`` and the script it starts never contend for one file.

``events-<pid>-<random>.tsv`` has one event per line, tab-separated; text fields are JSON
strings so tabs and newlines inside values are safe. Params, tags, inputs and outputs are written
at once:

    k ID KEY                a metric key's number in this process's points file
    p KEY "VALUE"           param           t KEY "VALUE"   tag
    i "PATH" ID             input           o "PATH" ID     output
    a "NAME" ID             artifact        s SEED          seed
    n "TEXT"                note

``metrics-<pid>-<random>.bin`` holds metric points as fixed 28-byte records (key number, step,
time, value; little-endian; NaN and infinities as IEEE 754 has them). ``log_metric`` only
appends to a list; a background thread packs the points every :data:`FLUSH_INTERVAL` seconds
and ``fdatasync``-s them, so every point is durable within a second at a million points a
second. A key's ``k`` line is written (durably) before any point that uses it. Readers skip a
torn last line or record (a process killed mid-write).
"""

from __future__ import annotations

import json
import math
import os
import re
import struct
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tether.errors import RunError

FLUSH_INTERVAL = 0.25
POINT = struct.Struct("<Iqdd")  # key number, step, time, value
VALID_KEY = re.compile(r"^[\w./ :-]{1,250}$")


def check_key(key: object, what: str = "key") -> str:
    if not isinstance(key, str) or not VALID_KEY.match(key) or key.strip() != key:
        raise RunError(
            f"{what} {key!r} is not valid: use 1-250 letters, digits, spaces and _ - . / :"
        )
    return key


class Journal:
    """The appending side, one per process per run. Thread-safe."""

    def __init__(self, folder: Path) -> None:
        # one pair of files per Journal, never shared: key numbers are per Journal, and a pid
        # can come back (a second attach in one process, a recycled pid)
        self.token = f"{os.getpid()}-{os.urandom(4).hex()}"
        self.path = folder / f"events-{self.token}.tsv"
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        bin_path = folder / f"metrics-{self.token}.bin"
        self._bin = os.open(bin_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self._points: list[tuple[str, float, int, float]] = []
        self._key_ids: dict[str, int] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._closed = False
        self._error: OSError | None = None
        # key -> [last, min, max, step, count], kept by the flusher when someone watches (a
        # team server's live view): never on the logging path
        self.summary: dict[str, list[float]] | None = None
        self._thread = threading.Thread(target=self._flush_loop, name="tether-journal", daemon=True)
        self._thread.start()

    # -- writing ---------------------------------------------------------------------------
    def metric(self, key: str, value: float, step: int, ts: float) -> None:
        self._points.append((key, value, step, ts))  # list.append is atomic under the GIL

    def event(self, kind: str, *fields: str) -> None:
        """A non-metric event, written through at once (it survives ``kill -9`` right after)."""
        if self._closed and kind != "k":
            raise RunError("this run has ended: start a new run to log more")
        _write(
            self._fd, (kind + "\t" + "\t".join(fields) + "\n").encode("utf-8", "surrogateescape")
        )

    def flush(self) -> None:
        with self._lock:
            # slice-then-delete, never swap the list: an append racing a swap would be lost
            n = len(self._points)
            points = self._points[:n]
            del self._points[:n]
            if points:
                _write(self._bin, self._pack(points))
                os.fdatasync(self._bin)
                if self.summary is not None:
                    _summarize(self.summary, points)

    def _pack(self, points: list[tuple[str, float, int, float]]) -> bytes:
        ids = self._key_ids
        new = {k for k, _v, _s, _t in points if k not in ids}
        if new:
            for key in sorted(new):
                ids[key] = len(ids)
                self.event("k", str(ids[key]), key)
            os.fdatasync(self._fd)  # a key's name is durable before its points
        pack = POINT.pack
        return b"".join([pack(ids[k], s, t, v) for k, v, s, t in points])

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._wake.set()
        self._thread.join()
        self.flush()
        os.close(self._fd)
        os.close(self._bin)
        if self._error is not None:
            raise RunError(f"metrics could not be written to {self.path}: {self._error}")

    def _flush_loop(self) -> None:
        while not self._closed:
            self._wake.wait(FLUSH_INTERVAL)
            try:
                self.flush()
            except OSError as exc:  # a full disk: reported by close()
                self._error = exc
                return


def _summarize(
    summary: dict[str, list[float]], points: list[tuple[str, float, int, float]]
) -> None:
    for key, value, step, _ts in points:
        held = summary.get(key)
        if held is None:
            summary[key] = [value, value, value, step, 1]
            continue
        held[0], held[3], held[4] = value, step, held[4] + 1
        if value == value:  # NaN never wins min or max
            if not held[1] <= value:  # also replaces a NaN held so far
                held[1] = value
            if not held[2] >= value:
                held[2] = value


def _write(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


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
    # key -> [(step, ts, value)] in time order
    series: dict[str, list[tuple[int, float, float]]] = field(default_factory=dict)
    timed: dict[str, list[tuple[float, int, float]]] = field(default_factory=dict, repr=False)
    last_ts: float = 0.0


def read_events(folder: Path) -> Events:
    out = Events()
    for path in sorted(folder.glob("events-*.tsv")):
        keys: dict[int, str] = {}
        for line in _lines(path):
            fields = line.split("\t")
            if fields[0] == "k" and len(fields) == 3 and fields[1].isdigit():
                keys[int(fields[1])] = fields[2]
            else:
                _apply(out, fields)
        _read_points(
            path.with_name(path.name.replace("events-", "metrics-")[:-4] + ".bin"), keys, out
        )
    for key, timed in out.timed.items():
        timed.sort()  # (time, step, value): one C-level pass when already in order
        out.series[key] = [(s, t, v) for t, s, v in timed]
        out.last_ts = max(out.last_ts, timed[-1][0])
    out.timed.clear()
    return out


def _read_points(path: Path, keys: dict[int, str], out: Events) -> None:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return
    whole = len(data) - len(data) % POINT.size  # a record torn by a crash is dropped
    by_id: dict[int, list[tuple[float, int, float]]] = {}
    for kid, step, ts, value in POINT.iter_unpack(data[:whole]):
        timed = by_id.get(kid)
        if timed is None:
            timed = by_id[kid] = []
        timed.append((ts, step, value))
    for kid, timed in by_id.items():
        if kid in keys:
            out.timed.setdefault(keys[kid], []).extend(timed)


def _lines(path: Path) -> Iterator[str]:
    data = path.read_bytes().decode("utf-8", "surrogateescape")
    complete, _, _torn = data.rpartition("\n")
    yield from complete.split("\n") if complete else ()


def _apply(out: Events, f: list[str]) -> None:
    try:
        kind = f[0]
        if kind in ("p", "t"):
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
