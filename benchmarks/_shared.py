"""What the benchmarks share: running an untimed setup command, snapshotting Tether's source,
writing the results. Standard library only (it is also imported by the run-tracking worker,
inside MLflow's virtual environment)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any


class CommandError(RuntimeError):
    pass


def tail(text: str, lines: int = 15) -> str:
    return "\n".join(text.rstrip().splitlines()[-lines:])


def run(argv: list[Any], cwd: Path | None = None, env: dict[str, str] | None = None) -> str:
    """An untimed setup command; a failure raises CommandError carrying its output."""
    args = [str(a) for a in argv]
    try:
        proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, check=True)
    except subprocess.CalledProcessError as exc:
        raise CommandError(
            f"`{' '.join(args)}` failed with exit code {exc.returncode} in {cwd}:\n"
            + tail(exc.stdout + exc.stderr)
        ) from exc
    return proc.stdout


def chosen_workloads(parser: Any, opts: Any, known: Any) -> list[str]:
    """The comma list in ``opts.workloads``, each one of ``known`` (else a usage error)."""
    names = [n.strip() for n in opts.workloads.split(",") if n.strip()]
    unknown = [n for n in names if n not in known]
    if unknown or not names:
        parser.error(f"unknown workload(s) {unknown}: choose from {', '.join(known)}")
    return names


PROJECT = Path(__file__).resolve().parent.parent


def snapshot_tether(dest: Path, python: Any, env: dict[str, str]) -> None:
    """Copy src/tether to ``dest``, so edits made while a benchmark runs do not change what it
    runs, and check that ``python`` with ``env`` imports that copy."""
    shutil.rmtree(dest, ignore_errors=True)
    ignore = shutil.ignore_patterns("__pycache__")
    shutil.copytree(PROJECT / "src" / "tether", dest / "tether", ignore=ignore)
    where = run([python, "-c", "import tether; print(tether.__file__)"], env=env).strip()
    if not where.startswith(str(dest)):
        raise CommandError(f"the Tether snapshot is not the one imported: {where}")


def write_results(out: Path, doc: dict[str, Any], errors: list[str], seconds: float) -> int:
    """Print the failures, write ``doc`` (with ``errors``) as JSON; the exit status."""
    for error in errors:
        print(f"FAILED: {error}")
    out.write_text(json.dumps({**doc, "errors": errors}, indent=2, default=str) + "\n")
    print(f"\nresults: {out} ({seconds} s)", flush=True)
    return 1 if errors else 0


# -- for the server benchmark (bench_server.py), which its clients import too ----------------
class Http:
    """One keep-alive HTTP connection to a server on this machine; JSON in and out (``raw``:
    bytes in; ``parse=False``: text out). A 4xx or 5xx raises CommandError."""

    def __init__(self, url: str) -> None:
        import http.client
        import urllib.parse

        parts = urllib.parse.urlsplit(url)
        self.conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=120)

    def call(
        self, method: str, path: str, body: Any = None, raw: bytes | None = None, parse: bool = True
    ) -> Any:
        import http.client

        data = raw if raw is not None else None if body is None else json.dumps(body).encode()
        kind = "application/octet-stream" if raw is not None else "application/json"
        for attempt in (1, 2):  # a keep-alive connection the server closed: opened again once
            try:
                self.conn.request(method, path, data, {"Content-Type": kind})
                resp = self.conn.getresponse()
                text = resp.read()
                break
            except (http.client.HTTPException, ConnectionError):
                self.conn.close()
                if attempt == 2:
                    raise
        if resp.status >= 400:
            raise CommandError(f"{method} {path}: HTTP {resp.status} {text[:300]!r}")
        return json.loads(text) if parse and text else text.decode()


def percentile(values: list[float], q: float) -> float | None:
    """The nearest-rank ``q`` quantile (0..1) of ``values``; None when there are none."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else None


def histogram_samples(exposition: str, metric: str, labels: dict[str, str]) -> dict[str, float]:
    """A Prometheus histogram's samples whose labels include ``labels``, added up over the
    others: bucket bound ("0.005", "+Inf") or "_sum", "_count" -> value."""
    import re

    out: dict[str, float] = {}
    for name, text, value in re.findall(r"^(\w+)\{(.*)\} (\S+)$", exposition, re.MULTILINE):
        if name.startswith(metric):
            have = dict(re.findall(r'(\w+)="([^"]*)"', text))
            if all(have.get(k) == v for k, v in labels.items()):
                key = have.get("le", name[len(metric) :])
                out[key] = out.get(key, 0.0) + float(value)
    return out


def histogram_ms(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """Mean, p50 and p99 in ms of what a histogram saw between two scrapes; the quantiles
    interpolated linearly inside their bucket, as Prometheus's histogram_quantile does."""
    d = {k: v - before.get(k, 0.0) for k, v in after.items()}
    count = d.get("_count", 0.0)
    if not count:
        return {}
    buckets = sorted((float(k), v) for k, v in d.items() if not k.startswith("_"))

    def quantile(q: float) -> float:
        rank, low, seen = q * count, 0.0, 0.0
        for bound, total in buckets:
            if total >= rank:
                if bound == float("inf"):
                    return 1000 * low
                return 1000 * (low + (bound - low) * (rank - seen) / max(total - seen, 1e-9))
            low, seen = bound, total
        return 1000 * low

    return {"mean": 1000 * d["_sum"] / count, "p50": quantile(0.5), "p99": quantile(0.99)}


class Workers:
    """Processes that set up, print READY, then run each phase named on their standard input
    (``NAME JSON``) and print ``RESULT JSON``: a barrier, so that all of them start a phase at
    the same moment. :func:`serve_phases` is their side. A worker's stderr goes to a log."""

    def __init__(self, argvs: list[list[str]], cwds: list[Path], env: dict[str, str]) -> None:
        self.procs = []
        for argv, cwd in zip(argvs, cwds, strict=True):
            with open(cwd.parent / f"{cwd.name}.log", "w") as log:
                self.procs.append(subprocess.Popen(
                    argv, cwd=cwd, env=env, text=True, stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE, stderr=log))  # fmt: skip
        for i in range(len(self.procs)):
            self.expect(i, "READY")

    def expect(self, i: int, word: str) -> dict[str, Any]:
        for line in self.procs[i].stdout or ():
            if line.startswith(word):
                return dict(json.loads(line[len(word) :].strip() or "{}"))
        raise CommandError(f"worker {i} stopped before {word}: see its log beside its folder")

    def phase(self, name: str, args: list[dict[str, Any]]) -> tuple[float, list[dict[str, Any]]]:
        """Phase ``name`` in worker i with ``args[i]`` (the first len(args) workers): when it
        started (wall clock) and their results; CommandError if any of them failed."""
        import time

        start = time.time()
        for proc, arg in zip(self.procs, args, strict=False):
            assert proc.stdin is not None
            proc.stdin.write(f"{name} {json.dumps(arg)}\n")
            proc.stdin.flush()
        results = [self.expect(i, "RESULT") for i in range(len(args))]
        if failed := [r["error"] for r in results if "error" in r]:
            raise CommandError(f"{len(failed)} worker(s) failed {name}: {failed[0]}")
        return start, results

    def close(self) -> None:
        """Tell each worker to exit; kill those still busy 30 s later (a phase failed)."""
        import contextlib
        import time

        for proc in self.procs:
            with contextlib.suppress(OSError):
                assert proc.stdin is not None
                proc.stdin.write("exit\n")
                proc.stdin.close()
        deadline = time.time() + 30
        for proc in self.procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(max(0.1, deadline - time.time()))
            proc.kill()


def serve_phases(phases: dict[str, Any]) -> None:
    """A worker's side of :class:`Workers`: READY, then each phase asked for, until ``exit``."""
    import sys
    import time

    print("READY", flush=True)
    for line in sys.stdin:
        name, _, args = line.strip().partition(" ")
        if name == "exit":
            return
        try:
            out = phases[name](json.loads(args or "{}"))
        except Exception as exc:  # reported to the parent, which notes the failure
            out = {"error": f"{type(exc).__name__}: {exc}"}
        print("RESULT " + json.dumps({"end": time.time(), **out}), flush=True)
