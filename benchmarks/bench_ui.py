"""The web UIs side by side in headless Chromium: `mlflow server` (the full package, its own UI)
and `tether server` (its UI at /), over the same runs.

``.venv/bin/python benchmarks/bench_ui.py`` (``--quick``: 300 runs; ``--runs N``; ``--repeat
N``: the best of N page loads, each in a fresh browser context, so cold). Each tool is seeded
through its own client's usual path, once: MLflow with ``MlflowClient.log_batch`` (1,000 points
of ``loss`` per run, ``acc``, two params), Tether with runs logged in a repository and uploaded
by ``tether sync``; plus one run of 1,000,000 points in each. The seeded databases stay under
``benchmarks/.work/ui/`` for the next run. Then, for each tool, a fresh server on SQLite, and
Chromium (Debian's, through Playwright) times: the runs table's first rows after navigation,
the table sorted by a metric, a comparison of 100 runs with one chart, one run's chart of 1M
points. Standard library and Playwright only; MLflow is installed as bench_server.py does.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import bench_runs as br
from _shared import CommandError, run

HERE = Path(__file__).resolve().parent
WORK = HERE / ".work" / "ui"
OUT = HERE / ".work" / "ui-results.json"
BIG = 1_000_000
POINTS = 1000

MLFLOW_SEED = """
import sys, time
from concurrent.futures import ThreadPoolExecutor
from mlflow.tracking import MlflowClient
from mlflow.entities import Metric, Param
url, n, points, big = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
client = MlflowClient(url)
def one(i):
    rid = client.create_run("0", run_name=f"run-{i:05d}").info.run_id
    now = int(time.time() * 1000)
    metrics = [Metric("loss", 1 / (s + 1 + i % 7), now, s) for s in range(points)]
    metrics.append(Metric("acc", (i * 7919 % 1000) / 1000, now, 0))
    params = [Param("lr", str(10 ** -(i % 4))), Param("opt", ["adam", "sgd"][i % 2])]
    for k in range(0, len(metrics), 1000):
        client.log_batch(rid, metrics=metrics[k:k + 1000], params=params if k == 0 else [])
    client.set_terminated(rid)
    return rid
with ThreadPoolExecutor(8) as pool:
    ids = list(pool.map(one, range(n)))
rid = client.create_run("0", run_name="big").info.run_id
now = int(time.time() * 1000)
for k in range(0, big, 1000):
    client.log_batch(rid, metrics=[Metric("loss", ((s * 37) % 1000) / 1000, now, s)
                                   for s in range(k, k + 1000)])
client.set_terminated(rid)
print("IDS", " ".join(ids[:100]), rid)  # MLflow prints lines of its own
"""

TETHER_SEED = """
import sys
import tether
n, points, big = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
ids = []
for i in range(n):
    with tether.start_run(name=f"run-{i:05d}") as run:
        run.log_params({"lr": 10 ** -(i % 4), "opt": ["adam", "sgd"][i % 2]})
        for s in range(points):
            run.log_metric("loss", 1 / (s + 1 + i % 7), step=s)
        run.log_metric("acc", (i * 7919 % 1000) / 1000)
        ids.append(run.id)
with tether.start_run(name="big") as run:
    for s in range(big):
        run.log_metric("loss", ((s * 37) % 1000) / 1000, step=s)
print("IDS", " ".join(ids[:100]), run.id)
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_up(url: str, proc: subprocess.Popen[bytes], timeout: float = 120) -> None:
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise CommandError(f"the server at {url} exited with {proc.returncode}")
        try:
            urllib.request.urlopen(url, timeout=2).read()
            return
        except OSError:
            time.sleep(0.3)
    raise CommandError(f"the server at {url} did not answer within {timeout:.0f} s")


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def mlflow_server(folder: Path, port: int) -> subprocess.Popen[bytes]:
    exe = br.MLFLOW_PY.parent / "mlflow"
    args = [exe, "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
            "--backend-store-uri", f"sqlite:///{folder / 'mlflow.db'}",
            "--default-artifact-root", str(folder / "artifacts")]  # fmt: skip
    env = {**os.environ, "MLFLOW_ENABLE_TELEMETRY": "false", "DO_NOT_TRACK": "true"}
    return subprocess.Popen([str(a) for a in args], env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip


def tether_server(folder: Path, port: int) -> subprocess.Popen[bytes]:
    args = [
        br.TETHER_PY.parent / "tether",
        "server",
        "--index",
        f"sqlite:///{folder / 'server.db'}",
        "--store",
        folder / "store",
        "--port",
        str(port),
    ]
    return subprocess.Popen([str(a) for a in args], start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip


def seed(tool: str, runs: int) -> dict[str, Any]:
    """The tool's seeded folder (made once per size): the ids to compare and the big run."""
    folder = WORK / f"{tool}-{runs}"
    marker = folder / "seeded.json"
    if marker.exists():
        return dict(json.loads(marker.read_text()))
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    port = free_port()
    started = time.monotonic()
    if tool == "mlflow":
        proc = mlflow_server(folder, port)
        try:
            wait_up(f"http://127.0.0.1:{port}/health", proc)
            out = run([br.MLFLOW_PY, "-c", MLFLOW_SEED, f"http://127.0.0.1:{port}", runs, POINTS,
                       BIG])  # fmt: skip
        finally:
            stop(proc)
        project = "0"
    else:
        repo = folder / "repo"
        repo.mkdir()
        for argv in (["git", "init", "-q"], ["git", "config", "user.email", "b@example.com"],
                     ["git", "config", "user.name", "bench"], [br.TETHER_PY.parent / "tether",
                     "init"]):  # fmt: skip
            run(argv, cwd=repo)
        out = run([br.TETHER_PY, "-c", TETHER_SEED, runs, POINTS, BIG], cwd=repo)
        proc = tether_server(folder, port)
        project = "bench"
        try:
            wait_up(f"http://127.0.0.1:{port}/health", proc)
            url = f"http://127.0.0.1:{port}"
            import urllib.request

            req = urllib.request.Request(f"{url}/api/v1/projects", method="POST",
                                         data=json.dumps({"name": project}).encode(),
                                         headers={"Content-Type": "application/json"})  # fmt: skip
            urllib.request.urlopen(req, timeout=30).read()
            run([br.TETHER_PY.parent / "tether", "server", "login", url, "--project", project],
                cwd=repo)  # fmt: skip
            run([br.TETHER_PY.parent / "tether", "sync"], cwd=repo)
        finally:
            stop(proc)
    line = next(ln for ln in out.splitlines() if ln.startswith("IDS "))
    *compare, big = line.split()[1:]
    doc = {"compare": compare, "big": big, "project": project,
           "seconds": round(time.monotonic() - started, 1)}  # fmt: skip
    marker.write_text(json.dumps(doc))
    return doc


def timed(page: Any, url: str, ready: str, timeout: float = 60_000) -> float | None:
    """Milliseconds from navigation to ``ready`` (a selector) being visible; None: never."""
    start = time.perf_counter()
    try:
        page.goto(url, wait_until="commit")
        page.wait_for_selector(ready, state="visible", timeout=timeout)
    except Exception:
        return None
    return (time.perf_counter() - start) * 1000


def measure(tool: str, seeded: dict[str, Any], runs: int, repeat: int) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    folder = WORK / f"{tool}-{runs}"
    port = free_port()
    proc = mlflow_server(folder, port) if tool == "mlflow" else tether_server(folder, port)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_up(f"{base}/health", proc)
        ids, big = seeded["compare"], seeded["big"]
        if tool == "mlflow":
            exp = "0"
            newest = f"run-{runs - 1:05d}"
            pages: dict[str, tuple[str, str]] = {
                "first rows": (f"{base}/#/experiments/{exp}/runs", f"text={newest}"),
                "sorted by a metric": (
                    f"{base}/#/experiments/{exp}/runs?orderByKey=metrics.%60acc%60&orderByAsc=false",
                    "text=run-",
                ),
                "compare 100 runs": (
                    f"{base}/#/compare-runs?runs={json.dumps(ids)}&experiments=[%220%22]",
                    ".js-plotly-plot, canvas",
                ),
                "chart of 1M points": (  # the URL MLflow's own links build
                    f"{base}/#/metric/loss?runs=[%22{big}%22]&experiments=[%220%22]"
                    "&metric=%22loss%22&plot_metric_keys=[%22loss%22]&plot_layout={}&x_axis=step"
                    "&y_axis_scale=linear&line_smoothness=1&show_point=false"
                    "&deselected_curves=[]&last_linear_y_axis_range=[]",
                    ".js-plotly-plot .scatterlayer path.js-line",
                ),
            }
        else:
            p = f"{base}/p/{seeded['project']}"
            runs_q = "&".join(f"run={i}" for i in ids)
            pages = {
                "first rows": (f"{p}/runs", "table.runs tbody tr"),
                "sorted by a metric": (f"{p}/runs?sort=metrics.acc+desc", "table.runs tbody tr"),
                "compare 100 runs": (
                    f"{p}/compare?{runs_q}",
                    "figure.chart[data-key=loss][data-drawn]",
                ),
                "chart of 1M points": (
                    f"{p}/runs/{big}",
                    "figure.chart[data-key=loss][data-drawn]",
                ),
            }
        out: dict[str, Any] = {}
        with sync_playwright() as pw:
            browser = pw.chromium.launch(
                executable_path=shutil.which("chromium") or "chromium", args=["--no-sandbox"]
            )
            for name, (url, ready) in pages.items():
                best: float | None = None
                reload: float | None = None
                for _ in range(repeat):
                    context = browser.new_context(viewport={"width": 1280, "height": 800})
                    page = context.new_page()
                    cold = timed(page, url, ready)
                    warm = timed(page, url, ready) if cold is not None else None
                    context.close()
                    best = cold if best is None or (cold is not None and cold < best) else best
                    if warm is not None:
                        reload = warm if reload is None else min(reload, warm)
                out[name] = {"cold_ms": best, "reload_ms": reload}
                print(f"  {tool:7} {name:20} cold {fmt(best)}  reload {fmt(reload)}", flush=True)
            browser.close()
        return out
    finally:
        stop(proc)


def fmt(ms: float | None) -> str:
    return "   never" if ms is None else f"{ms:8.0f} ms"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="300 runs")
    parser.add_argument("--runs", type=int, help="runs seeded (default 10,000; quick 300)")
    parser.add_argument("--repeat", type=int, default=3, help="page loads per measure: the best")
    parser.add_argument("--tools", default="mlflow,tether", help="comma list (seeding MLflow "
                        "with 10k runs of 1,000 points takes about an hour here)")  # fmt: skip
    opts = parser.parse_args()
    runs = opts.runs or (300 if opts.quick else 10_000)
    if shutil.which("chromium") is None:
        print("Chromium is not installed: apt-get install chromium")
        return 1
    WORK.mkdir(parents=True, exist_ok=True)
    mlflow = br.ensure_mlflow() if "mlflow" in opts.tools else "-"
    print(f"mlflow {mlflow} vs tether; {runs} runs of {POINTS} points, one of {BIG:,}", flush=True)
    results: dict[str, Any] = {"runs": runs, "mlflow_version": mlflow, "date": time.ctime()}
    tools = [t for t in ("mlflow", "tether") if t in opts.tools.split(",")]
    for tool in tools:
        seeded = seed(tool, runs)
        print(f"{tool}: seeded in {seeded['seconds']} s (kept under {WORK})", flush=True)
        results[tool] = measure(tool, seeded, runs, opts.repeat)
    table(results)
    OUT.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nresults: {OUT}")
    return 0


def table(results: dict[str, Any]) -> None:
    print(f"\n{'measure':22} {'MLflow cold':>12} {'Tether cold':>12} {'ratio':>7} "
          f"{'MLflow reload':>14} {'Tether reload':>14}")  # fmt: skip

    def ratio(m: Any, t: Any) -> str:
        return f"{m / t:6.1f}x" if m is not None and t is not None and t > 0 else "      -"

    for name in results.get("tether", {}):
        m, t = results.get("mlflow", {}).get(name, {}), results["tether"][name]
        print(f"{name:22} {fmt(m.get('cold_ms')):>12} {fmt(t['cold_ms']):>12} "
              f"{ratio(m.get('cold_ms'), t['cold_ms'])} {fmt(m.get('reload_ms')):>14} "
              f"{fmt(t['reload_ms']):>14}")  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
