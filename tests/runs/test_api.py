"""Runs through the Python API, as a user logs them from a script or a notebook."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import types
from pathlib import Path

import pytest

import tether
from tests.conftest import git, write_files
from tether.api import Project
from tether.errors import RunError, UsageError
from tether.hashing import hash_bytes, hash_file
from tether.runs.record import load_record


def record_of(project: Project, run_id: str) -> dict:
    (oid,) = project.ws.refs.get(f"runs/{run_id}") or ()
    return load_record(project.ws.store.read_bytes(oid), oid)


def test_a_run_records_params_metrics_tags_and_seeds(project: Project) -> None:
    with tether.start_run(name="first", experiment="exp", tags={"team": "nlp"}) as run:
        tether.log_params({"lr": 0.01, "layers": 3})
        tether.log_param("lr", 0.01)  # the same value again is fine
        for step in range(3):
            tether.log_metric("loss", 1.0 / (step + 1), step=step)
        tether.log_metric("weird", math.nan)
        tether.log_metric("weird", math.inf, step=1)
        tether.log_metric("low", -math.inf)
        tether.set_tag("stage", "dev")
        assert tether.seed(7) == 7
        assert tether.active_run() is run
    assert tether.active_run() is None
    rec = record_of(project, run.id)
    assert rec["status"] == "finished" and rec["name"] == "first" and rec["experiment"] == "exp"
    assert rec["params"] == {"lr": "0.01", "layers": "3"}
    assert rec["tags"] == {"team": "nlp", "stage": "dev"}
    assert rec["seeds"] == [7]
    assert rec["metrics"]["loss"]["last"] == pytest.approx(1 / 3)
    assert rec["metrics"]["loss"]["count"] == 3
    assert rec["metrics"]["low"]["last"] == "-Infinity"
    history = project.run_series(run.id)
    assert [p[0] for p in history["loss"]] == [0, 1, 2]
    values = [p[2] for p in history["weird"]]
    assert math.isnan(values[0]) and values[1] == math.inf  # stored faithfully
    (found,) = project.search_runs("params.lr = 0.01 and tags.stage = 'dev'")
    assert found.id == run.id and found.metrics["weird"].last == math.inf


def test_a_param_logged_twice_with_another_value_is_refused(project: Project) -> None:
    with tether.start_run() as run:
        tether.log_param("lr", 0.1)
        with pytest.raises(RunError, match=r"already logged as '0\.1'"):
            tether.log_param("lr", 0.2)
    assert record_of(project, run.id)["params"] == {"lr": "0.1"}


def test_bad_keys_are_refused_with_the_rule(project: Project) -> None:
    with tether.start_run(), pytest.raises(RunError, match="letters, digits"):
        tether.log_metric("a\tb", 1.0)


def test_exceptions_and_ctrl_c_end_runs_failed_and_killed(project: Project) -> None:
    with pytest.raises(ZeroDivisionError), tether.start_run() as failed:
        1 / 0  # noqa: B018
    with pytest.raises(KeyboardInterrupt), tether.start_run() as killed:
        raise KeyboardInterrupt
    assert record_of(project, failed.id)["status"] == "failed"
    assert record_of(project, killed.id)["status"] == "killed"
    assert not (project.ws.dot / "runs" / failed.id).exists()


def test_one_active_run_per_process(project: Project) -> None:
    with tether.start_run(), pytest.raises(RunError, match="already active"):
        tether.start_run()


def test_inputs_outputs_and_artifacts_are_stored_by_content(project: Project, repo: Path) -> None:
    write_files(repo, {"data/train.csv": "a,b\n1,2\n", "data/more/x.txt": "x" * 100_000})
    write_files(repo, {"model.bin": b"\0\1\2" * 1000})
    with tether.start_run() as run:
        folder_id = tether.log_input("data")
        model_id = tether.log_output("model.bin")
        art = tether.log_artifact("model.bin", name="weights")
    rec = record_of(project, run.id)
    assert rec["data"]["inputs"] == {"data": folder_id}
    assert rec["data"]["outputs"] == {"model.bin": model_id} and model_id == hash_file(
        repo / "model.bin"
    )
    assert rec["artifacts"] == {"weights": art}
    tree = project.ws.store.load_tree(folder_id)
    assert sorted(e.path for e in tree.entries) == ["more/x.txt", "train.csv"]
    assert project.ws.store.read_bytes(model_id) == (repo / "model.bin").read_bytes()
    assert folder_id in rec["links"] and model_id in rec["links"]


def test_code_capture_rebuilds_the_dirty_tree_with_git_apply(
    project: Project, repo: Path, tmp_path: Path
) -> None:
    write_files(repo, {"train.py": "print(1)\n", "img.png": b"\x89PNG\0\1\2\3"})
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "base")
    write_files(repo, {"train.py": "print(2)\n", "new_module.py": "X = 1\n", "img.png": b"\0\0\7"})
    with tether.start_run() as run:
        pass
    code = record_of(project, run.id)["code"]
    assert code["dirty"] is True and code["branch"] == "main"
    assert code["changed"] == ["img.png", "new_module.py", "train.py"]
    patch = project.ws.store.read_bytes(code["diff"])
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(repo), str(clone)], check=True)
    subprocess.run(["git", "checkout", "-q", code["commit"]], cwd=clone, check=True)
    subprocess.run(["git", "apply", "--binary", "-"], cwd=clone, input=patch, check=True)
    for name in ("train.py", "new_module.py", "img.png"):
        assert (clone / name).read_bytes() == (repo / name).read_bytes()
    assert git(repo, "status", "--porcelain").count("\n") == 3  # the user's index is untouched


def test_a_big_untracked_file_is_named_but_not_put_in_the_diff(
    project: Project, repo: Path
) -> None:
    project.config_set("runs.diff_max_file", "1000")
    write_files(repo, {"small.py": "x = 1\n", "dump.csv": "1,2,3\n" * 1000})
    with tether.start_run() as run:
        pass
    code = record_of(project, run.id)["code"]
    # named with its size and content id, never stored
    assert code["skipped"] == {"dump.csv": {"size": 6000, "id": hash_bytes(b"1,2,3\n" * 1000)}}
    assert not project.ws.store.has(code["skipped"]["dump.csv"]["id"])
    patch = project.ws.store.read_bytes(code["diff"])
    assert b"small.py" in patch and b"dump.csv" not in patch


def test_environment_and_tracked_data_are_pinned(project: Project, repo: Path) -> None:
    write_files(repo, {"data/a.txt": "1", "uv.lock": "lock v1"})
    project.add(["data"])
    with tether.start_run() as run:
        write_files(repo, {"data/a.txt": "2"})
        project.add(["data"])
    rec = record_of(project, run.id)
    starts, ends = rec["data"]["pointers_start"], rec["data"]["pointers_end"]
    assert starts["data"] != ends["data"]
    env = json.loads(project.ws.store.read_bytes(rec["env"]))
    assert env["python"]["version"] == ".".join(map(str, sys.version_info[:3]))
    assert "blake3" in env["packages"] and "uv.lock" in env["lock_files"]


def test_a_notebook_kernel_is_captured(
    project: Project, repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A running Jupyter kernel is found through IPython's get_ipython (a fake kernel here)."""
    notebook = {"cells": [{"source": ["api_token = 'abc123'\n", "x = 1"]}], "nbformat": 4}
    write_files(repo, {"analysis.ipynb": json.dumps(notebook)})
    shell = types.SimpleNamespace(user_ns={"In": ["", "import tether", 'pw = "x"; password="s3"']})
    fake = types.ModuleType("IPython")
    fake.get_ipython = lambda: shell  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "IPython", fake)
    monkeypatch.setenv("JPY_SESSION_NAME", str(repo / "analysis.ipynb"))
    with tether.start_run() as run:
        pass
    nb = record_of(project, run.id)["notebook"]
    cells = json.loads(project.ws.store.read_bytes(nb["cells"]))
    assert cells == ["import tether", 'pw = "x"; password="***"']  # secrets masked per cell
    saved = json.loads(project.ws.store.read_bytes(nb["file"]))
    assert saved["cells"][0]["source"] == ["api_token = '***'\n", "x = 1"]


def test_amendments_tombstones_and_purge(project: Project, repo: Path) -> None:
    write_files(repo, {"leak.csv": "ssn,123-45-6789\n"})
    with tether.start_run(name="leaky") as run:
        leaked = tether.log_artifact("leak.csv")
    (repo / "leak.csv").unlink()
    sealed = project.ws.refs.get(f"runs/{run.id}")
    project.amend_run("leaky", tags={"reviewed": "yes"}, note="looked fine")
    assert project.ws.refs.get(f"runs/{run.id}") == sealed  # the sealed run never changes
    assert project.get_run("leaky")["tags"]["reviewed"] == "yes"
    assert [r.id for r in project.search_runs("tags.reviewed = 'yes'")] == [run.id]
    project.delete_run(run.id[:18])
    assert project.search_runs() == []
    assert project.ws.store.has(leaked)
    result = project.purge_runs()
    assert result.runs == [run.id] and not project.ws.store.has(leaked)
    assert project.ws.refs.get(f"tombstones/{run.id}") is not None  # a pull cannot revive it


def test_search_runs_from_the_module(project: Project) -> None:
    for lr in (0.1, 0.2, 0.3):
        with tether.start_run():
            tether.log_param("lr", lr)
            tether.log_metric("acc", lr * 2)
    found = tether.search_runs("metrics.acc >= 0.4", sort="metrics.acc desc")
    assert [r.params["lr"] for r in found] == ["0.3", "0.2"]


def test_the_remote_is_recorded_without_its_password(project: Project, repo: Path) -> None:
    with tether.start_run() as first:
        pass
    git(repo, "remote", "add", "origin", "https://ann:s3cr3t-pw@git.example.com/team/repo.git")
    with tether.start_run() as second:  # .git/config changed: asked again, not cached
        pass
    assert record_of(project, first.id)["code"]["remote"] is None
    remote = record_of(project, second.id)["code"]["remote"]
    assert remote == "https://ann:***@git.example.com/team/repo.git"


def test_prompts_and_models_are_reached_from_a_plain_import_lazily(repo: Path) -> None:
    code = (
        "import sys, tether\n"
        "before = {m for m in ('tether.prompts', 'tether.models') if m in sys.modules}\n"
        "print(sorted(before), callable(tether.prompts.load), callable(tether.models.load))\n"
        "print('prompts' in dir(tether) and 'models' in dir(tether))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert proc.stdout.split("\n")[:2] == ["[] True True", "True"], proc.stderr


def test_mlflow_names_for_start_run_and_end_run(project: Project) -> None:
    """An MLflow script moved over as it is: run_name, experiment_id, description, "FAILED"."""
    tether.start_run(run_name="ported", experiment_id="legacy", description="from MLflow")
    tether.log_metric("loss", 0.5)
    tether.end_run(status="FAILED")
    rec = project.get_run("ported")
    assert rec["experiment"] == "legacy" and rec["status"] == "failed"
    assert rec["notes"] == ["from MLflow"]
    with pytest.raises(UsageError, match="either name or run_name"):
        tether.start_run(name="a", run_name="b")
