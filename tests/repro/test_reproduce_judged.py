"""`tether reproduce` never says REPRODUCED when it compared nothing: outputs judged `metrics`
or `none` only have to exist, so without a metric a match says nothing (issue 11, finding 2)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.conftest import BIN, Tether, git, write_files
from tether.api import Project

NOISE = "import random\nopen('model.txt', 'w').write(str(random.random()))\n"
STAGE = """
stages:
  r:
    cmd: python3 r.py
    deps: [r.py]
    outs: [{path: model.bin, compare: metrics}]
"""
R_PY = "import random\nopen('model.bin', 'w').write(str(random.random()))\n"


def tether_cli(cwd: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "tether"), *argv], cwd=cwd, capture_output=True, text=True, check=False
    )


def test_an_output_judged_by_metrics_or_not_at_all_with_no_metric_is_not_reproduced(
    repo: Path,
) -> None:
    write_files(repo, {"noise.py": NOISE})
    with open(repo / ".gitignore", "a") as f:
        f.write("model.txt\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "noise")
    run = ["run", "-n", "N1", "--out", "model.txt", "--", "python3", "noise.py"]
    assert tether_cli(repo, *run).returncode == 0
    for mode in ("metrics", "none"):
        proc = tether_cli(repo, "reproduce", "N1", "-c", f"model.txt={mode}")
        assert proc.returncode == 3, proc.stdout + proc.stderr
        assert "FAILED" in proc.stdout and "nothing left to compare" in proc.stdout
        assert f"model.txt ({mode})" in proc.stdout
    proc = tether_cli(repo, "reproduce", "N1")  # judged by its bytes: a real verdict
    assert proc.returncode == 1, proc.stdout + proc.stderr


def test_a_stage_whose_outs_are_judged_by_metrics_it_does_not_log_is_not_reproduced(
    repo: Path, tether: Tether
) -> None:
    write_files(repo, {"pipeline.yaml": STAGE, "r.py": R_PY})
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "stage r")
    tether("repro", "--force")
    with Project.open(repo) as project:
        (pipeline,) = project.search_runs("tags.kind = 'pipeline'")
        (stage,) = project.search_runs("tags.stage = 'r'")
        whole = project.reproduce(pipeline.id)
        assert whole.verdict == "FAILED", (whole.reason, whole.outputs)
        assert "nothing left to compare" in whole.reason
        alone = project.reproduce(stage.id)
        assert alone.verdict == "FAILED", (alone.reason, alone.outputs)
        gate = f"tags.reproduction_of = '{stage.id}' and tags.verdict = 'REPRODUCED'"
        assert project.search_runs(gate) == []  # no registry gate passes on it
