"""Pipelines as a user runs them: stale stages only, reasons, the lock, the run cache, failures."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.conftest import Tether, git, write_files
from tether.api import Project
from tether.errors import UsageError
from tether.pipelines.spec import PipelineError

PIPELINE = """
stages:
  prepare:
    cmd: mkdir -p data/clean && tr a-z A-Z < raw.txt > data/clean/text.txt
    deps: [raw.txt]
    outs: [data/clean]
  count:
    cmd: sh count.sh ${item}
    foreach: [1, 2]
    deps: [data/clean, count.sh]
    params: [count.threshold]
    outs: [{path: "count${item}.txt", compare: metrics}]
    metrics: ["metrics${item}.json"]
"""
COUNT = """wc -c < data/clean/text.txt | tr -d ' ' > count$1.txt
echo "{\\"chars\\": $(cat count$1.txt), \\"scale\\": $1}" > metrics$1.json
"""


def setup(repo: Path, pipeline: str = PIPELINE) -> None:
    files = {"pipeline.yaml": pipeline, "raw.txt": "hello\n", "count.sh": COUNT}
    write_files(repo, {**files, "params.yaml": "count:\n  threshold: 3\n"})


def test_stale_stages_run_with_reasons_and_a_noop_runs_nothing(
    project: Project, repo: Path
) -> None:
    single = PIPELINE.replace("    foreach: [1, 2]\n", "").replace("${item}", "1")
    setup(repo, single)
    seen: list[tuple[str, str]] = []
    first = project.repro(report=lambda s, m: seen.append((s, m)))
    assert first.ok and [r.outcome for r in first.results] == ["ran", "ran"]
    assert (repo / "data/clean/text.txt").read_text() == "HELLO\n"
    lock = yaml.safe_load((repo / "pipeline.lock").read_text())
    assert lock["stages"]["count"]["params"] == {"params.yaml": {"count.threshold": 3}}
    assert set(lock["stages"]["prepare"]["outs"]) == {"data/clean"}
    assert project.repro().plan.todo == []  # a no-op
    # the stage runs are runs, children of the pipeline run, with inputs and outputs
    stage = project.get_run("count")
    assert stage["parent"] == first.run and stage["metrics"]["chars"]["last"] == 6.0
    assert stage["data"]["inputs"]["data/clean"] == lock["stages"]["prepare"]["outs"]["data/clean"]
    assert stage["data"]["outputs"]["count1.txt"] == lock["stages"]["count"]["outs"]["count1.txt"]
    assert "/clean" in (repo / "data" / ".gitignore").read_text().splitlines()  # outs are data


def test_a_param_change_reruns_only_what_depends_on_it(project: Project, repo: Path) -> None:
    setup(repo)
    project.repro()
    write_files(repo, {"params.yaml": "count:\n  threshold: 4\n"})
    dry = project.repro(dry_run=True)
    why = {sp.stage.name: (sp.action, sp.reasons) for sp in dry.plan.stages}
    assert why["prepare"] == ("none", [])
    assert why["count@0"] == ("run", ["param count.threshold changed: 3 -> 4"])
    again = project.repro(["count@0"])
    assert {r.name: r.outcome for r in again.results} == {"count@0": "ran"}
    assert [sp.stage.name for sp in project.repro(dry_run=True).plan.todo] == ["count@1"]


def test_run_cache_restores_instead_of_running(project: Project, repo: Path) -> None:
    setup(repo)
    project.repro()
    write_files(repo, {"raw.txt": "changed\n"})
    project.repro()
    write_files(repo, {"raw.txt": "hello\n"})  # back to a state seen before
    seen: list[str] = []
    result = project.repro(report=lambda s, m: seen.append(f"{s}: {m}"))
    assert {r.outcome for r in result.results} == {"cached"}
    assert (repo / "data/clean/text.txt").read_text() == "HELLO\n"
    assert any("run cache" in line for line in seen)


def test_deleted_outs_are_restored_from_the_cache(project: Project, repo: Path) -> None:
    setup(repo)
    project.repro()
    (repo / "count1.txt").unlink()
    result = project.repro()
    assert [r.outcome for r in result.results] == ["restored"]
    assert (repo / "count1.txt").read_text().strip() == "6"


def test_a_failing_stage_stops_its_dependents_and_keeps_the_lock(
    project: Project, repo: Path, tether: Tether
) -> None:
    setup(repo, PIPELINE.replace("mkdir -p data/clean && ", "false && "))
    out = tether("repro", expect=3).output
    assert "prepare: failed: exited 1" in out and "skipped" in out
    assert (
        not (repo / "pipeline.lock").exists()
        or "prepare" not in (repo / "pipeline.lock").read_text()
    )
    (failed,) = project.search_runs("status = 'failed' and tags.stage = 'prepare'")
    assert failed.exit_code == 1


def test_a_declared_out_that_is_not_written_fails_the_stage(project: Project, repo: Path) -> None:
    setup(repo, PIPELINE.replace("outs: [data/clean]", "outs: [data/clean, data/extra]"))
    result = project.repro()
    assert result.results[0].outcome == "failed" and "data/extra" in result.results[0].detail


@pytest.mark.parametrize(
    ("pipeline", "message"),
    [
        ("stages:\n  a: {cmd: x, outs: [o]}\n  b: {cmd: y, outs: [o]}\n", "both write o"),
        (
            "stages:\n  a: {cmd: x, deps: [o2], outs: [o1]}\n  b: {cmd: y, deps: [o1], outs: [o2]}",
            "cycle",
        ),
        ("stages:\n  a: {cmd: x, deps: [nothing-here]}\n", "needs nothing-here"),
        ("stages:\n  a: {cmd: x, deps: [../etc/passwd]}\n", "leaves the repository"),
        ("stages:\n  a: {deps: [x]}\n", "needs a `cmd`"),
    ],
)
def test_bad_pipelines_name_the_stages(
    project: Project, repo: Path, pipeline: str, message: str
) -> None:
    write_files(repo, {"pipeline.yaml": pipeline})
    with pytest.raises(PipelineError, match=message):
        project.repro()


def test_parallel_stages(project: Project, repo: Path, tether: Tether, tmp_path: Path) -> None:
    """With -j 4 the four stages run at once: each waits (up to 10 s) until all four have
    started, which serial stages never would."""
    marks = tmp_path / "started"
    marks.mkdir()
    wait = (
        f"touch {marks}/$0; for n in $(seq 200); do [ $(ls {marks} | wc -l) -ge 4 ] && break; "
        f"sleep 0.05; done; [ $(ls {marks} | wc -l) -ge 4 ]"
    )
    stages = "\n".join(
        f"  s{i}:\n    cmd: sh -c '{wait}' s{i} && echo {i} > out{i}.txt\n    outs: [out{i}.txt]"
        for i in range(4)
    )
    write_files(repo, {"pipeline.yaml": "stages:\n" + stages + "\n"})
    tether("repro", "-j", "4")
    assert all((repo / f"out{i}.txt").read_text() == f"{i}\n" for i in range(4))
    git(repo, "status")


def test_a_stage_writing_an_undeclared_file_fails(project: Project, repo: Path) -> None:
    stage = "  a:\n    cmd: echo 1 > out.txt && echo 2 > sneaky.txt\n    outs: [out.txt]\n"
    write_files(repo, {"pipeline.yaml": "stages:\n" + stage})
    result = project.repro()
    assert result.results[0].outcome == "failed"
    assert "sneaky.txt, which it does not declare" in result.results[0].detail


def test_a_stage_killed_mid_run_runs_again_next_time(project: Project, repo: Path) -> None:
    import os
    import signal
    import subprocess
    import time

    from tests.conftest import BIN

    slow = "stages:\n  a:\n    cmd: sleep 30 && echo 1 > out.txt\n    outs: [out.txt]\n"
    write_files(repo, {"pipeline.yaml": slow})
    proc = subprocess.Popen([str(BIN / "tether"), "repro"], cwd=repo, start_new_session=True)
    deadline = time.monotonic() + 30
    live = repo / ".tether" / "runs"
    while len(list(live.glob("*/start.json"))) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)  # the pipeline run and the stage's run have started
    time.sleep(0.3)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (repo / "pipeline.lock").exists()  # nothing recorded for the killed stage
    write_files(repo, {"pipeline.yaml": slow.replace("sleep 30 && ", "")})
    result = project.repro()
    assert [r.outcome for r in result.results] == ["ran"]
    killed = project.search_runs("status = 'killed'")
    assert {r.name for r in killed} == {"a", "repro"}  # the dead runs were sealed, not left running


def test_review_fixes_for_outs_env_secrets_and_targets(project: Project, repo: Path) -> None:
    from tether.hashing import hash_bytes

    one = (
        "stages:\n  a:\n    cmd: echo $MODE > out.txt\n    env: {MODE: one}\n    outs: [out.txt]\n"
    )
    write_files(repo, {"pipeline.yaml": one})
    project.repro()
    # a hand edit to an out is kept in the cache before the out is restored
    (repo / "out.txt").write_text("my edit\n")
    seen: list[str] = []
    project.repro(report=lambda s, m: seen.append(m))
    assert (repo / "out.txt").read_text() == "one\n"
    assert project.ws.store.has(hash_bytes(b"my edit\n")) and any(
        "kept the changed" in m for m in seen
    )
    # an env change re-runs the stage
    write_files(repo, {"pipeline.yaml": one.replace("MODE: one", "MODE: two")})
    assert project.repro(dry_run=True).plan.todo[0].reasons == ["env changed: MODE"]
    project.repro()
    assert (repo / "out.txt").read_text() == "two\n"
    # a stage that stops writing its out fails instead of recording the old file
    write_files(repo, {"pipeline.yaml": one.replace("echo $MODE > out.txt", "echo skip")})
    result = project.repro()
    assert (
        result.results[0].outcome == "failed"
        and "did not write its out" in result.results[0].detail
    )


def test_secret_params_are_masked_in_the_lock(project: Project, repo: Path) -> None:
    stage = "  a:\n    cmd: echo ok > o.txt\n    params: [api_key]\n    outs: [o.txt]\n"
    write_files(
        repo, {"pipeline.yaml": "stages:\n" + stage, "params.yaml": "api_key: sk-live-123\n"}
    )
    project.repro()
    lock = (repo / "pipeline.lock").read_text()
    assert "sk-live-123" not in lock and "***" in lock
    assert project.repro(dry_run=True).plan.todo == []  # masked, but still compared
    write_files(repo, {"params.yaml": "api_key: sk-live-456\n"})
    reasons = project.repro(dry_run=True).plan.todo[0].reasons
    assert reasons and "sk-live" not in " ".join(reasons)


def test_a_matrix_stage_named_as_a_whole_runs_every_variant(project: Project, repo: Path) -> None:
    grid = "stages:\n  t:\n    matrix: {n: [1, 2]}\n    cmd: echo ${item.n} > o${item.n}.txt\n"
    write_files(repo, {"pipeline.yaml": grid + '    outs: ["o${item.n}.txt"]\n'})
    result = project.repro(["t"])
    assert sorted(r.name for r in result.results) == ["t@0", "t@1"]


@pytest.mark.parametrize("bad", ["{../p.yaml: [x]}", "[.git/hooks/x]", "[.tether/objects]"])
def test_paths_into_git_tether_or_outside_are_refused(
    project: Project, repo: Path, bad: str
) -> None:
    key = "params" if bad.startswith("{") else "outs"
    write_files(repo, {"pipeline.yaml": f"stages:\n  a:\n    cmd: 'true'\n    {key}: {bad}\n"})
    with pytest.raises(PipelineError):
        project.repro()


def test_gc_refuses_to_run_in_a_worktree_sharing_the_cache(
    project: Project, repo: Path, tmp_path: Path
) -> None:
    from tether.errors import UsageError
    from tether.workspace.gc import gc
    from tether.workspace.repo import Workspace

    other = tmp_path / "wt"
    git(repo, "commit", "-q", "--allow-empty", "-m", "x")
    git(repo, "worktree", "add", "-q", "--detach", str(other))
    (other / "tether.toml").write_text("format = 1\n")
    (other / ".tether").symlink_to(repo / ".tether")
    with pytest.raises(UsageError, match="shared with another work tree"):
        gc(Workspace.open(other))


def test_two_repros_at_once_do_not_overwrite_each_others_lock(project: Project, repo: Path) -> None:
    from tether.errors import LockError
    from tether.objects.lock import file_lock

    setup(repo)
    with file_lock(repo / ".tether/locks/repro.lock", exclusive=True), pytest.raises(LockError):
        project.repro()  # another `tether repro` holds the pipeline
    assert project.repro().ok


def test_stage_runs_are_queued_for_the_index_and_found_by_the_next_reader(
    project: Project, repo: Path
) -> None:
    import subprocess
    import sys

    setup(repo)
    code = (
        "from tether.api import Project; Project.open('.').repro(); "
        "import sys; print('sqlalchemy' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=repo, capture_output=True, text=True)
    assert out.stdout.strip() == "False", out.stderr  # the pipeline never loaded the index
    assert (repo / ".tether" / "index.pending").exists()
    names = {r.name for r in project.search_runs()}  # the next reader indexes the queue first
    assert names == {"repro", "prepare", "count@0", "count@1"}
    assert not (repo / ".tether" / "index.pending").exists()


def test_every_object_a_stage_run_records_is_in_the_cache(
    project: Project, repo: Path, tether: Tether
) -> None:
    setup(repo)
    assert project.repro().ok
    # count.sh and raw.txt are deps no stage makes: the stage runs name them by id, so `fsck`
    # (and `push`) need their bytes in the cache
    assert "missing" not in tether("fsck").output
    count = project.get_run("count@1")
    assert project.ws.store.has(count["data"]["inputs"]["count.sh"])


@pytest.mark.parametrize("jobs", ["0", "-1"])
def test_jobs_below_one_is_a_usage_error(
    project: Project, repo: Path, tether: Tether, jobs: str
) -> None:
    write_files(repo, {"pipeline.yaml": "stages:\n  s:\n    cmd: echo 1 > o\n    outs: [o]\n"})
    out = tether("repro", "-j", jobs, expect=2).output
    assert "jobs" in out
    with pytest.raises(UsageError, match="jobs"):
        project.repro(jobs=int(jobs))
    assert not (repo / "o").exists()
