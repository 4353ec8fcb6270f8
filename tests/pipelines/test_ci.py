"""`tether init --ci github|gitlab`: the workflow's own commands, run on a real repository with
a base branch and a feature branch (the hosted CI runner is the only thing not exercised)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.conftest import BIN, Tether, git, write_files

PIPELINE = """stages:
  fit:
    cmd: python fit.py
    deps: [fit.py]
    params: [fit.c]
    outs: [model.txt]
    metrics: [fit.json]
"""
FIT = """import json, yaml, tether
c = yaml.safe_load(open("params.yaml"))["fit"]["c"]
open("model.txt", "w").write(str(c * 2))
json.dump({"score": c * 0.1}, open("fit.json", "w"))
"""


def shell(cmd: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cmd, shell=True, cwd=cwd, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, f"{cmd}\n{proc.stdout}\n{proc.stderr}"
    return proc


def tether_steps(workflow: Path, event: str) -> list[str]:
    """The workflow's `run:` commands that call tether, for a push or a pull request."""
    doc = yaml.safe_load(workflow.read_text())
    steps = doc["jobs"]["repro"]["steps"]
    out = []
    for step in steps:
        cmd = step.get("run", "")
        if not cmd.startswith("tether") or ("if" in step and event != "pull_request"):
            continue
        out.append(cmd.replace("${{ github.base_ref }}", "main"))
    return out


def test_github_workflow_commands_report_a_pull_request(
    repo: Path, tether: Tether, tmp_path: Path
) -> None:
    tether("init", "--ci", "github")
    workflow = repo / ".github/workflows/tether.yml"
    assert workflow.exists()
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    write_files(repo, {"pipeline.yaml": PIPELINE, "fit.py": FIT, "params.yaml": "fit:\n  c: 1\n"})
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "pipeline")
    origin = tmp_path / "origin.git"
    git(tmp_path, "init", "-q", "--bare", str(origin))
    git(repo, "remote", "add", "origin", str(origin))
    git(repo, "push", "-q", "origin", "main")
    for cmd in tether_steps(workflow, "push"):  # CI on main
        shell(cmd, repo, env)
    git(repo, "checkout", "-q", "-b", "feature")
    write_files(repo, {"params.yaml": "fit:\n  c: 3\n"})
    git(repo, "commit", "-qam", "feat: stronger c")
    git(repo, "fetch", "-q", "origin")
    for cmd in tether_steps(workflow, "pull_request"):  # CI on the pull request
        shell(cmd, repo, env)
    report = (repo / "tether-report.md").read_text()
    assert report.startswith("### Why")
    assert "parameter fit.c: 1 → 3" in report and "score: 0.1 → 0.3" in report


def test_gitlab_workflow_and_refusals(repo: Path, tether: Tether) -> None:
    tether("init", "--ci", "gitlab")
    doc = yaml.safe_load((repo / ".gitlab-ci.yml").read_text())
    assert any(line.startswith("tether repro") for line in doc["tether"]["script"])
    out = tether("init", "--ci", "gitlab", expect=2).output
    assert "exists already" in out


def test_a_revision_without_runs_is_a_clear_error(repo: Path, tether: Tether) -> None:
    write_files(repo, {"a.txt": "1"})
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "one")
    out = tether("diff", "@HEAD", "@HEAD", expect=4).output
    assert "no finished run was made at HEAD" in out
    assert "not a git revision" in tether("runs", "show", "@nope", expect=4).output


@pytest.fixture(autouse=True)
def _no_real_remote_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID", raising=False)
