"""`tether reproduce` as a user relies on it: REPRODUCED, DIFFERENT with the why, FAILED with
the reason, and the exit codes CI reads."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import BIN, Tether, git, write_files
from tether.api import Project

TRAIN = """
import random, sys, tether
seed = int(sys.argv[sys.argv.index("--seed") + 1])
tether.seed(seed)
rows = open("data/rows.txt").read().split()
tether.log_input("data/rows.txt")
score = sum(int(r) for r in rows) / len(rows) + random.random() / 10
open("model.txt", "w").write(f"{score:.6f}\\n")
tether.log_output("model.txt")
tether.log_metric("score", score)
"""


def trained(repo: Path, *extra: str, seed: str = "1") -> str:
    argv = ["run", "-n", f"train{seed}", "--", sys.executable, "train.py", "--seed", seed, *extra]
    proc = subprocess.run(
        [str(BIN / "tether"), *argv], cwd=repo, capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr
    return f"train{seed}"


def setup(repo: Path) -> None:
    write_files(repo, {"train.py": TRAIN, "data/rows.txt": "1 2 3 4\n"})
    with open(repo / ".gitignore", "a") as f:
        f.write("model.txt\n")
    with Project.open(repo) as p:
        p.add(["data"])
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "train")


def test_a_seeded_run_is_reproduced(repo: Path, tether: Tether) -> None:
    setup(repo)
    name = trained(repo)
    write_files(repo, {"data/rows.txt": "9 9 9\n"})  # the data moved on since
    with Project.open(repo) as project:
        v = project.reproduce(name)
    assert v.verdict == "REPRODUCED", v.reason
    assert [o.path for o in v.outputs] == ["model.txt"] and v.outputs[0].ok
    assert v.metrics[0].key == "score" and v.metrics[0].ok
    with Project.open(repo) as project:
        again = project.get_run(v.reproduction or "")
        assert again["tags"]["reproduction_of"] == v.run
    assert v.worktree is None  # removed afterwards (--keep keeps it)
    out = tether("reproduce", name, expect=0).output
    assert "REPRODUCED" in out


def test_an_unseeded_change_is_different_and_explained(repo: Path, tether: Tether) -> None:
    setup(repo)
    write_files(
        repo, {"train.py": TRAIN.replace("tether.seed(seed)", "tether.seed(seed); random.seed()")}
    )
    name = trained(repo)  # dirty: the unseeded version is in the recorded diff
    with Project.open(repo) as project:
        v = project.reproduce(name)
    assert v.verdict == "DIFFERENT"
    assert not v.outputs[0].ok and not v.metrics[0].ok
    out = tether(
        "reproduce", name, "--tolerance", "score=0.5", "--compare", "model.txt=metrics", expect=0
    ).output
    assert "REPRODUCED" in out


def test_failures_name_their_reason(repo: Path, tether: Tether) -> None:
    setup(repo)
    name = trained(repo)
    with Project.open(repo) as project:
        rec = project.get_run(name)
        # the inputs gone from every cache (no remote configured)
        project.ws.store.drop({rec["data"]["inputs"]["data/rows.txt"]})
        v = project.reproduce(name)
        assert v.verdict == "FAILED" and "missing" in v.reason
    out = tether("reproduce", name, expect=3).output
    assert "FAILED" in out


def test_a_commit_that_no_longer_exists(repo: Path, tmp_path: Path) -> None:
    setup(repo)
    write_files(repo, {"extra.txt": "x"})
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "extra")
    name = trained(repo)
    git(repo, "reset", "-q", "--hard", "HEAD~1")
    git(repo, "reflog", "expire", "--expire=now", "--all")
    git(repo, "gc", "-q", "--prune=now")
    with Project.open(repo) as project:
        v = project.reproduce(name)
    assert v.verdict == "FAILED" and "no longer exists" in v.reason


def test_a_diff_that_no_longer_applies(repo: Path) -> None:
    setup(repo)
    write_files(repo, {"train.py": TRAIN + "# local tweak\n"})
    name = trained(repo)
    with Project.open(repo) as project:
        rec = project.get_run(name)
        bogus = project.ws.store.put_bytes(
            b"diff --git a/nope b/nope\n--- a/nope\n+++ b/nope\n@@ -1 +1 @@\n-x\n+y\n"
        )
        rec["code"]["diff"] = bogus
        from tether.repro import reproduce as r

        try:
            r._worktree(project.ws, rec)
            raise AssertionError("a patch that does not apply was applied")
        except r.Failed as exc:
            assert "no longer applies" in str(exc)


def test_check_determinism_finds_an_unseeded_generator(repo: Path, tether: Tether) -> None:
    setup(repo)
    seeded = tether("run", "--check-determinism", "--", sys.executable, "train.py", "--seed", "3")
    assert "deterministic: runs" in seeded.output
    write_files(repo, {"train.py": TRAIN.replace("tether.seed(seed)", "random.seed()")})
    loose = tether(
        "run", "--check-determinism", "--", sys.executable, "train.py", "--seed", "3", expect=1
    )
    assert "NOT deterministic" in loose.output
    assert "output model.txt" in loose.output and "metric score" in loose.output


STAGES = """
stages:
  prep:
    cmd: python prep.py
    deps: [prep.py, data/rows.txt]
    outs: [clean.txt]
  fit:
    cmd: python fit.py
    deps: [fit.py, clean.txt]
    params: [fit.scale]
    outs: [{path: model.txt, compare: metrics}]
    metrics: [fit.json]
"""
PREP = "open('clean.txt', 'w').write(open('data/rows.txt').read().replace(' ', ','))\n"
FIT = """import json, yaml
scale = yaml.safe_load(open("params.yaml"))["fit"]["scale"]
total = sum(int(x) for x in open("clean.txt").read().strip().split(",")) * scale
open("model.txt", "w").write(f"{total}\\n")
json.dump({"total": total}, open("fit.json", "w"))
"""


def test_a_pipeline_stage_run_is_reproduced(repo: Path, tether: Tether) -> None:
    setup(repo)
    write_files(repo, {"pipeline.yaml": STAGES, "prep.py": PREP, "fit.py": FIT})
    write_files(repo, {"params.yaml": "fit:\n  scale: 2\n"})
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "pipeline")
    tether("repro")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "results")
    with Project.open(repo) as project:
        (fit,) = project.search_runs("tags.stage = 'fit'")
        write_files(repo, {"params.yaml": "fit:\n  scale: 3\n"})  # the project moved on
        v = project.reproduce(fit.id)
        assert v.verdict == "REPRODUCED", (v.reason, v.explanation)
        again = project.get_run(v.reproduction or "")
        assert again["tags"]["reproduction_of"] == fit.id and again["params"]["fit.scale"] == "2"
        assert again["metrics"]["total"]["last"] == 20.0


def test_the_run_cache_restores_metrics_files_too(repo: Path, tether: Tether) -> None:
    setup(repo)
    write_files(repo, {"pipeline.yaml": STAGES, "prep.py": PREP, "fit.py": FIT})
    write_files(repo, {"params.yaml": "fit:\n  scale: 2\n"})
    tether("repro")
    write_files(repo, {"params.yaml": "fit:\n  scale: 5\n"})
    tether("repro")
    write_files(repo, {"params.yaml": "fit:\n  scale: 2\n"})
    out = tether("repro").output
    assert "run cache" in out
    assert (repo / "model.txt").read_text() == "20\n"
    assert '"total": 20' in (repo / "fit.json").read_text()


def test_a_whole_pipeline_run_is_reproduced(repo: Path, tether: Tether) -> None:
    setup(repo)
    write_files(repo, {"pipeline.yaml": STAGES, "prep.py": PREP, "fit.py": FIT})
    write_files(repo, {"params.yaml": "fit:\n  scale: 2\n"})
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "pipeline")
    tether("repro")
    with Project.open(repo) as project:
        (pipeline,) = project.search_runs("tags.kind = 'pipeline'")
        v = project.reproduce(pipeline.id)
    assert v.verdict == "REPRODUCED", v.reason
    assert {o.path for o in v.outputs} == {"prep:clean.txt", "fit:model.txt"}
    assert [m.key for m in v.metrics] == ["fit:total"]


def test_nothing_recorded_means_nothing_to_compare(repo: Path, tether: Tether) -> None:
    setup(repo)
    write_files(repo, {"quiet.py": "print('hi')\n"})
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "quiet")
    tether("run", "-n", "quiet", "--", sys.executable, "quiet.py")
    with Project.open(repo) as project:
        v = project.reproduce("quiet")
    assert v.verdict == "FAILED" and "nothing to compare" in v.reason
