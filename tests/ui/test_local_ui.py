"""`tether ui` in a repository: its runs are served on loopback, only under a loopback Host
(a DNS-rebinding page cannot reach it) and only to a browser that opened the printed URL."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import BIN, write_files
from tether.api import Project

pytestmark = pytest.mark.slow

PIPELINE = """stages:
  prep:
    cmd: python prep.py
    deps: [prep.py]
    params: [prep.n]
    outs: [prep.txt]
  train:
    cmd: python -c "open('train.txt', 'w').write(open('prep.txt').read() * 2)"
    deps: [prep.txt]
    outs: [train.txt]
"""
PREP = """import yaml
open("prep.txt", "w").write(str(yaml.safe_load(open("params.yaml"))["prep"]["n"]))
"""


def _start_ui(repo: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [str(BIN / "tether"), "ui", "--no-browser", *args],
        cwd=repo,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def _stop(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()


def test_tether_ui_serves_the_repository_behind_its_secret_and_host_check(repo: Path) -> None:
    with Project.open(repo).start_run(name="local-run") as run:
        run.log_metric("acc", 0.7)
        (repo / "model.pkl").write_bytes(b"weights")
        run.log_output(repo / "model.pkl")
    Project.open(repo).models.register("local-model", run=run.id, path="model.pkl")
    write_files(
        repo, {"pipeline.yaml": PIPELINE, "prep.py": PREP, "params.yaml": "prep:\n  n: 3\n"}
    )
    Project.open(repo).repro()
    proc = _start_ui(repo)
    try:
        assert proc.stdout is not None
        lines: list[str] = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not any("uploaded" in ln for ln in lines):
            lines.append(proc.stdout.readline())
        link = next(m.group(0) for ln in lines if (m := re.search(r"http://\S+", ln)))
        assert link.startswith("http://127.0.0.1:") and "token=" in link
        base = link.split("/ui-login")[0]

        assert httpx.get(base + "/").status_code == 403  # no secret yet
        for path in ("/api/v1/whoami", "/api/v1/projects", "/git/x.git/info/refs"):
            assert httpx.get(base + path).status_code == 403, path  # nor any other local process
        assert httpx.post(base + "/api/v1/projects", json={"name": "sneaky"}).status_code == 403
        for host in ("attacker.example:80", "127.0.0.1.attacker.example", "localhost:80@evil"):
            rebound = httpx.get(base + "/", headers={"Host": host})
            assert rebound.status_code == 421, host
        assert httpx.get(base + "/ui-login?token=guess").status_code == 403
        with httpx.Client(follow_redirects=True) as browser:
            page = browser.get(link)
            assert page.status_code == 200 and "local-run" in page.text
            assert "token" not in str(page.url)  # the secret leaves the address bar
            assert "content-security-policy" in page.headers
            project = str(page.url).rstrip("/").split("/p/")[1].split("/")[0]
            models = browser.get(f"{base}/p/{project}/models").text
            assert "local-model" in models  # the registry's log reached the UI's server

            stages = browser.get(f"{base}/p/{project}/pipeline").text
            assert stages.count("up to date") == 2, stages  # as `tether repro --dry-run` says
            ask = {"action": "rollback", "name": "sentiment", "label": "production"}
            lost = browser.post(f"{base}/api/v1/projects/{project}/decisions", json=ask)
            assert lost.status_code == 400 and "would be lost" in lost.json()["message"]
            (repo / "params.yaml").write_text("prep:\n  n: 4\n")
            stages = browser.get(f"{base}/p/{project}/pipeline").text
            assert "param prep.n changed: 3 -&gt; 4" in stages and "stage prep runs first" in stages

            with Project.open(repo).start_run(name="running-now") as running:
                running.log_metric("loss", 0.5, step=3)  # its journal shows it while it runs
                deadline = time.monotonic() + 30
                while True:
                    got = browser.post(f"{base}/api/v1/projects/{project}/runs/get",
                                       json={"ids": [running.id]}).json()["runs"]  # fmt: skip
                    if got and got[0]["metrics"].get("loss", {}).get("step") == 3:
                        break
                    assert time.monotonic() < deadline, f"no live metric in tether ui: {got}"
                    time.sleep(0.5)
                assert got[0]["status"] == "running"

            with Project.open(repo).start_run(name="made-after-start"):
                pass
            deadline = time.monotonic() + 30
            while "made-after-start" not in browser.get(f"{base}/p/{project}/runs").text:
                assert time.monotonic() < deadline, "a run made after the UI started never showed"
                time.sleep(0.5)

            port = base.rsplit(":", 1)[1]
            taken = subprocess.run(
                [str(BIN / "tether"), "ui", "--no-browser", "--port", port],
                cwd=repo, capture_output=True, text=True, timeout=60,
            )  # fmt: skip
            assert taken.returncode != 0 and "is taken" in taken.stdout + taken.stderr
            assert "http://" not in taken.stdout  # no URL printed, nothing uploaded
    finally:
        _stop(proc)
