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
