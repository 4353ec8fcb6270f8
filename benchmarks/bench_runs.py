"""Tether against MLflow on run tracking: logging, sealing, searching, start-up and import.

``.venv/bin/python benchmarks/bench_runs.py`` runs every workload with both tools (``--quick``:
smaller, ``--workloads``: a subset). MLflow is installed on first use into
``benchmarks/.venv-mlflow``. Each tool runs this file as a worker, in its own interpreter, on its
own fresh repository and database under ``benchmarks/.work/runs/``; results go to
``benchmarks/.work/runs-results.json``. Only the standard library is imported at the top.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from _shared import CommandError, chosen_workloads, run, snapshot_tether, tail

HERE = Path(__file__).resolve().parent
PROJECT = HERE.parent
WORK = HERE / ".work"
RUNS = WORK / "runs"
LOGS = WORK / "runs-logs"
TETHER_PY = PROJECT / ".venv" / "bin" / "python"
TETHER_EXE = PROJECT / ".venv" / "bin" / "tether"
TETHER_SRC = WORK / "runs-tether-src"  # a copy of src/: one run measures one version of Tether
WORKER = WORK / "runs-worker.py"  # a copy of this file, committed in each repo as train.py
MLFLOW_VENV = HERE / ".venv-mlflow"
MLFLOW_PY = MLFLOW_VENV / "bin" / "python"
# tried in order: mlflow 3.18.0 needs mlflow-skinny==3.18.0, which this machine's index lacks
MLFLOW_VERSIONS = ("3.18.0", "3.17.2")
TOOLS = ("tether", "mlflow")
PYTHON = {"tether": TETHER_PY, "mlflow": MLFLOW_PY}
LOADS: dict[str, float] = {}  # 1-minute load average before each worker: a busy machine is noisy
LRS = ("0.1", "0.03", "0.01", "0.003", "0.001")
TETHER_WHERE, TETHER_SORT = "metrics.acc > 0.9 and params.lr = 0.01", "metrics.acc desc"
MLFLOW_FILTER, MLFLOW_ORDER = "metrics.acc > 0.9 and params.lr = '0.01'", "metrics.acc DESC"

FULL: dict[str, dict[str, int]] = {
    "runs1000": {"runs": 1000},
    "log_metric": {"tether": 1_000_000, "mlflow": 300},
    "log_batch": {"calls": 10, "keys": 1000},
    "search10k": {"runs": 10_000},
    "search100k": {"runs": 100_000, "batch": 5000},
    "start_end": {"files": 1000, "samples": 50},
    "import": {"tries": 5},
}
QUICK: dict[str, dict[str, int]] = {
    **FULL, "runs1000": {"runs": 100}, "log_metric": {"tether": 100_000, "mlflow": 100},
    "search10k": {"runs": 1000}, "search100k": {"runs": 10_000, "batch": 5000},
    "start_end": {"files": 1000, "samples": 20},
}  # fmt: skip
Result = dict[str, Any]  # what a worker printed, or {"error": ...}
Results = dict[str, Result]  # by tool
TARGET_PACKAGES = 150  # the start_end targets assume a venv with this many distributions


# -- workers: run by each tool's own interpreter, in the tool's repository --------------------
def tools_api(tool: str, spec: dict[str, Any]) -> SimpleNamespace:
    """The same few verbs for both tools; ``start`` returns the run id, ``count`` the runs."""
    if tool == "tether":
        import tether as t

        return SimpleNamespace(
            ctx=t.start_run, start=lambda: t.start_run().id, end=t.end_run, param=t.log_param,
            metric=t.log_metric, count=lambda: len(t.search_runs()),
        )  # fmt: skip
    import mlflow as m

    m.set_tracking_uri(spec["uri"])
    client = m.MlflowClient()
    return SimpleNamespace(
        ctx=m.start_run, start=lambda: m.start_run().info.run_id, end=m.end_run, param=m.log_param,
        metric=m.log_metric, count=lambda: len(client.search_runs(["0"], max_results=50_000)),
        client=client,
    )  # fmt: skip


def w_runs1000(tool: str, spec: dict[str, Any]) -> dict[str, Any]:
    api = tools_api(tool, spec)
    rng = random.Random(1)
    api.start()  # warm-up: creates the store or index (migrations), untimed
    api.end()
    start = time.perf_counter()
    for i in range(spec["runs"]):
        api.start()
        for k in range(10):
            api.param(f"p{k}", i * 10 + k)
        for k in range(10):
            api.metric(f"m{k}", rng.random())
        api.end()
    seconds = time.perf_counter() - start
    n = spec["runs"]
    return {"seconds": seconds, "per_run_ms": seconds * 1000 / n, "runs_found": api.count() - 1}


def rates(points: int, start: float, mid: float, end: float) -> dict[str, float]:
    """Points per second of the calls (start to mid), with and without end_run (mid to end)."""
    calls, with_end = points / (mid - start), points / (end - start)
    return {"rate": calls, "end_seconds": end - mid, "rate_with_end": with_end}


def w_log_metric(tool: str, spec: dict[str, Any]) -> dict[str, Any]:
    api = tools_api(tool, spec)
    n = spec["points"]
    run_id = api.start()
    log = api.metric
    log("loss", 1.0, step=0)  # first call: key checks, lazy imports
    start = time.perf_counter()
    for i in range(1, n + 1):
        log("loss", 1.0 / i, step=i)
    mid = time.perf_counter()
    api.end()
    end = time.perf_counter()
    if tool == "tether":
        import tether

        found = tether.search_runs(where=f"id = '{run_id}'")[0].metrics["loss"].count
    else:
        found = len(api.client.get_metric_history(run_id, "loss"))
    return {**rates(n, start, mid, end), "found": found}


def w_log_batch(tool: str, spec: dict[str, Any]) -> dict[str, Any]:
    api = tools_api(tool, spec)
    rng = random.Random(2)
    keys, calls = spec["keys"], spec["calls"]
    values = [[rng.random() for _ in range(keys)] for _ in range(calls)]
    run_id = api.start()
    if tool == "tether":
        import tether

        batches: list[Any] = [{f"m{k}": v for k, v in enumerate(vs)} for vs in values]
        send: Callable[[int, Any], None] = lambda i, b: tether.log_metrics(b, step=i)  # noqa: E731
    else:
        from mlflow.entities import Metric

        ms = int(time.time() * 1000)
        batches = [[Metric(f"m{k}", v, ms, i) for k, v in enumerate(vs)] for i, vs in
                   enumerate(values)]  # fmt: skip
        send = lambda i, b: api.client.log_batch(run_id, metrics=b)  # noqa: E731
    start = time.perf_counter()
    for i, batch in enumerate(batches):
        send(i, batch)
    mid = time.perf_counter()
    api.end()
    return rates(keys * calls, start, mid, time.perf_counter())


def timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def best_ms(fn: Callable[[], Any], tries: int = 3) -> float:
    """Best wall time of ``tries`` calls after one untimed (warm-up) call, in ms."""
    fn()
    return min(timed(fn) for _ in range(tries)) * 1000


def w_search10k(tool: str, spec: dict[str, Any]) -> dict[str, Any]:
    api = tools_api(tool, spec)
    rng = random.Random(3)
    rows = [(LRS[i % len(LRS)], rng.random()) for i in range(spec["runs"])]
    api.count()  # creates the store or index (migrations), untimed
    start = time.perf_counter()
    if tool == "tether":
        import tether

        for lr, acc in rows:  # the normal API: start, log, end (each run sealed)
            tether.start_run()
            tether.log_param("lr", float(lr))
            tether.log_metric("acc", acc)
            tether.end_run()

        def search(limit: int | None) -> int:
            return len(tether.search_runs(where=TETHER_WHERE, sort=TETHER_SORT, limit=limit))
    else:
        import mlflow
        from mlflow.entities import Metric, Param

        client = api.client
        for lr, acc in rows:  # as fast as MLflow allows: one log_batch per run
            run_id = client.create_run("0").info.run_id
            ms = int(time.time() * 1000)
            client.log_batch(run_id, metrics=[Metric("acc", acc, ms, 0)], params=[Param("lr", lr)])
            client.set_terminated(run_id)

        def search(limit: int | None) -> int:
            return len(mlflow.search_runs(
                experiment_ids=["0"], filter_string=MLFLOW_FILTER, order_by=[MLFLOW_ORDER],
                max_results=limit or 50_000,
            ))  # fmt: skip

    return {
        "build_rate": len(rows) / (time.perf_counter() - start),
        "search_1000_ms": best_ms(lambda: search(1000)),
        "search_100_ms": best_ms(lambda: search(100)),
        "found": search(None),
    }


def w_search100k(tool: str, spec: dict[str, Any]) -> dict[str, Any]:
    import uuid

    from tether.meta.store import IndexedRun, MetricSummary, SqlMetaStore

    store = SqlMetaStore(spec["url"])
    rng = random.Random(4)
    now = time.time()
    common = {"user": "bench", "host": "bench", "command": "python train.py", "commit": "0" * 40}
    start = time.perf_counter()
    for first in range(0, spec["runs"], spec["batch"]):
        batch = []
        for i in range(first, min(spec["runs"], first + spec["batch"])):
            acc = rng.random()
            run = IndexedRun(str(uuid.UUID(int=i + 1)), f"train-{i:06d}", "default", "finished",
                             now + i, now + i + 60, **common)  # fmt: skip
            run.params["lr"] = LRS[i % len(LRS)]
            run.metrics["acc"] = MetricSummary(acc, acc, acc)
            batch.append(run)
        store.put_runs(batch)
    return {
        "build_rate": spec["runs"] / (time.perf_counter() - start),
        "search_100_ms": best_ms(lambda: store.search(TETHER_WHERE, TETHER_SORT, limit=100)),
        "search_1000_ms": best_ms(lambda: store.search(TETHER_WHERE, TETHER_SORT, limit=1000)),
        "found": len(store.search(TETHER_WHERE)),
    }


def w_start_end(tool: str, spec: dict[str, Any]) -> dict[str, Any]:
    import importlib.metadata

    api = tools_api(tool, spec)

    def start_end() -> None:
        with api.ctx():
            pass

    def median_ms() -> float:
        start_end()  # warm-up, untimed
        times = [timed(start_end) for _ in range(spec["samples"])]
        return statistics.median(times) * 1000

    clean = median_ms()
    files = sorted(Path("src").rglob("*.txt"))
    for path in files[:: len(files) // 10][:10]:  # 10 tracked files modified, 5 untracked added
        path.write_text(path.read_text() + "changed\n")
    for k in range(5):
        Path(f"untracked-{k}.txt").write_text(f"new file {k}\n")
    dirty = median_ms()
    if tool == "tether":
        import tether

        last = tether.search_runs(sort="started desc", limit=1)[0]
        captured = f"commit, dirty={last.dirty}, patch of the changes, environment"
    else:
        import mlflow

        tags = mlflow.get_run(mlflow.last_active_run().info.run_id).data.tags
        captured = ", ".join(sorted(k for k in tags if "git" in k)) or "no git tags"
    dists = len(list(importlib.metadata.distributions()))
    return {"clean_ms": clean, "dirty_ms": dirty, "captured": captured, "distributions": dists}


# -- running things --------------------------------------------------------------------------
def tool_env(tool: str) -> dict[str, str]:
    drop = ("TETHER_", "MLFLOW_", "PYTHONPATH", "PYTHONDONTWRITEBYTECODE", "PYTHONPYCACHEPREFIX")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    for who in ("AUTHOR", "COMMITTER"):
        env[f"GIT_{who}_NAME"], env[f"GIT_{who}_EMAIL"] = "bench", "bench@example.com"
    if tool == "tether":  # the snapshot first on sys.path; .pyc files under .work
        env.update(PYTHONPATH=str(TETHER_SRC), PYTHONPYCACHEPREFIX=str(WORK / "pycache"))
    else:  # no telemetry (this machine reaches only PyPI), quiet GitPython
        env.update(MLFLOW_DISABLE_TELEMETRY="true", DO_NOT_TRACK="true", GIT_PYTHON_REFRESH="quiet")
    return env


def call_worker(tool: str, wl: str, cwd: Path, spec: Result, timeout: float) -> Result:
    """Run one worker; its result, or {"error": ...}. Its stderr goes to .work/runs-logs."""
    log = LOGS / f"{wl}-{tool}.log"
    argv = [str(PYTHON[tool]), "train.py", "--worker", tool, wl, json.dumps(spec)]
    LOADS[f"{wl} {tool}"] = round(os.getloadavg()[0], 2)
    print(f"   {tool:<6} {wl} (load {LOADS[f'{wl} {tool}']}) ...", end=" ", flush=True)
    started = time.perf_counter()
    with open(log, "w") as err:
        try:
            proc = subprocess.run(argv, cwd=cwd, env=tool_env(tool), stdout=subprocess.PIPE,
                                  stderr=err, text=True, timeout=timeout)  # fmt: skip
        except subprocess.TimeoutExpired:
            print("timed out", flush=True)
            return {"error": f"took over {timeout:.0f} s (log: {log})"}
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        print("FAILED", flush=True)
        return {"error": f"exit {proc.returncode} (log: {log}):\n" + tail(log.read_text(), 8)}
    print(f"{time.perf_counter() - started:.1f} s", flush=True)
    return dict(json.loads(lines[-1].removeprefix("RESULT ")))


def make_repo(repo: Path, files: int, tether: bool) -> None:
    """A git repository with the worker as ``train.py`` (as a user's script would be, so both
    tools see their entry point in the repository), ``files`` small files and ``tether init`` if
    asked, all committed so that the work tree is clean."""
    repo.mkdir(parents=True)
    run(["git", "init", "-q", "-b", "main"], cwd=repo)
    shutil.copyfile(WORKER, repo / "train.py")
    shutil.copyfile(HERE / "_shared.py", repo / "_shared.py")
    for i in range(files):
        path = repo / "src" / f"d{i // 100:02d}" / f"f{i:04d}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"file {i}\n")
    if tether:
        run([TETHER_EXE, "init"], cwd=repo, env=tool_env("tether"))
    run(["git", "add", "-A"], cwd=repo)
    run(["git", "-c", "commit.gpgsign=false", "commit", "-q", "-m", "initial"], cwd=repo)


def both(wl: str, size: dict[str, int], opts: argparse.Namespace, tools: Any) -> Results:
    """Each tool's worker on its own fresh repository (and database)."""
    out = {}
    for tool in tools:
        base = RUNS / wl / tool
        shutil.rmtree(base, ignore_errors=True)
        try:
            make_repo(base / "repo", size.get("files", 0), tool == "tether")
        except CommandError as exc:
            out[tool] = {"error": str(exc)}
            continue
        spec = {**size, "points": size.get(tool, 0), "uri": f"sqlite:///{base / 'mlflow.db'}",
                "url": f"sqlite:///{base / 'index.db'}"}  # fmt: skip
        out[tool] = call_worker(tool, wl, base / "repo", spec, opts.timeout)
    if not opts.keep:
        shutil.rmtree(RUNS / wl, ignore_errors=True)
    return out


def import_ms(tool: str, env: dict[str, str]) -> float | None:
    """The package's own cumulative line of ``-X importtime``, in ms (the log is kept)."""
    argv = [str(PYTHON[tool]), "-X", "importtime", "-c", f"import {tool}"]
    err = subprocess.run(argv, env=env, capture_output=True, text=True, check=True).stderr
    (LOGS / f"importtime-{tool}.log").write_text(err)
    for line in err.splitlines():
        parts = [p.strip() for p in line.split("|")]
        if len(parts) == 3 and parts[2] == tool:
            return int(parts[1]) / 1000
    return None


def wall(tool: str, code: str, tries: int) -> float:
    """Best wall time of ``python -c CODE`` in the tool's venv."""
    argv, env = [str(PYTHON[tool]), "-c", code], tool_env(tool)
    return min(timed(lambda: subprocess.run(argv, env=env, check=True, capture_output=True))
               for _ in range(tries))  # fmt: skip


def imports(size: dict[str, int]) -> Results:
    n = size["tries"]
    return {
        tool: {"bare": wall(tool, "pass", n), "import": wall(tool, f"import {tool}", n),
               "start_run": wall(tool, f"import {tool}; {tool}.start_run", n),
               "importtime_ms": import_ms(tool, tool_env(tool))}
        for tool in TOOLS
    }  # fmt: skip


# -- rows ------------------------------------------------------------------------------------
@dataclass
class Row:
    workload: str
    measure: str
    unit: str  # "s", "ms", "points/s" or "runs/s"
    tether: float | None
    mlflow: float | None
    target: float | None = None  # Tether's, in ``unit``
    note: str = ""

    @property
    def higher_is_better(self) -> bool:
        return self.unit.endswith("/s")

    @property
    def ratio(self) -> float | None:
        """Above 1 when Tether is faster."""
        t, m = self.tether, self.mlflow
        if not t or not m:
            return None
        return t / m if self.higher_is_better else m / t

    @property
    def met(self) -> bool | None:
        if self.target is None or self.tether is None:
            return None
        return self.tether >= self.target if self.higher_is_better else self.tether < self.target


Spec = tuple[Any, ...]  # (measure, unit, key[, target[, note]])


def specs_runs1000(size: dict[str, int], res: Results) -> list[Spec]:
    found = ", ".join(f"{tool} {r.get('runs_found')}" for tool, r in res.items())
    return [
        (f"{size['runs']:,} runs x (10 params + 10 metrics)", "s", "seconds", None,
         f"runs found: {found}; timed from the first start_run to the last end_run"),
        ("per run", "ms", "per_run_ms"),
    ]  # fmt: skip


def specs_log_metric(size: dict[str, int], res: Results) -> list[Spec]:
    note = ", ".join(f"{t} {size[t]:,} points (found {r.get('found')})" for t, r in res.items())
    return [
        ("log_metric calls", "points/s", "rate", None, note),
        ("end_run (tether: seals)", "s", "end_seconds"),
        ("calls + end_run", "points/s", "rate_with_end"),
    ]


def specs_log_batch(size: dict[str, int], res: Results) -> list[Spec]:
    label = f"{size['calls']} x {size['keys']:,} metrics"
    return [
        (f"{label}: calls", "points/s", "rate"),
        ("end_run", "s", "end_seconds"),
        (f"{label}: calls + end_run", "points/s", "rate_with_end"),
    ]


def specs_search10k(size: dict[str, int], res: Results) -> list[Spec]:
    t, m = (res[tool].get("found") for tool in TOOLS)
    note = f"matching runs: tether {t}, mlflow {m}" + ("" if t == m else " (DIFFER)")
    return [
        (f"create {size['runs']:,} runs (mlflow: log_batch)", "runs/s", "build_rate"),
        ("search, first 1000, warm best of 3", "ms", "search_1000_ms", None, note),
        ("search, first 100", "ms", "search_100_ms"),
    ]


def specs_search100k(size: dict[str, int], res: Results) -> list[Spec]:
    note = f"{res['tether'].get('found')} matching runs; put_runs in batches of {size['batch']:,}"
    target = 100.0 if size["runs"] >= 100_000 else None
    return [
        (f"index {size['runs']:,} runs (put_runs)", "runs/s", "build_rate", None, note),
        ("SqlMetaStore.search, limit 100", "ms", "search_100_ms", target),
        ("SqlMetaStore.search, limit 1000", "ms", "search_1000_ms"),
    ]


def specs_start_end(size: dict[str, int], res: Results) -> list[Spec]:
    t, m = res["tether"], res["mlflow"]
    dists = f"installed distributions: tether venv {t.get('distributions')}, mlflow venv "
    dists += f"{m.get('distributions')}"
    if (t.get("distributions") or 0) < TARGET_PACKAGES:
        dists += f" (the targets assume {TARGET_PACKAGES}: the Tether venv has fewer)"
    captured = f"tether captures {t.get('captured')}; mlflow records {m.get('captured')} "
    captured += "(of the repo holding the script, via GitPython: no work tree, no dirty flag)"
    return [
        (f"clean repo, {size['files']:,} files, median of {size['samples']}", "ms", "clean_ms",
         20.0, dists),
        ("dirty: 10 modified + 5 untracked", "ms", "dirty_ms", 40.0, captured),
    ]  # fmt: skip


def specs_import(size: dict[str, int], res: Results) -> list[Spec]:
    bare = ", ".join(f"{tool} venv {r['bare']:.3f} s" for tool, r in res.items())
    return [
        (f'python -c "import X", best of {size["tries"]}', "s", "import", None,
         f"bare interpreter (python -c pass): {bare}"),
        ("... then X.start_run (tether loads lazily)", "s", "start_run"),
        ("-X importtime, cumulative of X", "ms", "importtime_ms"),
    ]  # fmt: skip


def bench(wl: str, size: dict[str, int], opts: argparse.Namespace) -> list[Row]:
    """One workload's rows; a tool's failure is noted on the first row."""
    if wl == "import":
        res = imports(size)
    else:
        res = both(wl, size, opts, ("tether",) if wl == "search100k" else TOOLS)
    rows = []
    for measure, unit, key, *rest in globals()[f"specs_{wl}"](size, res):
        t, m = (res.get(tool, {}).get(key) for tool in TOOLS)
        rows.append(Row(wl, measure, unit, t, m, *rest))
    failed = "; ".join(f"{tool} FAILED: {r['error']}" for tool, r in res.items() if "error" in r)
    if failed:
        rows[0].note = "; ".join(filter(None, [rows[0].note, failed]))
    return rows


# -- setup -----------------------------------------------------------------------------------
def ensure_mlflow() -> str:
    """Full MLflow (not mlflow-skinny) in its own venv; returns its version."""
    if not MLFLOW_PY.exists():
        print(f"creating {MLFLOW_VENV} ...", flush=True)
        run([shutil.which("python3.11") or sys.executable, "-m", "venv", MLFLOW_VENV])
        (MLFLOW_VENV / ".gitignore").write_text("*\n")  # keep the project's `git status` clean
    probe = "import importlib.metadata as m; print(m.version('mlflow'))"
    try:
        version: str | None = run([MLFLOW_PY, "-c", probe]).strip()
    except CommandError:
        version = None
    for candidate in MLFLOW_VERSIONS if version is None else ():
        print(f"installing mlflow=={candidate} into {MLFLOW_VENV} ...", flush=True)
        try:
            run([MLFLOW_VENV / "bin" / "pip", "install", "-q", f"mlflow=={candidate}"])
            version = candidate
            break
        except CommandError as exc:
            print(f"   mlflow {candidate} does not install: {tail(str(exc), 2)}", flush=True)
    if version not in MLFLOW_VERSIONS:
        raise CommandError(f"{MLFLOW_VENV} holds mlflow {version}: remove it and run again")
    run([MLFLOW_PY, "-c", "import mlflow.store.tracking.sqlalchemy_store, alembic, pandas"])
    return str(version)


def describe(opts: argparse.Namespace, mlflow: str) -> dict[str, Any]:
    commit = run(["git", "-C", PROJECT, "rev-parse", "--short", "HEAD"]).strip()
    dirty = run(["git", "-C", PROJECT, "status", "--porcelain", "src"]).strip()
    (WORK / "runs-tether-src.diff").unlink(missing_ok=True)
    if dirty:  # keep the uncommitted changes the run measured
        diff = run(["git", "-C", PROJECT, "diff", "HEAD", "--", "src"])
        (WORK / "runs-tether-src.diff").write_text(diff)
    version = run([TETHER_EXE, "--version"], env=tool_env("tether")).strip()
    probe = "import importlib.metadata as m; print(len(list(m.distributions())))"
    return {
        "quick": opts.quick,
        "tether": f"{version} (commit {commit}"
        + (", with uncommitted src changes: .work/runs-tether-src.diff)" if dirty else ")"),
        "mlflow": f"mlflow {mlflow} (full package), sqlite:///.../mlflow.db, telemetry off",
        "stores": "tether: .tether/index.db (SQLite WAL, synchronous=NORMAL), each run sealed as "
        "an object (one syncfs); mlflow: SQLAlchemy on SQLite's defaults (rollback journal, "
        "synchronous=FULL), one transaction per call",
        "distributions": {t: int(run([PYTHON[t], "-c", probe], env=tool_env(t))) for t in TOOLS},
        "fairness": "each tool in its own subprocess, fresh git repo and database; store creation "
        "and one warm-up call untimed; Tether runs from a copy of src/ taken at start",
        "python": platform.python_version(),
        "machine": f"{platform.platform()}, {os.cpu_count()} cores",
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }


# -- report ----------------------------------------------------------------------------------
def show(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit.endswith("/s") or value >= 1000:
        return f"{value:,.0f} {unit}"
    return f"{value:.3g} {unit}" if value < 10 else f"{value:.1f} {unit}"


def cells(row: Row) -> list[str]:
    target = "-"
    if row.target is not None:
        target = (">=" if row.higher_is_better else "<") + show(row.target, row.unit)
    ratio = "-" if row.ratio is None else f"{row.ratio:,.1f}x"
    ratio = f"{row.ratio:.2g}x" if row.ratio is not None and row.ratio < 1 else ratio
    met = {None: "", True: "yes", False: "MISS"}[row.met]
    return [row.workload, row.measure, show(row.tether, row.unit), show(row.mlflow, row.unit),
            ratio, target, met]  # fmt: skip


def print_table(rows: list[Row], meta: dict[str, Any]) -> None:
    print()
    for key, value in meta.items():
        print(f"{key}: {value}")
    head = ["workload", "measure", "Tether", "MLflow", "ratio", "Tether target", "met?"]
    table = [head, *(cells(row) for row in rows)]
    widths = [max(len(r[i]) for r in table) for i in range(len(head))]
    rule = "  ".join("-" * w for w in widths)
    print("\nratio = MLflow time / Tether time, or Tether rate / MLflow rate: >1 = Tether faster")
    print(rule)
    for i, r in enumerate(table):
        pairs = enumerate(zip(r, widths, strict=True))
        print("  ".join(c.ljust(w) if j < 2 else c.rjust(w) for j, (c, w) in pairs))
        if i == 0:
            print(rule)
    print(rule)
    for row in rows:
        if row.note:
            print(f"  {row.workload} / {row.measure}: {row.note}")


def write_json(meta: dict[str, Any], rows: list[Row]) -> Path:
    out = WORK / "runs-results.json"
    doc = {"meta": meta, "rows": [{**asdict(r), "ratio": r.ratio, "met": r.met} for r in rows]}
    out.write_text(json.dumps(doc, indent=2) + "\n")
    return out


# -- main ------------------------------------------------------------------------------------
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: a few minutes")
    parser.add_argument("--workloads", default=",".join(FULL), help="comma list (default: all)")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds per worker")
    parser.add_argument("--keep", action="store_true", help="keep the repositories afterwards")
    opts = parser.parse_args(argv)
    opts.names = chosen_workloads(parser, opts, FULL)
    return opts


def main(argv: list[str] | None = None) -> int:
    opts = parse_args(argv)
    LOGS.mkdir(parents=True, exist_ok=True)
    mlflow = ensure_mlflow()
    shutil.copyfile(__file__, WORKER)  # the worker too: edits made while it runs change nothing
    snapshot_tether(TETHER_SRC, TETHER_PY, tool_env("tether"))
    meta = describe(opts, mlflow)
    for key, value in meta.items():
        print(f"{key}: {value}", flush=True)
    sizes = QUICK if opts.quick else FULL
    rows: list[Row] = []
    started = time.perf_counter()
    meta["loadavg_start"] = os.getloadavg()
    try:
        for name in opts.names:
            print(f"\n== {name}", flush=True)
            new = bench(name, sizes[name], opts)
            for row in new:
                print("   " + " | ".join(filter(None, cells(row)[1:])), flush=True)
            rows += new
    finally:
        meta["seconds"] = round(time.perf_counter() - started, 1)
        meta["loadavg_end"] = os.getloadavg()
        meta["load_before_worker"] = LOADS
        print_table(rows, meta)
        print(f"\nresults: {write_json(meta, rows)} ({meta['seconds']} s)", flush=True)
    return 1 if any("FAILED" in row.note for row in rows) else 0


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--worker":  # run by a tool's own interpreter
        result = globals()[f"w_{sys.argv[3]}"](sys.argv[2], json.loads(sys.argv[4]))
        print("RESULT " + json.dumps(result), flush=True)
        sys.exit(0)
    sys.exit(main())
