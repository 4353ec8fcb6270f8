"""A label moved on the team server, side by side: MLflow's registry alias
(``MlflowClient.set_registered_model_alias`` against ``mlflow server``) and Tether's decisions
(a prompt label promoted through ``POST .../decisions``, as the web UI's button does, and by
``tether prompt promote`` in a clone bound to the server). Both servers on SQLite, one worker.

MLflow's alias is one row update. Tether's decision is made in a scratch clone of the project's
repository with the CLI's own code, checked at the door (signatures, roles, the tags' events) and
pushed atomically, so a browser's decision is exactly a clone's. Standard library only on the
Tether side; MLflow is installed as bench_server.py does.

    .venv/bin/python benchmarks/bench_decisions.py [--rounds 20]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
import urllib.request
from pathlib import Path

import bench_runs as br
from _shared import run
from bench_ui import free_port, mlflow_server, stop, tether_server, wait_up

MLFLOW_ALIAS = """
import sys, time, statistics
from mlflow.tracking import MlflowClient
url, rounds = sys.argv[1], int(sys.argv[2])
client = MlflowClient(url)
client.create_registered_model("m")
for _ in range(2):
    client.create_model_version("m", source="s3://bench/model", run_id=None)
took = []
for i in range(rounds):
    started = time.perf_counter()
    client.set_registered_model_alias("m", "production", str(1 + i % 2))
    took.append(time.perf_counter() - started)
print("MEDIAN", statistics.median(took) * 1000)
"""
META = "variables:\n  review: {type: string}\n"


def mlflow(rounds: int) -> float:
    with tempfile.TemporaryDirectory(prefix="bench-decide-") as tmp:
        port = free_port()
        proc = mlflow_server(Path(tmp), port)
        try:
            wait_up(f"http://127.0.0.1:{port}/health", proc)
            out = run([br.MLFLOW_PY, "-c", MLFLOW_ALIAS, f"http://127.0.0.1:{port}", rounds])
        finally:
            stop(proc)
    return float(next(ln for ln in out.splitlines() if ln.startswith("MEDIAN")).split()[1])


def tether(rounds: int) -> tuple[float, float]:
    tool = br.TETHER_PY.parent / "tether"
    with tempfile.TemporaryDirectory(prefix="bench-decide-") as tmp:
        folder, port = Path(tmp), free_port()
        repo = folder / "repo"
        repo.mkdir()
        for argv in (["git", "init", "-q"], ["git", "config", "user.email", "b@example.com"],
                     ["git", "config", "user.name", "bench"], [tool, "init"]):  # fmt: skip
            run(argv, cwd=repo)
        for version in ("v1.0.0", "v1.1.0"):
            base = repo / "prompts" / "sentiment" / version
            base.mkdir(parents=True)
            (base / "prompt.yaml").write_text(META)
            (base / "template.jinja2").write_text(f"{version}: {{{{ review }}}}")
            run(["git", "add", "-A"], cwd=repo)
            run(["git", "commit", "-qm", f"feat: {version}"], cwd=repo)
            run([tool, "prompt", "register", f"sentiment@{version}"], cwd=repo)
        (folder / "server").mkdir()
        proc = tether_server(folder / "server", port)
        url = f"http://127.0.0.1:{port}"
        try:
            wait_up(f"{url}/health", proc)
            _post(f"{url}/api/v1/projects", {"name": "bench"})
            run([tool, "server", "login", url, "--project", "bench"], cwd=repo)
            clone = []
            for i in range(rounds):  # a clone's decision: pull, decide, one atomic push
                started = time.perf_counter()
                run([tool, "prompt", "promote", f"sentiment@v1.{i % 2}.0", "--label", "production"],
                    cwd=repo)  # fmt: skip
                clone.append(time.perf_counter() - started)
            browser = []
            for i in range(rounds):  # the web UI's button: the server decides, as a clone would
                body = {"action": "promote", "name": "sentiment", "label": "production",
                        "version": f"v1.{(i + 1) % 2}.0", "seen": rounds + i}  # fmt: skip
                started = time.perf_counter()
                _post(f"{url}/api/v1/projects/bench/decisions", body)
                browser.append(time.perf_counter() - started)
        finally:
            stop(proc)
    return statistics.median(browser) * 1000, statistics.median(clone) * 1000


def _post(url: str, body: dict[str, object]) -> None:
    req = urllib.request.Request(url, method="POST", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})  # fmt: skip
    urllib.request.urlopen(req, timeout=60).read()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=20)
    opts = parser.parse_args()
    version = br.ensure_mlflow()
    alias = mlflow(opts.rounds)
    browser, clone = tether(opts.rounds)
    print(f"\nmoving a label on the server, median of {opts.rounds} (MLflow {version})")
    print(f"{'MLflow set_registered_model_alias':44} {alias:8.1f} ms")
    print(f"{'Tether decision from the browser (POST)':44} {browser:8.1f} ms  "
          f"{browser / alias:5.1f}x MLflow's time")  # fmt: skip
    print(f"{'Tether prompt promote in a bound clone (CLI)':44} {clone:8.1f} ms  "
          f"{clone / alias:5.1f}x MLflow's time")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
