"""Nested runs, as an MLflow user writes a hyperparameter sweep: a parent run, a child per trial."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

import tether
import tether as tether_api  # the `tether` fixture runs the CLI
from tests.conftest import BIN, Tether, git, write_files
from tether.api import Project
from tether.errors import RunError

TETHER = str(BIN / "tether")


@pytest.fixture(autouse=True)
def _no_run_left_active() -> Iterator[None]:
    yield
    while tether.active_run() is not None:  # a failing test must not leak its runs
        tether.end_run("failed")


def test_a_sweep_logs_each_trial_as_a_child_of_the_outer_run(project: Project) -> None:
    with tether.start_run(name="sweep", experiment="tuning") as outer:
        tether.log_param("grid", "lr")
        for lr in (0.1, 0.01):
            with tether.start_run(name=f"lr={lr}", nested=True) as trial:
                assert tether.active_run() is trial
                tether.log_param("lr", lr)
                tether.log_metric("loss", lr * 10)
            assert tether.active_run() is outer
        tether.log_metric("best_loss", 0.1)
    assert tether.active_run() is None
    children = project.search_runs(f"parent = '{outer.id}'", sort="name")
    assert [c.name for c in children] == ["lr=0.01", "lr=0.1"]
    assert [c.params for c in children] == [{"lr": "0.01"}, {"lr": "0.1"}]
    assert [c.metrics["loss"].last for c in children] == [0.1, 1.0]
    assert {c.experiment for c in children} == {"tuning"}  # the parent's experiment
    sweep = project.get_run("sweep")
    assert sweep["parent"] is None and sweep["params"] == {"grid": "lr"}
    assert set(sweep["metrics"]) == {"best_loss"}  # the trials' metrics stay in the trials
    assert project.get_run("lr=0.1")["parent"] == outer.id
    assert [r.name for r in project.search_runs("parent is null")] == ["sweep"]


def test_start_run_inside_an_active_run_asks_for_nested(project: Project) -> None:
    with tether.start_run(name="outer") as outer:
        with pytest.raises(RunError, match=r"already active.*nested=True"):
            tether.start_run(name="inner")
        assert tether.active_run() is outer
    assert [r.name for r in project.search_runs()] == ["outer"]


def test_end_run_ends_the_innermost_run_first(project: Project) -> None:
    outer = tether.start_run(name="outer")
    inner = tether.start_run(name="inner", nested=True)
    tether.end_run()
    assert inner.status == "finished" and tether.active_run() is outer
    tether.log_metric("after", 1.0)  # lands in the outer run again
    tether.end_run()
    assert tether.active_run() is None
    assert set(project.get_run("outer")["metrics"]) == {"after"}
    assert project.get_run("inner")["metrics"] == {}


def test_nested_without_an_active_run_starts_a_top_level_run(project: Project) -> None:
    with tether.start_run(name="alone", nested=True):
        pass
    assert project.get_run("alone")["parent"] is None


SWEEP = """
import tether
tether.log_param("trials", 2)                      # no start_run: the launched run itself
for lr in (0.1, 0.01):
    with tether.start_run(name=f"trial-{lr}"):     # a child of the launched run
        tether.log_param("lr", lr)
        tether.log_metric("loss", lr * 10)
        with tether.start_run(name=f"fold-{lr}", nested=True):
            tether.log_metric("fold_loss", lr)
tether.log_metric("best", 0.1)                      # the launched run again
"""


def test_start_run_under_tether_run_is_a_child_with_its_own_name(repo: Path) -> None:
    write_files(repo, {"sweep.py": SWEEP})
    proc = subprocess.run(
        [TETHER, "run", "-n", "sweep", "-e", "tuning", "--", sys.executable, "sweep.py"],
        cwd=repo,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    with Project.open(repo) as project:
        sweep = project.get_run("sweep")
        assert sweep["params"] == {"trials": "2"} and set(sweep["metrics"]) == {"best"}
        trials = project.search_runs(f"parent = '{sweep['id']}'", sort="name")
        assert [t.name for t in trials] == ["trial-0.01", "trial-0.1"]
        assert [t.params for t in trials] == [{"lr": "0.01"}, {"lr": "0.1"}]
        assert [t.metrics["loss"].last for t in trials] == [0.1, 1.0]
        assert {t.experiment for t in trials} == {"tuning"}
        assert all(t.status == "finished" for t in trials)
        fold = project.get_run("fold-0.1")
        assert fold["parent"] == project.resolve_run("trial-0.1")
        assert set(fold["metrics"]) == {"fold_loss"}
    listed = subprocess.run(
        [TETHER, "runs", "list", "--where", f"parent = '{sweep['id']}'", "--json"],
        cwd=repo,
        capture_output=True,
        text=True,
        check=True,
    )
    assert sorted(r["name"] for r in json.loads(listed.stdout)) == ["trial-0.01", "trial-0.1"]
    by_name = subprocess.run(
        [TETHER, "runs", "list", "--parent", "sweep", "--where", "params.lr < 0.05", "--json"],
        cwd=repo,
        capture_output=True,
        text=True,
        check=True,
    )
    assert [r["name"] for r in json.loads(by_name.stdout)] == ["trial-0.01"]


def test_runs_show_names_the_parent_and_the_children(project: Project, tether: Tether) -> None:
    with tether_api.start_run(name="sweep") as outer, tether_api.start_run("trial", nested=True):
        pass
    shown = tether("runs", "show", "trial").output
    assert "parent" in shown and outer.id in shown and "sweep" in shown
    shown = tether("runs", "show", "sweep").output
    assert "children" in shown and "trial" in shown
    listed = tether("runs", "list").output.splitlines()
    assert "parent" in listed[0]
    (row,) = [line for line in listed if " trial " in line]
    assert "sweep" in row  # the trial's parent, by name


FIT = """
import tether
with tether.start_run(name="fit"):
    tether.log_param("lr", 0.1)
    tether.log_metric("acc", 0.75)
    with tether.start_run(name="fold", nested=True):
        tether.log_metric("fold_acc", 0.5)
"""
FIT_NO_WITH = """
import tether
tether.start_run(name="fit")
tether.log_param("lr", 0.1)
for step in range(3):
    tether.log_metric("acc", 0.25 * (step + 1), step=step)
"""


@pytest.mark.parametrize("script", [FIT, FIT_NO_WITH], ids=["with", "no-with"])
def test_a_run_made_by_start_run_is_reproduced_as_itself(repo: Path, script: str) -> None:
    """`tether reproduce` re-runs the script under a launched run: the script's own start_run
    stands for the run being reproduced, so its metrics are compared, not left in a child."""
    write_files(repo, {"fit.py": script})
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "fit")
    made = subprocess.run([sys.executable, "fit.py"], cwd=repo, capture_output=True, check=False)
    assert made.returncode == 0, made.stderr
    proc = subprocess.run(
        [TETHER, "reproduce", "fit"], cwd=repo, capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0 and "REPRODUCED" in proc.stdout, proc.stdout + proc.stderr
    with Project.open(repo) as project:
        original = project.get_run("fit")
        (again,) = project.search_runs(f"tags.reproduction_of = '{original['id']}'")
        assert again.metrics["acc"].last == 0.75 and again.params["lr"] == "0.1"
        if script == FIT:
            (fold,) = project.search_runs(f"parent = '{again.id}'")
            assert fold.name == "fold" and fold.metrics["fold_acc"].last == 0.5
        else:
            assert again.metrics["acc"].count == 3


def test_trials_in_threads_are_children_of_the_main_threads_run(project: Project) -> None:
    """Optuna's n_jobs runs trials in threads: each trial's start_run(nested=True) is a child
    of the study's run, and each thread's metrics land in its own trial."""
    ready = threading.Barrier(4)

    def trial(i: int) -> str:
        with tether.start_run(name=f"t{i}", nested=True) as run:
            ready.wait(timeout=30)  # all four trials are active at once
            for step in range(20):
                tether.log_metric("x", float(i), step=step)
            return run.id

    with tether.start_run(name="study") as study:
        with ThreadPoolExecutor(4) as pool:
            ids = list(pool.map(trial, range(4)))
        tether.log_metric("best", 1.0)
        assert tether.active_run() is study
    children = project.search_runs(f"parent = '{study.id}'", sort="name")
    assert [c.name for c in children] == ["t0", "t1", "t2", "t3"]
    assert [c.id for c in children] == ids
    assert [(c.metrics["x"].min, c.metrics["x"].max) for c in children] == [
        (float(i), float(i)) for i in range(4)
    ]
    assert all(c.metrics["x"].count == 20 for c in children)
    assert set(project.get_run("study")["metrics"]) == {"best"}


def test_a_helper_thread_logs_into_the_main_threads_run(project: Project) -> None:
    with tether.start_run(name="main") as run:
        helper = threading.Thread(target=tether.log_metric, args=("from_helper", 1.0))
        helper.start()
        helper.join()
    assert set(project.get_run(run.id)["metrics"]) == {"from_helper"}
    assert [r.name for r in project.search_runs()] == ["main"]
