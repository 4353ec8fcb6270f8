"""`tether prompt compare` and `tether prompt ci`: paired statistics decide, the exit code gates
CI, and the GitHub workflow's own commands run on a repository with a feature branch."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from tests.conftest import BIN, Tether, git, write_files
from tests.pipelines.test_ci import shell, tether_steps

META = (
    "variables:\n  review: {type: string}\noutput: {format: label, labels: [positive, negative]}\n"
)
# the stand-in answers by keyword; a template that says LAZY gets "negative" for everything
SUITE = """providers: [scripted]
assert: [{label-match: true}]
scripted:
  - when: {contains: LAZY}
    answer: negative
  - when: {contains: [great, good]}
    answer: positive
  - default: negative
cases:
  - file: cases.csv
"""


def cases(n: int) -> str:
    rows = [f"c{i},{'a great film' if i % 2 else 'a dull film'} number {i}," for i in range(n)]
    return "id,review,expected\n" + "\n".join(
        r + ("positive" if i % 2 else "negative") for i, r in enumerate(rows)
    )


def setup(repo: Path, n: int) -> None:
    write_files(repo, {"evals/sentiment.yaml": SUITE, "evals/cases.csv": cases(n) + "\n"})
    for version, template in (
        ("v1.0.0", "Review: {{ review }}"),
        ("v1.1.0", "Review of a film: {{ review }}"),  # as good
        ("v1.2.0", "LAZY {{ review }}"),  # every positive case lost
    ):
        base = f"prompts/sentiment/{version}"
        write_files(repo, {f"{base}/prompt.yaml": META, f"{base}/template.jinja2": template})


def test_compare_reports_worse_better_and_inconclusive(repo: Path, tether: Tether) -> None:
    setup(repo, 160)
    args = ("prompt", "compare", "sentiment@v1.0.0")
    worse = tether(*args, "sentiment@v1.2.0", "--suite", "evals/sentiment.yaml", expect=1).output
    assert "verdict: worse" in worse and "pass_rate" in worse  # a table, then the verdict
    same = tether(*args, "sentiment@v1.1.0", "--suite", "evals/sentiment.yaml").output
    assert "verdict: no detectable difference" in same  # 160 identical cases: the gate passes
    doc = json.loads(
        tether(*args, "sentiment@v1.1.0", "--suite", "evals/sentiment.yaml", "--json").output
    )
    assert doc["gate"] == "pass" and doc["n"] == 160 and doc["pass_rate"]["difference"] == 0.0
    assert doc["pass_rate"]["test"] == "mcnemar-exact"
    (repo / "evals/cases.csv").write_text(cases(12) + "\n")  # too few cases to tell
    small = tether(*args, "sentiment@v1.1.0", "--suite", "evals/sentiment.yaml", expect=1).output
    assert "inconclusive" in small and "cases" in small


def test_ci_workflow_gates_a_pull_request_that_degrades_a_prompt(
    repo: Path, tether: Tether, tmp_path: Path
) -> None:
    tether("init", "--ci", "github")
    workflow = repo / ".github/workflows/tether.yml"
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    setup(repo, 100)
    for v in ("v1.1.0", "v1.2.0"):  # the pull request brings them
        (repo / f"prompts/sentiment/{v}/template.jinja2").rename(repo / f"{v}.tmp")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "feat(prompts): sentiment v1.0.0")
    tether("prompt", "register", "sentiment@v1.0.0")
    tether("prompt", "promote", "sentiment@v1.0.0", "--label", "production")
    origin = tmp_path / "origin.git"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(origin))
    git(repo, "remote", "add", "origin", str(origin))
    git(repo, "push", "-q", "origin", "main")
    tether("prompt", "promote", "sentiment@v1.0.0", "--label", "staging", "--push")

    git(repo, "checkout", "-q", "-b", "feature")
    (repo / "v1.2.0.tmp").rename(repo / "prompts/sentiment/v1.2.0/template.jinja2")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "feat(prompts): a lazier sentiment prompt")
    steps = [s for s in tether_steps(workflow, "pull_request") if s.startswith("tether prompt")]
    assert len(steps) == 2
    shell(steps[0], repo, env)  # tether prompt pull
    proc = subprocess.run(steps[1], shell=True, cwd=repo, env=env, text=True, capture_output=True)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    report = (repo / "tether-prompts.md").read_text()
    assert "sentiment@v1.2.0 vs production sentiment@v1.0.0" in report
    assert "**Verdict:** worse" in report and "Gate (FAILED)" in report
    assert "| pass_rate | 1 | 0.5 | -0.5 |" in report

    (repo / "v1.1.0.tmp").rename(repo / "prompts/sentiment/v1.1.0/template.jinja2")
    git(repo, "rm", "-rq", "prompts/sentiment/v1.2.0")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "feat(prompts): an equivalent sentiment prompt")
    shell(steps[1], repo, env)
    assert "Gate (passed)" in (repo / "tether-prompts.md").read_text()
