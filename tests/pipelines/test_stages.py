"""Issue 11's pipeline items, as a user meets them: a dep inside its own out, `--force` and the run
cache, metrics files between stages, stale lock entries, restored outs downstream, `${item}` in a
flow list."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.conftest import BIN, Tether, write_files
from tether.api import Project
from tether.hashing import hash_bytes
from tether.pipelines.spec import PipelineError

TWO = """
stages:
  prepare:
    cmd: tr a-z A-Z < raw.txt > clean.txt
    deps: [raw.txt]
    outs: [clean.txt]
  count:
    cmd: wc -c < clean.txt > count.txt
    deps: [clean.txt]
    outs: [count.txt]
"""


def _lock(repo: Path) -> dict[str, dict[str, object]]:
    return dict(yaml.safe_load((repo / "pipeline.lock").read_text())["stages"])


@pytest.mark.parametrize(
    ("stage", "named"),
    [
        (
            "cmd: cp data/raw.csv data/clean.csv\n    deps: [data/raw.csv]\n    outs: [data/]",
            "data",
        ),
        ("cmd: touch data\n    deps: [data]\n    outs: [data]", "data"),
        ("cmd: x\n    deps: [data]\n    metrics: [data/m.json]", "data/m.json"),
    ],
)
def test_a_stage_whose_out_holds_its_own_dep_is_refused_and_the_dep_kept(
    project: Project, repo: Path, tether: Tether, stage: str, named: str
) -> None:
    write_files(
        repo,
        {"data/raw.csv": "the only copy\n", "pipeline.yaml": f"stages:\n  prep:\n    {stage}\n"},
    )
    with pytest.raises(PipelineError, match="prep") as info:
        project.repro()
    assert "data" in str(info.value) and named in str(info.value)
    out = tether("repro", expect=4).output
    assert "prep" in out and named in out
    assert (repo / "data/raw.csv").read_text() == "the only copy\n"


def test_force_runs_the_stages_and_no_run_cache_skips_the_cache(
    project: Project, repo: Path, tether: Tether
) -> None:
    write_files(repo, {"pipeline.yaml": TWO, "raw.txt": "hello\n"})
    first = project.repro()
    runs = {r.name: r.run for r in first.results}
    forced = tether("repro", "--force").output
    assert "run cache" not in forced
    again = {r.name: r.run for r in project.repro(force=True).results}
    assert all(again[n] != runs[n] for n in runs)  # new runs, not the cached ones
    # a state seen before: the run cache restores it, unless told not to
    write_files(repo, {"raw.txt": "other\n"})
    project.repro()
    write_files(repo, {"raw.txt": "hello\n"})
    out = tether("repro", "--no-run-cache").output
    assert "run cache" not in out and "running" in out
    assert (repo / "count.txt").read_text().strip() == "6"


METRICS = """
stages:
  evaluate:
    cmd: sh evaluate.sh
    deps: [score.txt, evaluate.sh]
    metrics: [metrics.json]
  report:
    cmd: cat metrics.json > report.txt
    deps: [metrics.json]
    outs: [report.txt]
"""


def test_a_metrics_file_is_an_out_for_the_graph_staleness_and_regeneration(
    project: Project, repo: Path
) -> None:
    evaluate = 'echo "{\\"acc\\": $(cat score.txt)}" > metrics.json\n'
    write_files(repo, {"pipeline.yaml": METRICS, "score.txt": "1\n", "evaluate.sh": evaluate})
    first = project.repro()  # on a fresh repository: evaluate runs before report
    assert first.ok and [r.name for r in first.results] == ["evaluate", "report"]
    assert (repo / "report.txt").read_text() == '{"acc": 1}\n'
    write_files(repo, {"score.txt": "2\n"})
    second = project.repro()
    assert {r.name: r.outcome for r in second.results} == {"evaluate": "ran", "report": "ran"}
    assert (repo / "report.txt").read_text() == '{"acc": 2}\n'
    (repo / "metrics.json").unlink()
    plan = project.repro(dry_run=True).plan
    assert {sp.stage.name: sp.action for sp in plan.stages} == {
        "evaluate": "restore",
        "report": "none",
    }
    assert project.repro().ok
    assert (repo / "metrics.json").read_text() == '{"acc": 2}\n'
    assert project.repro().plan.todo == []


def test_stale_lock_entries_are_dropped_and_named(
    project: Project, repo: Path, tether: Tether
) -> None:
    matrix = (
        "stages:\n  train:\n    matrix: {lr: [1, 2, 3]}\n"
        "    cmd: echo ${item.lr} > m${item.lr}.txt\n    outs: [m${item.lr}.txt]\n"
    )
    write_files(repo, {"pipeline.yaml": matrix})
    project.repro()
    assert set(_lock(repo)) == {"train@0", "train@1", "train@2"}
    write_files(repo, {"pipeline.yaml": matrix.replace("[1, 2, 3]", "[1, 2]")})
    assert "would drop" in tether("repro", "--dry-run").output
    assert "train@2" in _lock(repo)  # a dry run changes nothing
    out = tether("repro").output
    assert "dropped" in out and "train@2" in out
    assert set(_lock(repo)) == {"train@0", "train@1"}
    # a renamed stage: its old entry goes with the run that writes the lock
    write_files(repo, {"pipeline.yaml": matrix.replace("  train:", "  fit:")})
    result = project.repro()
    assert result.dropped == ["train@0", "train@1"]
    assert set(_lock(repo)) == {"fit@0", "fit@1", "fit@2"}


def test_a_stage_downstream_of_a_restored_out_is_up_to_date(project: Project, repo: Path) -> None:
    write_files(repo, {"pipeline.yaml": TWO, "raw.txt": "hello\n"})
    project.repro()
    (repo / "clean.txt").unlink()
    plan = project.repro(dry_run=True).plan
    assert {sp.stage.name: (sp.action, sp.reasons) for sp in plan.stages} == {
        "prepare": ("restore", ["out clean.txt is missing"]),
        "count": ("none", []),
    }
    result = project.repro()
    assert [(r.name, r.outcome) for r in result.results] == [("prepare", "restored")]
    assert (repo / "clean.txt").read_text() == "HELLO\n"


def test_a_dep_inside_a_restored_out_folder_is_judged_by_the_restored_bytes(
    project: Project, repo: Path
) -> None:
    pipeline = """
stages:
  split:
    cmd: mkdir -p parts/a && cp raw.txt parts/a/x.txt && cp raw.txt parts/y.txt
    deps: [raw.txt]
    outs: [parts]
  use_folder:
    cmd: ls parts/a > listing.txt
    deps: [parts/a]
    outs: [listing.txt]
  use_file:
    cmd: cp parts/y.txt copy.txt
    deps: [parts/y.txt]
    outs: [copy.txt]
"""
    write_files(repo, {"pipeline.yaml": pipeline, "raw.txt": "hi\n"})
    project.repro()
    write_files(repo, {"parts/a/x.txt": "edited by hand\n"})
    plan = project.repro(dry_run=True).plan
    assert {sp.stage.name: sp.action for sp in plan.stages} == {
        "split": "restore",
        "use_file": "none",
        "use_folder": "none",
    }


@pytest.mark.parametrize(
    ("stage", "message"),
    [
        ("foreach: [a, b]\n    cmd: cat ${item}\n    deps: [in/${item} extra]", "line 7"),
        ('matrix: {x: [1]}\n    cmd: [echo, "${item.x}"]', "one shell command"),
    ],
)
def test_item_in_a_flow_list_that_cannot_work_says_which_stage_and_line(
    project: Project, repo: Path, tether: Tether, stage: str, message: str
) -> None:
    write_files(repo, {"pipeline.yaml": f"stages:\n  first:\n    cmd: x\n  train:\n    {stage}\n"})
    with pytest.raises(PipelineError, match=message) as info:
        project.repro()
    assert "train" in str(info.value)
    assert "Traceback" not in tether("repro", expect=4).output


def test_item_unquoted_in_flow_lists_works(project: Project, repo: Path) -> None:
    pipeline = (
        "stages:\n  show:\n    foreach: [a, b]\n    cmd: cat in/${item} > out-${item}\n"
        "    deps: [in/${item}]\n    outs: [{path: out-${item}, compare: exact}]\n"
        "  train:\n    matrix: {lr: [1, 2]}\n    cmd: echo ${item.lr} > m${item.lr}.txt\n"
        "    outs: [m${item.lr}.txt]\n"
    )
    write_files(repo, {"pipeline.yaml": pipeline, "in/a": "A", "in/b": "B"})
    assert project.repro().ok
    assert (repo / "out-b").read_text() == "B" and (repo / "m2.txt").read_text() == "2\n"
    assert set(_lock(repo)["show@0"]["deps"]) == {"in/a"}  # type: ignore[arg-type]


def test_an_edit_a_repro_replaced_outlives_gc(project: Project, repo: Path, tether: Tether) -> None:
    """ "kept the changed out in the cache" stays true after `tether gc`: whether the stage's out
    was restored or the stage ran again."""
    write_files(repo, {"pipeline.yaml": TWO, "raw.txt": "hello\n"})
    project.repro()
    write_files(repo, {"count.txt": "my own count\n"})  # restored over
    write_files(repo, {"clean.txt": "edited\n"})
    write_files(repo, {"raw.txt": "changed\n"})  # and prepare runs again over an edit
    out = tether("repro").output
    assert out.count("kept the changed") == 2
    tether("gc")
    store = Project.open(repo).ws.store  # a fresh look at the cache, as the next command has
    assert store.has(hash_bytes(b"my own count\n")) and store.has(hash_bytes(b"edited\n"))


def test_a_stage_whose_upstream_made_the_same_bytes_again_does_not_run(
    project: Project, repo: Path
) -> None:
    """The upstream's command changed but wrote what it wrote before (then changed back: the
    run cache restores it): its downstream reads what it last ran with, so it stays."""
    write_files(repo, {"pipeline.yaml": TWO, "raw.txt": "hello\n"})
    project.repro()
    count_run = _lock(repo)["count"]["run"]
    write_files(repo, {"pipeline.yaml": TWO.replace("tr a-z A-Z", "tr [:lower:] [:upper:]")})
    second = project.repro()
    assert [(r.name, r.outcome) for r in second.results] == [
        ("prepare", "ran"),
        ("count", "uptodate"),
    ]
    write_files(repo, {"pipeline.yaml": TWO})
    third = project.repro()  # the plan knows what the cache restores: count is not even stale
    assert [(r.name, r.outcome) for r in third.results] == [("prepare", "cached")]
    assert _lock(repo)["count"]["run"] == count_run
    assert project.repro().plan.todo == []


def test_a_lock_written_before_metrics_were_locked_still_restores_outs(
    project: Project, repo: Path
) -> None:
    pipeline = METRICS.replace("metrics: [metrics.json]", "metrics: [metrics.json]\n    outs: [o]")
    pipeline = pipeline.replace("cmd: sh evaluate.sh", "cmd: sh evaluate.sh && echo out > o")
    evaluate = 'echo "{\\"acc\\": $(cat score.txt)}" > metrics.json\n'
    write_files(repo, {"pipeline.yaml": pipeline, "score.txt": "1\n", "evaluate.sh": evaluate})
    project.repro()
    text = (repo / "pipeline.lock").read_text()
    old = yaml.safe_load(text)
    for entry in old["stages"].values():
        entry.pop("metrics", None)  # as an older Tether wrote it
    (repo / "pipeline.lock").write_text(yaml.safe_dump(old))
    assert project.repro(dry_run=True).plan.todo == []  # no new reason to run
    (repo / "o").unlink()
    plan = project.repro(dry_run=True).plan
    assert [(sp.stage.name, sp.action) for sp in plan.todo] == [("evaluate", "restore")]


def test_a_dry_run_says_what_the_run_cache_will_restore(
    project: Project, repo: Path, tether: Tether
) -> None:
    write_files(repo, {"pipeline.yaml": TWO, "raw.txt": "hello\n"})
    project.repro()
    write_files(repo, {"raw.txt": "other\n"})
    project.repro()
    write_files(repo, {"raw.txt": "hello\n"})  # a state the run cache has seen
    dry = tether("repro", "--dry-run").output
    assert "prepare: would restore from the run cache: dep raw.txt changed" in dry
    assert "count: would restore from the run cache" in dry
    assert "would run" not in tether("repro", "--dry-run").output
    plain = tether("repro", "--dry-run", "--no-run-cache").output
    assert "prepare: would run" in plain and "count: would run" in plain
    result = project.repro()
    assert [(r.name, r.outcome) for r in result.results] == [
        ("prepare", "cached"),
        ("count", "cached"),
    ]


def test_a_gc_while_a_stage_runs_keeps_what_the_stage_reads(project: Project, repo: Path) -> None:
    """The stage's deps are stored before it runs and recorded when it ends: a gc in between
    (here: run by the stage itself) must not take them."""
    gc = f"{BIN / 'tether'} gc"
    pipeline = f"stages:\n  a:\n    cmd: {gc} && cp raw.txt out.txt\n    deps: [raw.txt]\n"
    write_files(repo, {"pipeline.yaml": pipeline + "    outs: [out.txt]\n", "raw.txt": "raw\n"})
    assert project.repro().ok
    again = Project.open(repo)
    assert again.ws.store.has(hash_bytes(b"raw\n")) and again.fsck().ok


def test_a_metrics_file_inside_its_stages_out_folder_is_fine(project: Project, repo: Path) -> None:
    pipeline = (
        "stages:\n  fit:\n    cmd: mkdir -p r && echo w > r/w && echo '{\"a\":1}' > r/m.json\n"
        "    outs: [r]\n    metrics: [r/m.json]\n"
        "  use:\n    cmd: cp r/m.json copy.json\n    deps: [r/m.json]\n    outs: [copy.json]\n"
    )
    write_files(repo, {"pipeline.yaml": pipeline})
    assert [r.name for r in project.repro().results] == ["fit", "use"]
    (repo / "r/m.json").unlink()
    assert [(sp.stage.name, sp.action) for sp in project.repro(dry_run=True).plan.todo] == [
        ("fit", "restore")
    ]
    assert project.repro().ok and (repo / "r/m.json").read_text() == '{"a":1}\n'


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ("[NV]", "env must be a mapping"),
        ("{NV: null}", "env NV must be text, a number or a boolean"),
        ("{NV: [1, 2]}", "env NV must be text, a number or a boolean"),
        ('{"A=B": 1}', "'A=B' is not an environment variable name"),
        ('{"": 1}', "'' is not an environment variable name"),
    ],
)
def test_a_stage_env_that_cannot_be_set_is_refused_before_anything_runs(
    project: Project, repo: Path, tether: Tether, env: str, message: str
) -> None:
    pipeline = f"stages:\n  s:\n    cmd: echo $NV > o.txt\n    env: {env}\n    outs: [o.txt]\n"
    write_files(repo, {"pipeline.yaml": pipeline})
    out = tether("repro", expect=4).output
    assert message in out and "Traceback" not in out
    assert not (repo / "o.txt").exists()


def test_a_stage_env_is_recorded_so_diff_names_its_change(
    project: Project, repo: Path, tether: Tether
) -> None:
    pipeline = "stages:\n  s:\n    cmd: echo $NV > o.txt\n    env: {NV: 3}\n    outs: [o.txt]\n"
    write_files(repo, {"pipeline.yaml": pipeline})
    tether("repro")
    write_files(repo, {"pipeline.yaml": pipeline.replace("NV: 3", "NV: 4")})
    tether("repro")
    assert project.get_run("s")["params"]["env.NV"] == "4"
    out = tether("diff", "s~1", "s").output
    assert "env.NV" in out and "look for nondeterminism" not in out
