"""A stage's metrics files as a user declares them: one file keeps its keys, several files cannot
share a name (as `dvc metrics show` groups by file), and `reproduce` judges each file."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.conftest import Tether, git, write_files
from tether.api import Project

EV = f"""
stages:
  ev:
    cmd: {sys.executable} r.py
    deps: [r.py]
    metrics: [val.json, test.json]
"""
R = """import json, random
json.dump({"acc": random.random()}, open("val.json", "w"))
json.dump({"acc": 0.5}, open("test.json", "w"))
"""


def _metrics(project: Project, stage: str) -> dict[str, float]:
    (run,) = project.search_runs(f"tags.stage = '{stage}'")
    return {k: m["last"] for k, m in project.get_run(run.id)["metrics"].items()}


def test_two_metrics_files_with_the_same_key_are_two_metrics_and_both_judged(
    repo: Path, tether: Tether
) -> None:
    write_files(repo, {"pipeline.yaml": EV, "r.py": R})
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "ev")
    tether("repro")
    with Project.open(repo) as project:
        metrics = _metrics(project, "ev")
        assert set(metrics) == {"val.json:acc", "test.json:acc"} and metrics["test.json:acc"] == 0.5
    out = tether("reproduce", "ev", expect=1).output
    assert "DIFFERENT" in out and "val.json:acc" in out


def test_bare_numbers_are_named_by_their_file_and_one_file_keeps_its_keys(
    project: Project, repo: Path
) -> None:
    pipeline = (
        "stages:\n  fit:\n    cmd: echo 0.25 > loss.txt && echo 1000 > n_params.txt\n"
        "    metrics: [loss.txt, n_params.txt]\n"
        "  one:\n    cmd: cp one.json m.json\n    metrics: [m.json]\n"
        "  bare:\n    cmd: echo 3 > count.txt\n    metrics: [count.txt]\n"
    )
    write_files(repo, {"pipeline.yaml": pipeline, "one.json": '{"acc": 0.75, "f": {"1": 2}}'})
    assert project.repro().ok
    assert _metrics(project, "fit") == {"loss.txt": 0.25, "n_params.txt": 1000.0}
    assert _metrics(project, "one") == {"acc": 0.75, "f.1": 2.0}
    assert _metrics(project, "bare") == {"count.txt": 3.0}


def test_a_metrics_file_spelling_one_name_twice_fails_the_stage(
    project: Project, repo: Path
) -> None:
    pipeline = "stages:\n  fit:\n    cmd: cp twice.json m.json\n    metrics: [m.json]\n"
    write_files(repo, {"pipeline.yaml": pipeline, "twice.json": '{"a.b": 1, "a": {"b": 2}}'})
    (result,) = project.repro().results
    assert result.outcome == "failed" and "'a.b'" in result.detail and "m.json" in result.detail


@pytest.mark.parametrize(
    ("content", "says"),
    [('{"acc": ', "cannot be read"), ('{"note": "fine"}', "holds no numbers")],
)
def test_a_metrics_file_without_numbers_fails_the_stage_naming_the_file(
    project: Project, repo: Path, tether: Tether, content: str, says: str
) -> None:
    pipeline = "stages:\n  fit:\n    cmd: cp src.json m.json\n    metrics: [m.json]\n"
    write_files(repo, {"pipeline.yaml": pipeline, "src.json": content})
    out = tether("repro", expect=3).output
    assert "m.json" in out and says in out
