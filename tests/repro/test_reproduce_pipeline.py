"""`tether reproduce` of pipeline stage runs and whole pipeline runs, the way users met it: the
work tree edited after `tether repro`, an unseeded stage, a dep folder, called from a subfolder,
every stage restored from the run cache."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import Tether, git, write_files
from tether.api import Project
from tether.hashing import hash_bytes

NOISE = """
stages:
  noise:
    cmd: python3 noise.py
    deps: [noise.py]
    outs: [noise.txt]
  count:
    cmd: python3 count.py
    deps: [count.py]
    outs: [count.txt]
  double:
    cmd: cat count.txt count.txt > double.txt
    deps: [count.txt]
    outs: [double.txt]
  fit:
    cmd: python3 fit.py
    deps: [fit.py, data/raw]
    outs: [model.txt]
    metrics: [fit.json]
"""
NOISE_PY = "import random\nopen('noise.txt', 'w').write(str(random.random()))\n"
COUNT_PY = "open('count.txt', 'w').write('3\\n')\n"
FIT_PY = """import json, os
rows = sorted(os.listdir("data/raw"))
total = sum(int(open(os.path.join("data/raw", r)).read()) for r in rows)
open("model.txt", "w").write(f"{total}\\n")
json.dump({"total": total}, open("fit.json", "w"))
"""


def pipeline_repo(repo: Path, tether: Tether) -> None:
    write_files(
        repo,
        {
            "pipeline.yaml": NOISE,
            "noise.py": NOISE_PY,
            "fit.py": FIT_PY,
            "count.py": COUNT_PY,
            "data/raw/a.txt": "1",
            "data/raw/b.txt": "2",
            "sub/notes.md": "a subfolder\n",
        },
    )
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "pipeline")
    tether("repro")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "results")


def stage_run(project: Project, stage: str) -> str:
    (found,) = project.search_runs(f"tags.stage = '{stage}'")
    return found.id


def test_an_unseeded_stage_is_different(repo: Path, tether: Tether) -> None:
    pipeline_repo(repo, tether)
    with Project.open(repo) as project:
        v = project.reproduce(stage_run(project, "noise"))
    assert v.verdict == "DIFFERENT", v.reason
    (out,) = v.outputs
    assert out.path == "noise.txt" and out.original != out.now


def test_the_reproduction_hashes_its_own_outs_not_the_work_tree(repo: Path, tether: Tether) -> None:
    pipeline_repo(repo, tether)
    write_files(repo, {"count.txt": "999\n"})  # edited by hand after `tether repro`
    with Project.open(repo) as project:
        v = project.reproduce(stage_run(project, "count"))
    assert v.verdict == "REPRODUCED", (v.reason, v.outputs)
    (out,) = v.outputs
    assert out.now == hash_bytes(b"3\n") != hash_bytes(b"999\n")
    assert (repo / "count.txt").read_text() == "999\n"  # the user's file is left alone


def test_a_stage_with_a_dep_folder_reproduces_from_a_subfolder(
    repo: Path, tether: Tether, monkeypatch: pytest.MonkeyPatch
) -> None:
    pipeline_repo(repo, tether)
    monkeypatch.chdir(repo / "sub")
    fit = stage_run(Project.open(repo), "fit")
    out = tether("reproduce", fit).output
    assert "REPRODUCED" in out, out
    monkeypatch.chdir(repo / "data")  # a folder holding a file named like the out
    write_files(repo, {"data/model.txt": "999\n"})
    with Project.open(repo) as project:
        v = project.reproduce(fit)
    assert v.verdict == "REPRODUCED", (v.reason, v.outputs)


def test_a_pipeline_run_restored_from_the_run_cache_is_reproduced(
    repo: Path, tether: Tether
) -> None:
    pipeline_repo(repo, tether)
    (repo / "pipeline.lock").unlink()  # every stage "never ran": all come from the run cache
    assert "run cache" in tether("repro").output
    with Project.open(repo) as project:
        newest = project.search_runs("tags.kind = 'pipeline'", sort="-started")[0]
        assert project.search_runs(f"parent = '{newest.id}'") == []  # nothing ran
        v = project.reproduce(newest.id)
        assert v.verdict == "DIFFERENT", v.reason  # the unseeded stage
        judged = {o.path: o.ok for o in v.outputs}
        assert judged == {
            "count:count.txt": True,
            "double:double.txt": True,
            "fit:model.txt": True,
            "noise:noise.txt": False,
        }
        assert [(m.key, m.ok) for m in v.metrics] == [("fit:total", True)]
        # the mode named as the verdict names the out: `stage:path`
        again = project.reproduce(newest.id, modes={"noise:noise.txt": "none"})
        assert again.verdict == "REPRODUCED", (again.reason, again.outputs)
        gate = f"tags.reproduction_of = '{newest.id}' and tags.verdict = 'REPRODUCED'"
        assert [r.id for r in project.search_runs(gate)] == [again.reproduction]
        fit = project.search_runs("tags.stage = 'fit'", sort="started")[0].id  # the first
        gate = f"tags.reproduction_of = '{fit}' and tags.verdict = 'REPRODUCED'"
        assert len(project.search_runs(gate)) == 2  # by both reproductions of the pipeline


def test_a_pipeline_run_on_data_edited_and_not_added_reproduces_with_those_bytes(
    repo: Path, tether: Tether
) -> None:
    write_files(
        repo,
        {
            "pipeline.yaml": "stages:\n  fit:\n    cmd: python3 fit.py\n"
            "    deps: [fit.py, data/raw]\n    outs: [model.txt]\n",
            "fit.py": FIT_PY.replace('json.dump({"total": total}, open("fit.json", "w"))', ""),
            "data/raw/a.txt": "1",
        },
    )
    tether("add", "data/raw")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "pipeline")
    write_files(repo, {"data/raw/a.txt": "40"})  # edited, not `tether add`ed
    tether("repro")
    with Project.open(repo) as project:
        (pipeline,) = project.search_runs("tags.kind = 'pipeline'")
        v = project.reproduce(pipeline.id)
    assert v.verdict == "REPRODUCED", (v.reason, v.outputs)


def test_an_upstream_out_restored_for_a_stage_is_not_taken_for_code(
    repo: Path, tether: Tether
) -> None:
    pipeline_repo(repo, tether)
    with Project.open(repo) as project:
        double = stage_run(project, "double")
        v = project.reproduce(double)
        assert v.verdict == "REPRODUCED", (v.reason, v.outputs)
        code = project.diff_runs(double, v.reproduction or "").code
    assert code.same_patch and code.dirty_b == []  # count.txt is data, restored


def test_a_reproductions_runs_are_named_so_and_a_stage_name_still_picks_the_original(
    repo: Path, tether: Tether
) -> None:
    pipeline_repo(repo, tether)
    with Project.open(repo) as project:
        (pipeline,) = project.search_runs("tags.kind = 'pipeline'")
        fit = stage_run(project, "fit")
        whole = project.reproduce(pipeline.id)
        assert whole.reproduction is not None
        again = project.get_run(whole.reproduction)
        assert again["name"] == "repro-reproduction"
        assert again["tags"]["reproduction_of"] == pipeline.id
        kids = project.search_runs(f"parent = '{whole.reproduction}'")
        assert sorted(k.name for k in kids) == [
            "count-reproduction",
            "double-reproduction",
            "fit-reproduction",
            "noise-reproduction",
        ]
        assert project.pick_run("fit").id == fit  # not the reproduction's run of fit
        assert project.pick_run("repro").id == pipeline.id
        alone = project.reproduce(fit)
        assert alone.verdict == "REPRODUCED", (alone.reason, alone.outputs)
        rerun = project.get_run(alone.reproduction or "")
        assert rerun["name"] == "fit-reproduction"
        parent = project.get_run(rerun["parent"])
        assert parent["name"] == "repro-reproduction"
        assert parent["tags"]["reproduction_of"] == fit
        assert project.pick_run("fit").id == fit


def test_a_stage_restored_from_the_cache_is_not_blamed_on_code_outside_its_deps(
    repo: Path, tether: Tether
) -> None:
    pipeline_repo(repo, tether)  # the lock committed
    write_files(repo, {"NOTES.md": "unrelated\n"})
    git(repo, "add", "NOTES.md")
    git(repo, "commit", "-qm", "notes")
    write_files(repo, {"noise.txt": "hand\n"})
    assert "restored" in tether("repro").output
    with Project.open(repo) as project:
        newest = project.search_runs("tags.kind = 'pipeline'", sort="-started")[0]
        noise = stage_run(project, "noise")  # the only run of it, two commits back
        v = project.reproduce(newest.id)
    assert v.verdict == "DIFFERENT", v.reason  # the stage is unseeded
    assert v.explanation is not None
    assert not [c for c in v.explanation.causes if c.startswith("code")], v.explanation.causes
    assert any("outside the stage's deps" in n for n in v.explanation.notes)
    assert f"restored its outs from the cache, made by stage run {noise}" in v.reason
    assert "same command, deps and params" in v.reason
    shown = tether("reproduce", newest.id, expect=1).output
    assert "code: " not in shown and "look for nondeterminism" in shown
