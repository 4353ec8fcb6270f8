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

from tests.conftest import BIN
from tether.api import Project

pytestmark = pytest.mark.slow


def test_tether_ui_serves_the_repository_behind_its_secret_and_host_check(repo: Path) -> None:
    with Project.open(repo).start_run(name="local-run") as run:
        run.log_metric("acc", 0.7)
    proc = subprocess.Popen(
        [str(BIN / "tether"), "ui", "--no-browser"],
        cwd=repo,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
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
        for host in ("attacker.example:80", "127.0.0.1.attacker.example", "localhost:80@evil"):
            rebound = httpx.get(base + "/", headers={"Host": host})
            assert rebound.status_code == 421, host
        assert httpx.get(base + "/ui-login?token=guess").status_code == 403
        with httpx.Client(follow_redirects=True) as browser:
            page = browser.get(link)
            assert page.status_code == 200 and "local-run" in page.text
            assert "token" not in str(page.url)  # the secret leaves the address bar
            assert "content-security-policy" in page.headers
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
