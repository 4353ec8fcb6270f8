"""The stock `mlflow server` against `tether server`, on this machine, under the same workloads
from concurrent client processes.

``.venv/bin/python benchmarks/bench_server.py`` (``--quick``: smaller, ``--workloads``: a subset,
``--clients``, ``--workers``, ``--db postgres|sqlite``, ``--repeat N``: best of N sessions, the
tools' order alternating; other work on the machine moves the figures: the CPU's busy share in
the 3 s before each session is noted). Workloads: ``ingest`` runs of 10 params and 10 metrics x
1,000 steps, until the server's search shows them; ``search`` with a filter and an order over
10k runs; ``artifacts`` 1,000 small files, a call each then a folder at once; ``single`` one call
back to back from every client, then paced at half that rate. MLflow is installed on first use
into ``benchmarks/.venv-mlflow`` (as bench_runs.py does, plus a PostgreSQL driver and the
Prometheus exporter that ``--expose-prometheus`` needs). For each workload and tool a fresh
server (fresh database, store under ``benchmarks/.work/server/``) is started, the clients (this
file, run by the tool's own interpreter) set up, wait at a barrier, run each phase when told and
report; results go to ``benchmarks/.work/server-results.json``. Only the standard library is
imported at the top.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import bench_runs as br
from _shared import (
    CommandError,
    Http,
    Workers,
    chosen_workloads,
    histogram_ms,
    histogram_samples,
    percentile,
    run,
    serve_phases,
    snapshot_tether,
    tail,
)

HERE, NAME = Path(__file__).resolve().parent, Path(__file__).name
SERVER = HERE / ".work" / "server"
OUT = HERE / ".work" / "server-results.json"
TETHER_SRC = SERVER / "tether-src"  # a copy of src/: one run measures one version of Tether
WORKER = SERVER / "worker"  # a copy of this file and what it imports, run by every client
MLFLOW_EXTRAS = ("psycopg[binary]", "prometheus-flask-exporter")
PYTHON = {"tether": br.TETHER_PY, "mlflow": br.MLFLOW_PY}
TOOLS = ("mlflow", "tether")
ML, TP = "/api/2.0/mlflow", "/api/v1/projects/bench"
PG = "postgresql+psycopg://postgres@127.0.0.1:5432"
FULL: dict[str, dict[str, int]] = {
    "ingest": {"runs": 4, "steps": 1000},  # runs per client: 10 params, 10 metrics x steps
    "search": {"runs": 10_000, "queries": 50},  # queries per client
    "artifacts": {"files": 1000, "bytes": 1024},  # files in all, shared out between clients
    "single": {"seconds": 10, "records": 4000},  # records: sealed runs per client to PUT
}
QUICK: dict[str, dict[str, int]] = {
    "ingest": {"runs": 1, "steps": 1000},
    "search": {"runs": 1000, "queries": 20},
    "artifacts": {"files": 200, "bytes": 1024},
    "single": {"seconds": 3, "records": 1000},
}
PAIRS = (("create_run", "put_run"), ("log_metric", "missing"))  # MLflow's call, Tether's closest
ROUTE, TETHER_METRIC = "/api/v1/projects/{project}/", "tether_http_request_seconds"
SERVER_SIDE = {  # each single call's latency histogram on the server's /metrics
    "create_run": ("mlflow_http_request_duration_seconds", {"method": "POST"}),
    "log_metric": ("mlflow_http_request_duration_seconds", {"method": "POST"}),
    "put_run": (TETHER_METRIC, {"method": "PUT", "route": ROUTE + "runs/{run_id}"}),
    "missing": (TETHER_METRIC, {"method": "POST", "route": ROUTE + "objects/missing"}),
}
Result = dict[str, Any]
Phases = dict[str, Callable[[Result], Result]]
Series = list[dict[str, float]]  # a run's metric values, step by step


# -- clients: this file run by a tool's own interpreter, each in its own folder ---------------
class TetherSide:
    """What the workloads do, done as a Tether user does: runs logged in a local repository
    (logged in to the server, so each run uploads as it ends), then `tether sync`."""

    def __init__(self, spec: Result) -> None:
        import tether

        self.tether, self.spec, self.server = tether, spec, Http(spec["url"])

    def log_run(self, name: str | None, params: dict[str, str], series: Series) -> Any:
        with self.tether.start_run(name=name) as live:
            live.log_params(params)
            for step, values in enumerate(series):
                live.log_metrics(values, step=step)
        return live

    def log_artifacts(self, name: str, paths: list[Path]) -> list[str]:
        with self.tether.start_run(name=name) as live:
            return [live.log_artifact(path) for path in paths]

    def finish(self) -> None:
        run([self.spec["tether_exe"], "sync"], cwd=Path.cwd())

    def missing(self, ids: list[str]) -> int:
        return len(self.server.call("POST", f"{TP}/objects/missing", {"ids": ids})["missing"])

    def search(self) -> list[float]:
        body = {"where": br.TETHER_WHERE, "sort": br.TETHER_SORT, "limit": 100}
        found = self.server.call("POST", f"{TP}/runs/search", body)["runs"]
        return [r["metrics"]["acc"]["last"] for r in found]

    def calls(self) -> dict[str, Callable[[int], Any]]:
        made = self.sealed_records()
        n = len(made)  # past n calls the same runs are put again (idempotent; noted)
        put = lambda k: {"record": made[k % n][1], "amendments": []}  # noqa: E731
        return {
            "put_run": lambda k: self.server.call("PUT", f"{TP}/runs/{made[k % n][0]}", put(k)),
            "missing": lambda k: self.server.call(
                "POST", f"{TP}/objects/missing", {"ids": [made[k % n][1]]}
            ),
        }

    def sealed_records(self) -> list[tuple[str, str]]:
        """(run id, record id) of ``records`` sealed runs whose records the server holds but
        that are not put yet: a real run's record under new run ids, uploaded in packs."""
        from tether.api import pack_bytes
        from tether.hashing import hash_bytes

        live = self.log_run("template", {"p": "0"}, [{"m": 0.0}])  # uploaded as it ends
        record = self.server.call("GET", f"{TP}/runs/{live.id}/state")["record"]
        template = self.server.call("GET", f"{TP}/objects/{record}", parse=False)
        made: list[tuple[str, str]] = []
        for first in range(0, self.spec["records"], 1000):
            pack = []
            for _ in range(first, min(first + 1000, self.spec["records"])):
                data = template.replace(live.id, rid := str(uuid.uuid4())).encode()
                made.append((rid, hash_bytes(data)))
                pack.append((made[-1][1], data))
            self.server.call("POST", f"{TP}/packs", raw=pack_bytes(pack))
        return made


class MlflowSide:
    """The same, done through MLflow's client (its REST calls, raw, for search and single
    calls), as fast as MLflow allows: batches of 1,000 values, params in the first batch."""

    def __init__(self, spec: Result) -> None:
        from mlflow import MlflowClient

        self.client, self.server = MlflowClient(spec["url"]), Http(spec["url"])

    def log_run(self, name: str | None, params: dict[str, str], series: Series) -> str:
        from mlflow.entities import Metric, Param

        rid: str = self.client.create_run("0", run_name=name).info.run_id
        ms = int(time.time() * 1000)
        points = [Metric(k, v, ms, s) for s, values in enumerate(series) for k, v in values.items()]
        batches = [points[i : i + 1000] for i in range(0, len(points), 1000)] or [[]]
        if len(params) + len(batches[0]) > 1000:  # MLflow's limit: 1,000 values a call
            batches.insert(0, [])
        self.client.log_batch(rid, batches[0], [Param(k, v) for k, v in params.items()])
        for batch in batches[1:]:
            self.client.log_batch(rid, batch)
        self.client.set_terminated(rid)
        return rid

    def log_artifacts(self, name: str, paths: list[Path]) -> list[str]:
        rid = self.client.create_run("0", run_name=name).info.run_id
        for path in paths:
            if path.is_dir():
                self.client.log_artifacts(rid, str(path))
            else:
                self.client.log_artifact(rid, str(path))
        self.client.set_terminated(rid)
        return []

    def finish(self) -> None:
        pass  # what MLflow's calls returned from is stored

    def missing(self, ids: list[str]) -> int:
        return 0

    def search(self) -> list[float]:
        body = {"experiment_ids": ["0"], "filter": br.MLFLOW_FILTER, "max_results": 100,
                "order_by": [br.MLFLOW_ORDER]}  # fmt: skip
        found = self.server.call("POST", f"{ML}/runs/search", body).get("runs", [])
        return [{m["key"]: m["value"] for m in r["data"]["metrics"]}["acc"] for r in found]

    def calls(self) -> dict[str, Callable[[int], Any]]:
        made = self.server.call("POST", f"{ML}/runs/create", {"experiment_id": "0"})
        rid = made["run"]["info"]["run_id"]
        ms = lambda: int(time.time() * 1000)  # noqa: E731
        metric = lambda k: {"run_id": rid, "key": "loss", "value": 1 / (k + 1),  # noqa: E731
                            "timestamp": ms(), "step": k}  # fmt: skip
        return {
            "create_run": lambda k: self.server.call(
                "POST", f"{ML}/runs/create", {"experiment_id": "0", "start_time": ms()}
            ),
            "log_metric": lambda k: self.server.call("POST", f"{ML}/runs/log-metric", metric(k)),
        }


Side = TetherSide | MlflowSide


def c_ingest(side: Side, spec: Result) -> Phases:
    c, steps = spec["client"], spec["steps"]
    params = {f"p{k}": f"{c}.{k}" for k in range(10)}
    series = [{f"m{k}": (s * 10 + k) * 0.001 for k in range(10)} for s in range(steps)]
    side.log_run("warm-up", {"p": "0"}, [{"m": 0.0}])  # imports, first calls: untimed

    def go(_: Result) -> Result:
        for r in range(spec["runs"]):
            side.log_run(f"c{c}-r{r}", params, series)
        side.finish()
        return {}

    return {"go": go}


def c_search(side: Side, spec: Result) -> Phases:
    def fill(_: Result) -> Result:
        for i in range(spec["client"], spec["runs"], spec["clients"]):  # same runs for both
            side.log_run(
                None, {"lr": br.LRS[i % len(br.LRS)]}, [{"acc": random.Random(i).random()}]
            )
        side.finish()
        return {}

    def search(args: Result) -> Result:
        side.search(), side.search()  # warm-up
        times = []
        for _ in range(args["queries"]):
            start = time.perf_counter()
            found = side.search()
            times.append((time.perf_counter() - start) * 1000)
        return {"ms": times, "found": len(found), "top": found[0] if found else None}

    return {"fill": fill, "search": search}


def c_artifacts(side: Side, spec: Result) -> Phases:
    rng, made = random.Random(spec["client"]), {}
    for how in ("each", "folder"):  # distinct files for each way
        made[how] = Path(spec["files_dir"]) / how
        made[how].mkdir(parents=True)
        for i in range(spec["files"] // spec["clients"]):
            (made[how] / f"f{i:04d}.txt").write_bytes(rng.randbytes(spec["bytes"]))
    side.log_run("warm-up", {"p": "0"}, [{"m": 0.0}])

    def upload(args: Result) -> Result:
        how = args["how"]
        paths = sorted(made[how].iterdir()) if how == "each" else [made[how]]
        ids = side.log_artifacts(f"artifacts-{how}", paths)
        side.finish()
        return {"end": time.time(), "missing": side.missing(ids)}

    return {"upload": upload}


def c_single(side: Side, spec: Result) -> Phases:
    calls = side.calls()
    sent = dict.fromkeys(calls, 0)  # calls made so far: each phase takes fresh records

    def phase(args: Result) -> Result:
        """Back to back for ``seconds``; with ``rate``, paced (calls a second, this client)."""
        name, rate = args["endpoint"], args.get("rate")
        call, lat, errors, k0 = calls[name], [], 0, sent[name]
        start = time.perf_counter() + (args["offset"] / rate if rate else 0.0)
        stop = start + args["seconds"]
        while (due := start + (sent[name] - k0) / rate if rate else time.perf_counter()) < stop:
            time.sleep(max(0.0, due - time.perf_counter()))
            try:
                call(sent[name])
                lat.append(round((time.perf_counter() - due) * 1000, 3))  # from when it was due
            except (CommandError, OSError):
                errors += 1
            sent[name] += 1
        return {"ms": lat, "errors": errors, "sent": sent[name]}

    return {"phase": phase}


def client_main(tool: str, wl: str, spec: Result) -> None:
    side = TetherSide(spec) if tool == "tether" else MlflowSide(spec)
    serve_phases(globals()[f"c_{wl}"](side, spec))


# -- servers ---------------------------------------------------------------------------------
def server_env(tool: str) -> dict[str, str]:
    env = br.tool_env(tool)
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    if tool == "tether":
        env["PYTHONPATH"] = str(TETHER_SRC)
    return env


def psql(sql: str) -> None:
    run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-qAt", "-c", sql])


def start_server(tool: str, base: Path, opts: argparse.Namespace) -> Result:
    """A fresh server of ``tool``: a database of its own (PostgreSQL or SQLite), its store."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    db = f"bench_server_{tool}_{base.parent.name}_{os.getpid()}"
    index = f"{PG}/{db}" if opts.db == "postgres" else f"sqlite:///{base / 'server.db'}"
    if opts.db == "postgres":
        psql(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
        psql(f"CREATE DATABASE {db}")
    argv: list[Any] = [br.TETHER_EXE, "server", "--index", index, "--store", base / "store"]
    if tool == "mlflow":
        argv = [br.MLFLOW_VENV / "bin" / "mlflow", "server", "--backend-store-uri", index,
                "--artifacts-destination", base / "artifacts", "--expose-prometheus",
                base / "prometheus"]  # fmt: skip
    argv = [str(a) for a in [*argv, "--port", port, "--workers", opts.workers]]
    with open(base / "server.log", "w") as log:
        proc = subprocess.Popen(argv, cwd=base, env=server_env(tool), stdout=log, stderr=log,
                                start_new_session=True)  # fmt: skip
    srv = {"tool": tool, "url": f"http://127.0.0.1:{port}", "proc": proc, "db": db, "base": base}
    deadline = time.time() + 180
    while time.time() < deadline and proc.poll() is None:
        try:
            Http(srv["url"]).call("GET", "/health", parse=False)
            if tool == "tether":
                Http(srv["url"]).call("POST", "/api/v1/projects", {"name": "bench"})
            return srv
        except (OSError, CommandError):
            time.sleep(0.3)
    stop_server(srv, opts)
    raise CommandError(
        f"the {tool} server did not start:\n{tail((base / 'server.log').read_text())}"
    )


def stop_server(srv: Result, opts: argparse.Namespace) -> None:
    proc = srv["proc"]
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)  # the process group this benchmark started
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    if opts.db == "postgres":
        psql(f"DROP DATABASE IF EXISTS {srv['db']} WITH (FORCE)")


# -- clients, from the parent ----------------------------------------------------------------
def client_folder(folder: Path, tool: str, url: str) -> None:
    """Tether's: a committed git repository with `tether init`, logged in to the server."""
    folder.mkdir(parents=True)
    if tool == "mlflow":
        return
    env = server_env("tether")
    run(["git", "init", "-q", "-b", "main"], cwd=folder)
    run([br.TETHER_EXE, "init"], cwd=folder, env=env)
    run(["git", "add", "-A"], cwd=folder)
    run(["git", "-c", "commit.gpgsign=false", "commit", "-qm", "initial"], cwd=folder, env=env)
    run([br.TETHER_EXE, "server", "login", url, "--project", "bench"], cwd=folder, env=env)
    with open(folder / ".git" / "info" / "exclude", "a") as exclude:
        exclude.write("out/\n")  # the files to log as artifacts: not the work tree's state


def start_clients(srv: Result, wl: str, n: int, size: Result) -> Workers:
    """``n`` client processes of the server's tool, set up for ``wl``, waiting at a barrier."""
    tool, folders = srv["tool"], [srv["base"] / f"client{c}" for c in range(n)]
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(client_folder, folders, [tool] * n, [srv["url"]] * n))
    common = {**size, "clients": n, "url": srv["url"], "tether_exe": str(br.TETHER_EXE)}
    specs = [{**common, "client": c, "files_dir": str(f / "out")} for c, f in enumerate(folders)]
    argv = [str(PYTHON[tool]), str(WORKER / NAME), "--client", tool, wl]
    return Workers([[*argv, json.dumps(spec)] for spec in specs], folders, server_env(tool))


# -- workloads, as the parent drives them ----------------------------------------------------
def stored_runs(srv: Result) -> list[Result]:
    """Every run the server's search shows: Tether's documents, or MLflow's runs."""
    server = Http(srv["url"])
    if srv["tool"] == "tether":
        return list(server.call("POST", f"{TP}/runs/search", {"limit": 1_000_000})["runs"])
    runs, token = [], ""
    while True:
        body = {"experiment_ids": ["0"], "max_results": 1000, "page_token": token}
        doc = server.call("POST", f"{ML}/runs/search", body)
        runs += doc.get("runs", [])
        if not (token := doc.get("next_page_token")):
            return runs


def wait_stored(srv: Result, want: int, start: float) -> tuple[list[Result], float]:
    """Once the server's search shows ``want`` runs (10 minutes at most): them, the seconds."""
    while len(runs := stored_runs(srv)) < want and time.time() < start + 600:
        time.sleep(0.2)
    return runs, time.time() - start


def drive_ingest(srv: Result, pool: Workers, size: Result, n: int) -> Result:
    start, _ = pool.phase("go", [{}] * n)
    runs, seconds = wait_stored(srv, n * (size["runs"] + 1), start)
    mine = [r for r in runs if (r.get("name") or r.get("info", {}).get("run_name", ""))[:1] == "c"]
    if srv["tool"] == "tether":
        found = sum(len(r["params"]) + sum(m["count"] for m in r["metrics"].values()) for r in mine)
    else:  # MLflow's search shows last values only: one series counted, the others alike
        path = f"{ML}/metrics/get-history?run_id={mine[0]['info']['run_id']}&metric_key=m0"
        series = len(Http(srv["url"]).call("GET", path + "&max_results=100000")["metrics"])
        found = sum(len(r["data"].get("params", [])) + 10 * series for r in mine)
    items = len(mine) * 10 * (1 + size["steps"])
    note = f"{len(mine)} runs, {found:,} of {items:,} params + points found"
    return {"rate": items / seconds, "runs_rate": len(mine) / seconds, "note": note}


def drive_search(srv: Result, pool: Workers, size: Result, n: int) -> Result:
    start, _ = pool.phase("fill", [{}] * n)
    _, seconds = wait_stored(srv, size["runs"], start)
    _, one = pool.phase("search", [{"queries": size["queries"]}])  # the first client alone
    begun, many = pool.phase("search", [{"queries": size["queries"]}] * n)
    times = [t for r in many for t in r["ms"]]
    return {
        "fill_rate": size["runs"] / seconds, "one_ms": percentile(one[0]["ms"], 0.5),
        "many_ms": percentile(times, 0.5),
        "qps": len(times) / (max(r["end"] for r in many) - begun),
        "note": f"{one[0]['found']} found, best acc {one[0]['top']}",
    }  # fmt: skip


def drive_artifacts(srv: Result, pool: Workers, size: Result, n: int) -> Result:
    out: Result = {}
    files = n * (size["files"] // n)
    for how in ("each", "folder"):
        start, res = pool.phase("upload", [{"how": how}] * n)
        out[how] = files / (max(r["end"] for r in res) - start)
        out["note"] = f"{sum(r['missing'] for r in res)} missing on the server"
    if srv["tool"] == "mlflow":
        stored = sum(1 for _ in (srv["base"] / "artifacts").rglob("f*.txt"))
        out["note"] = f"{stored} of {2 * files} files in the artifact store"
    return out


def drive_single(srv: Result, pool: Workers, size: Result, n: int) -> Result:
    """Each call back to back from every client (saturation), then paced at half that rate:
    latency seen by the clients and, from /metrics, by the server."""
    out: Result = {}
    notes = []
    for x, pair in zip("ab", PAIRS, strict=True):
        endpoint, seconds = pair[TOOLS.index(srv["tool"])], size["seconds"]
        _, full = pool.phase("phase", [{"endpoint": endpoint, "seconds": seconds}] * n)
        rate = sum(len(r["ms"]) for r in full) / seconds
        before = scrape(srv, endpoint)
        paced = [{"endpoint": endpoint, "seconds": seconds, "rate": rate / 2 / n, "offset": c / n}
                 for c in range(n)]  # fmt: skip
        _, half = pool.phase("phase", paced)
        lat = [t for r in half for t in r["ms"]]
        server = histogram_ms(before, scrape(srv, endpoint))
        out |= {f"{x}_server_{k}": v for k, v in server.items()}
        out |= {
            f"{x}_rate": rate,
            f"{x}_p50": percentile(lat, 0.5),
            f"{x}_p99": percentile(lat, 0.99),
        }
        errors = sum(r["errors"] for r in full + half)
        again = max(r["sent"] for r in half) - size["records"] if endpoint == "put_run" else 0
        twice = f" ({again} runs put twice)" if again > 0 else ""
        notes.append(f"{endpoint} {len(lat) / seconds:.0f}/s at half, {errors} errors{twice}")
    return out | {"note": "; ".join(notes)}


def scrape(srv: Result, endpoint: str) -> dict[str, float]:
    metric, labels = SERVER_SIDE[endpoint]
    return histogram_samples(Http(srv["url"]).call("GET", "/metrics", parse=False), metric, labels)


# -- rows, table, main -----------------------------------------------------------------------
def specs(wl: str, size: Result, n: int) -> list[tuple[str, str, str]]:
    """(measure, unit, key) of a workload's rows."""
    if wl == "ingest":
        return [(f"{n}x{size['runs']} runs x (10 params + 10x{size['steps']:,} points)",
                 "items/s", "rate"), ("  runs", "runs/s", "runs_rate")]  # fmt: skip
    if wl == "search":
        return [(f"fill {size['runs']:,} runs (1 param, 1 metric)", "runs/s", "fill_rate"),
                ("  search, limit 100, 1 client: median", "ms", "one_ms"),
                (f"  {n} clients at once: median", "ms", "many_ms"),
                (f"  {n} clients at once", "queries/s", "qps")]  # fmt: skip
    if wl == "artifacts":
        files = n * (size["files"] // n)
        return [(f"{files:,} files x {size['bytes']} B, a call each", "files/s", "each"),
                ("  one call per folder", "files/s", "folder")]  # fmt: skip
    return [row for x, (m, t) in zip("ab", PAIRS, strict=True) for row in (
        (f"{m} | {t}: saturation", "req/s", f"{x}_rate"),
        ("  at half: client p50", "ms", f"{x}_p50"), ("  client p99", "ms", f"{x}_p99"),
        ("  server p50 (/metrics)", "ms", f"{x}_server_p50"),
        ("  server p99 (/metrics)", "ms", f"{x}_server_p99"),
        ("  server mean (/metrics)", "ms", f"{x}_server_mean"))]  # fmt: skip


def rows_of(wl: str, size: Result, n: int, res: dict[str, list[Result]]) -> list[Result]:
    """A row per measure: each tool's best of its repeats (highest rate, lowest time)."""
    rows = []
    for measure, unit, key in specs(wl, size, n):
        pick = max if unit.endswith("/s") else min
        m, t = (pick([r[key] for r in res[tool] if r.get(key)], default=None) for tool in TOOLS)
        ratio = (t / m if unit.endswith("/s") else m / t) if m and t else None
        rows.append({"workload": wl, "measure": measure, "unit": unit, "mlflow": m,
                     "tether": t, "ratio": ratio})  # fmt: skip
    rows[0]["note"] = " | ".join(
        f"{tool}: " + "; ".join(f"{r.get('error') or r.get('note')} (busy {r['busy']:.0%})"
                                for r in res[tool]) for tool in TOOLS)  # fmt: skip
    return rows


def print_table(rows: list[Result]) -> None:
    show = lambda v: "-" if v is None else f"{v:,.0f}" if v >= 100 else f"{v:.3g}"  # noqa: E731
    table = [["workload", "measure", "unit", "MLflow", "Tether", "ratio"]] + [
        [r["workload"], r["measure"], r["unit"], show(r["mlflow"]), show(r["tether"]),
         "-" if r["ratio"] is None else f"{r['ratio']:.2f}x"] for r in rows]  # fmt: skip
    widths = [max(len(r[i]) for r in table) for i in range(6)]
    print("\nratio: Tether rate / MLflow rate, or MLflow time / Tether time: >1 = Tether faster")
    for i, r in enumerate(table):
        print("  ".join(c.ljust(w) if j < 3 else c.rjust(w) for j, (c, w) in
                        enumerate(zip(r, widths, strict=True))))  # fmt: skip
        if i == 0:
            print("  ".join("-" * w for w in widths))
    print("\n".join(f"  {r['workload']}: {r['note']}" for r in rows if r.get("note")))


def busy(seconds: float = 3.0) -> float:
    """The machine's CPU busy share over ``seconds``: others' work, as this one is idle then."""

    def sample() -> tuple[int, int]:
        ticks = [int(t) for t in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
        return sum(ticks), ticks[3] + ticks[4]  # all, idle + iowait

    (all0, idle0), _, (all1, idle1) = sample(), time.sleep(seconds), sample()
    return 1 - (idle1 - idle0) / max(1, all1 - all0)


def session(tool: str, wl: str, size: Result, opts: argparse.Namespace) -> Result:
    """One tool's server, fresh, driven through one workload by ``opts.clients`` clients."""
    base = SERVER / wl / tool
    shutil.rmtree(base, ignore_errors=True)
    base.mkdir(parents=True)
    out, srv, pool = {"busy": busy()}, None, None
    try:
        srv = start_server(tool, base, opts)
        pool = start_clients(srv, wl, opts.clients, size)
        return out | globals()[f"drive_{wl}"](srv, pool, size, opts.clients)
    except CommandError as exc:
        return out | {"error": str(exc)}
    finally:
        if pool is not None:
            pool.close()
        if srv is not None:
            stop_server(srv, opts)
        if not opts.keep:
            shutil.rmtree(base, ignore_errors=True)


def prepare(opts: argparse.Namespace) -> Result:
    """MLflow and its extras installed, the worker and Tether copied; what this run measures."""
    version = br.ensure_mlflow()
    try:
        run([br.MLFLOW_PY, "-c", "import psycopg, prometheus_flask_exporter"])
    except CommandError:
        run([br.MLFLOW_VENV / "bin" / "pip", "install", "-q", *MLFLOW_EXTRAS])
    WORKER.mkdir(parents=True, exist_ok=True)
    for name in (NAME, "bench_runs.py", "_shared.py"):
        shutil.copyfile(HERE / name, WORKER / name)
    snapshot_tether(TETHER_SRC, br.TETHER_PY, server_env("tether"))
    tether = run([br.TETHER_EXE, "--version"], env=server_env("tether")).strip()
    probe = "import importlib.util as u; print(u.find_spec('uvloop') and u.find_spec('httptools'))"
    fast = run([br.MLFLOW_PY, "-c", probe]).strip() != "None"
    commit = run(["git", "-C", HERE, "rev-parse", "--short", "HEAD"]).strip()
    return {
        "command": " ".join(["python", *sys.argv]), "quick": opts.quick,
        "mlflow": f"mlflow {version}: `mlflow server` (uvicorn, {'with' if fast else 'no'} "
                  "uvloop and httptools: as pip installs it), --expose-prometheus",
        "tether": f"{tether} (commit {commit}): `tether server`",
        "servers": f"--workers {opts.workers}, {opts.db}, 127.0.0.1, fresh for each workload "
                   f"and tool; {opts.clients} client processes; best of {opts.repeat}",
        "machine": f"{platform.platform()}, {os.cpu_count()} cores", "date": time.ctime(),
    }  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, 4 clients")
    parser.add_argument("--workloads", default=",".join(FULL), help="comma list (default: all)")
    parser.add_argument("--clients", type=int, help="client processes (default 16, quick 4)")
    parser.add_argument("--workers", type=int, default=2, help="each server's worker processes")
    parser.add_argument("--db", choices=("postgres", "sqlite"), default="postgres")
    parser.add_argument("--repeat", type=int, default=1, help="sessions per tool: the best")
    parser.add_argument("--keep", action="store_true", help="keep the servers' folders")
    opts = parser.parse_args(argv)
    names = chosen_workloads(parser, opts, FULL)
    opts.clients = opts.clients or (4 if opts.quick else 16)
    meta, started = prepare(opts), time.perf_counter()
    print("\n".join(f"{k}: {v}" for k, v in meta.items()), flush=True)
    rows: list[Result] = []
    raw: dict[str, dict[str, list[Result]]] = {}
    for wl in names:
        size = (QUICK if opts.quick else FULL)[wl]
        print(f"\n== {wl} {size}", flush=True)
        raw[wl] = {tool: [] for tool in TOOLS}
        for i in range(opts.repeat):  # the tools' order alternates: neither always goes first
            for tool in TOOLS[:: 1 - 2 * (i % 2)]:
                raw[wl][tool].append(session(tool, wl, size, opts))
        rows += rows_of(wl, size, opts.clients, raw[wl])
        print_table(rows[-len(specs(wl, size, opts.clients)) :])
    meta["seconds"] = round(time.perf_counter() - started)
    print_table(rows)
    OUT.write_text(json.dumps({"meta": meta, "rows": rows, "raw": raw}, indent=2) + "\n")
    print(f"\nresults: {OUT}")
    return 1 if any("error" in r for res in raw.values() for rs in res.values() for r in rs) else 0


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--client":  # run by a tool's own interpreter
        client_main(sys.argv[2], sys.argv[3], json.loads(sys.argv[4]))
        sys.exit(0)
    sys.exit(main())
