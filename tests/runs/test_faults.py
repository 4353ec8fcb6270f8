"""Runs under stress: kill -9, eight writers at once, a lost or damaged index, bad references."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import Tether, run_python
from tether.api import Project
from tether.errors import IndexStoreError, QueryError, RunError

LOGGER = """
import sys, time, tether
run = tether.start_run(name="victim")
progress = open(sys.argv[1], "w")
step = 0
while True:
    tether.log_metric("loss", 1.0 / (step + 1), step=step)
    if step % 1000 == 0:
        progress.write(f"{step} {time.time()}\\n")
        progress.flush()
    step += 1
    if step % 100 == 0:
        time.sleep(0.001)
"""


def test_kill_9_while_logging_leaves_a_killed_run_with_its_metrics(repo: Path) -> None:
    progress = repo / "progress.txt"
    proc = subprocess.Popen([sys.executable, "-c", LOGGER, str(progress)], cwd=repo)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and len(_lines(progress)) < 30:
        time.sleep(0.05)
    time.sleep(2.0)
    killed_at = time.time()
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    # every step logged more than a second before the kill must be there
    logged = [(int(s), float(t)) for s, t in (line.split() for line in _lines(progress))]
    due = max(step for step, at in logged if at < killed_at - 1.0)
    with Project.open(repo) as project:
        (run,) = project.search_runs()  # the next command finds the dead run
        assert run.status == "killed" and run.name == "victim"
        steps = {p[0] for p in project.run_series(run.id)["loss"]}
    assert set(range(due + 1)) <= steps
    assert not list((repo / ".tether" / "runs").iterdir())


def _lines(path: Path) -> list[str]:
    try:
        return [x for x in path.read_text().splitlines() if x.count(" ") == 1]
    except FileNotFoundError:
        return []


WRITER = """
import sys, tether
for i in range(10):
    with tether.start_run(name=f"w{sys.argv[1]}-{i}"):
        tether.log_params({"writer": sys.argv[1], "i": i})
        for step in range(20):
            tether.log_metric("m", step, step=step)
"""


def test_eight_processes_logging_at_once_lose_nothing(repo: Path) -> None:
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(n)], cwd=repo, stderr=subprocess.PIPE, text=True
        )
        for n in range(8)
    ]
    errors = [p.communicate(timeout=300)[1] for p in procs]
    assert [p.returncode for p in procs] == [0] * 8, errors
    assert not any("locked" in e for e in errors)
    with Project.open(repo) as project:
        runs = project.search_runs(limit=None)
        assert len(runs) == 80
        assert {r.name for r in runs} == {f"w{n}-{i}" for n in range(8) for i in range(10)}
        assert all(r.metrics["m"].count == 20 and r.status == "finished" for r in runs)


def _three_runs(repo: Path) -> None:
    code = """
import tether
for lr in (0.1, 0.2, 0.3):
    with tether.start_run(name=f"lr{lr}"):
        tether.log_param("lr", lr)
        tether.log_metric("acc", lr)
"""
    assert run_python(code, repo).returncode == 0


def test_reindex_restores_a_deleted_index(repo: Path, tether: Tether) -> None:
    _three_runs(repo)
    with Project.open(repo) as project:
        before = project.search_runs(sort="name")
        project.amend_run("lr0.2", tags={"best": "no"})
        project.delete_run("lr0.3")
    for name in ("index.db", "index.db-wal", "index.db-shm"):
        (repo / ".tether" / name).unlink(missing_ok=True)
    assert "indexed 3 runs" in tether("reindex").output
    with Project.open(repo) as project:
        after = project.search_runs(sort="name")
        assert [r.id for r in after] == [r.id for r in before][:2]
        assert after[1].tags == {"best": "no"}
        assert project.search_runs("tags.best = 'no'")[0].name == "lr0.2"
        assert [r.record for r in after] == [r.record for r in before][:2]


def test_a_corrupt_index_says_what_to_do_and_reindex_repairs_it(repo: Path, tether: Tether) -> None:
    _three_runs(repo)
    index = repo / ".tether" / "index.db"
    index.write_bytes(b"garbage" * 1000)
    for side in ("index.db-wal", "index.db-shm"):
        (repo / ".tether" / side).unlink(missing_ok=True)
    proc = subprocess.run(
        [sys.executable, "-m", "tether.cli.main", "runs", "list"],
        cwd=repo,
        capture_output=True,
        text=True,
    )
    out = run_python("import tether; tether.search_runs()", repo)
    assert (
        out.returncode != 0 and "IndexStoreError" in out.stderr and "tether reindex" in out.stderr
    )
    del proc
    tether("reindex")
    with Project.open(repo) as project:
        assert sorted(r.name for r in project.search_runs()) == ["lr0.1", "lr0.2", "lr0.3"]


def test_run_references_and_query_errors(repo: Path, tether: Tether) -> None:
    _three_runs(repo)
    with Project.open(repo) as project:
        ids = [r.id for r in project.search_runs()]
        common = ids[0][: next(i for i, c in enumerate(ids[0]) if any(x[i] != c for x in ids))]
        with pytest.raises(RunError, match="matches 3 runs"):
            project.get_run(common)
        with pytest.raises(RunError, match="no run matches"):
            project.get_run("nope")
        unique = next(
            ids[0][:n] for n in range(1, 37) if not any(x.startswith(ids[0][:n]) for x in ids[1:])
        )
        assert project.get_run(unique)["id"] == ids[0]
        with pytest.raises(QueryError) as err:
            project.search_runs("metrics.acc > ")
        assert err.value.position == len("metrics.acc > ")
    out = tether("runs", "list", "--where", "bogus.acc > 1", expect=2).output
    assert "^" in out and "bogus" in out
    out = tether("runs", "show", common, expect=4).output
    assert "give more characters" in out


def test_an_unreachable_postgres_index_is_a_clear_error(repo: Path) -> None:
    with Project.open(repo) as project:
        project.config_set("index.url", "postgresql+psycopg://nobody@127.0.0.1:1/none", local=True)
    with Project.open(repo) as project, pytest.raises(IndexStoreError, match="cannot be opened"):
        project.search_runs()


def test_runs_on_a_postgresql_index(repo: Path, pg_url: str, tether: Tether) -> None:
    """The same runs, searches and reindex with the index on a real PostgreSQL server."""
    with Project.open(repo) as project:
        project.config_set("index.url", pg_url, local=True)
    _three_runs(repo)
    with Project.open(repo) as project:
        found = project.search_runs("params.lr >= 0.2", sort="metrics.acc desc")
        assert [r.name for r in found] == ["lr0.3", "lr0.2"]
        project.delete_run("lr0.3")
    assert "indexed 3 runs" in tether("reindex").output
    with Project.open(repo) as project:
        assert [r.name for r in project.search_runs("params.lr >= 0.2")] == ["lr0.2"]
        assert not (repo / ".tether" / "index.db").exists()  # nothing went to SQLite
