"""Tracing real runs upstream and downstream: paths, ids, runs, pipelines, folders, cycles."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import write_files
from tests.lineage.conftest import Chain
from tether.api import Project
from tether.errors import UsageError
from tether.hashing import hash_bytes
from tether.lineage import LineageGraph, resolve_target, trace
from tether.lineage.graph import object_key, run_key


def related(graph: LineageGraph, relation: str) -> set[tuple[str, str]]:
    return {(e.source, e.target) for e in graph.edges if e.relation == relation}


def test_upstream_of_a_file_reaches_every_run_input_and_the_four_pillars(
    project: Project, chain: Chain
) -> None:
    graph = trace(project.ws, "model.pkl")
    assert graph.root == object_key(chain.model) and graph.direction == "up"
    assert related(graph, "generated_by") == {
        (object_key(chain.model), run_key(chain.train)),
        (object_key(chain.clean), run_key(chain.prep)),
    }
    assert related(graph, "used") == {
        (run_key(chain.train), object_key(chain.clean)),
        (run_key(chain.prep), object_key(chain.raw)),
    }
    assert graph.node(object_key(chain.raw)).paths == ("raw.csv",)
    prep = graph.node(run_key(chain.prep))
    assert prep.attr("name") == "prep" and prep.attr("status") == "finished"
    assert prep.attr("experiment") == "demo"
    # code, environment and params of each run
    (commit,) = [t for s, t in related(graph, "ran_code") if s == run_key(chain.prep)]
    record = project.get_run(chain.prep)
    assert graph.node(commit).attr("commit") == record["code"]["commit"]
    assert graph.node(commit).attr("diff") == (record["code"]["diff"] or "")
    (env,) = [t for s, t in related(graph, "ran_in") if s == run_key(chain.prep)]
    assert env == f"env:{record['env']}"
    assert graph.node(env).attr("python").count(".") == 2
    params = graph.node(f"params:{chain.prep}")
    assert params.attr("param.rows") == "2" and params.attr("seeds") == "7"
    assert "rows=2" in params.label and "seed=7" in params.label
    assert not graph.truncated and graph.other_versions == ()


def test_depth_stops_the_walk_and_says_there_is_more(project: Project, chain: Chain) -> None:
    graph = trace(project.ws, "model.pkl", depth=1)
    runs = {n.attr("name") for n in graph.of_kind("run")}
    assert runs == {"train"} and graph.truncated
    assert object_key(chain.clean) in {n.key for n in graph.nodes}  # its input, not its maker
    assert not trace(project.ws, "model.pkl", depth=2).truncated


def test_downstream_of_raw_data_reaches_the_model(project: Project, chain: Chain) -> None:
    graph = trace(project.ws, "raw.csv", direction="down")
    assert related(graph, "used") == {
        (run_key(chain.prep), object_key(chain.raw)),
        (run_key(chain.train), object_key(chain.clean)),
    }
    assert related(graph, "generated_by") == {
        (object_key(chain.clean), run_key(chain.prep)),
        (object_key(chain.model), run_key(chain.train)),
    }
    assert not graph.of_kind("commit") and not graph.of_kind("env")  # upstream context only


def test_a_target_may_be_an_object_id_a_prefix_or_a_run(project: Project, chain: Chain) -> None:
    by_path = trace(project.ws, "clean.csv")
    by_id = trace(project.ws, chain.clean)
    by_prefix = trace(project.ws, chain.clean[:20])
    assert by_path.edges == by_id.edges == by_prefix.edges
    by_run = trace(project.ws, "train")  # a name; ids and id prefixes resolve as in `runs show`
    assert by_run.root == run_key(chain.train)
    assert {n.attr("name") for n in by_run.of_kind("run")} == {"train", "prep"}
    down = trace(project.ws, chain.prep[:13], direction="down")
    assert related(down, "generated_by") >= {(object_key(chain.model), run_key(chain.train))}


def test_a_changed_file_names_the_versions_runs_knew(
    project: Project, chain: Chain, repo: Path
) -> None:
    write_files(repo, {"clean.csv": "edited by hand\n"})
    graph = trace(project.ws, "clean.csv")
    assert graph.root == object_key(hash_bytes(b"edited by hand\n"))
    assert graph.edges == () and graph.other_versions == (chain.clean,)


def test_targets_that_are_not_there_get_a_clear_error(project: Project, chain: Chain) -> None:
    with pytest.raises(UsageError, match=r"model version.*no such model is registered"):
        resolve_target(project.ws, "sentiment@3")
    with pytest.raises(UsageError, match="not a path here, an object id"):
        resolve_target(project.ws, "no-such-thing")
    with pytest.raises(UsageError, match="no run logged an object"):
        resolve_target(project.ws, "blake3:0000ffff")
    with pytest.raises(UsageError, match="depth"):
        trace(project.ws, "model.pkl", depth=0)


def test_shared_inputs_and_cycles_end_the_walk(project: Project, repo: Path) -> None:
    write_files(repo, {"a.txt": "a", "b.txt": "b"})
    for name in ("one", "two"):  # two runs read a.txt and write b.txt
        with project.start_run(name=name) as run:
            run.log_input("a.txt")
            run.log_output("b.txt")
    with project.start_run(name="back") as run:  # and one turns b.txt back into a.txt
        run.log_input("b.txt")
        run.log_output("a.txt")
    for direction in ("up", "down"):
        graph = trace(project.ws, "a.txt", direction=direction)
        assert {n.attr("name") for n in graph.of_kind("run")} == {"one", "two", "back"}
        assert len(graph.of_kind("object")) == 2
        assert len(graph.edges) == len(set(graph.edges))


def test_a_file_inside_a_folder_a_run_wrote(project: Project, repo: Path) -> None:
    write_files(repo, {"data/train.csv": "x\n", "data/test.csv": "y\n"})
    with project.start_run(name="make-data") as make:
        make.log_output("data")
    with project.start_run(name="fit") as fit:
        fit.log_input("data/train.csv")
    up = trace(project.ws, "data/train.csv")
    folder = project.get_run(make.id)["data"]["outputs"]["data"]
    assert related(up, "contained_in") == {(object_key(hash_bytes(b"x\n")), object_key(folder))}
    assert (object_key(folder), run_key(make.id)) in related(up, "generated_by")
    down = trace(project.ws, "data", direction="down")
    assert (run_key(fit.id), object_key(hash_bytes(b"x\n"))) in related(down, "used")


def test_a_pipeline_run_holds_its_stages(project: Project, pipeline_run: str) -> None:
    count = project.get_run("count")["id"]
    prepare = project.get_run("prepare")["id"]
    graph = trace(project.ws, "count.txt")
    assert related(graph, "part_of") == {
        (run_key(count), run_key(pipeline_run)),
        (run_key(prepare), run_key(pipeline_run)),
    }
    names = {n.attr("name") for n in graph.of_kind("run")}
    assert names == {"count", "prepare", "repro"}
    raw = object_key(hash_bytes(b"hello\n"))
    assert (run_key(prepare), raw) in related(graph, "used")
    # the pipeline run as the target: its stages' inputs are its inputs
    whole = trace(project.ws, pipeline_run)
    assert (run_key(prepare), raw) in related(whole, "used")
    assert {s for s, _ in related(whole, "part_of")} == {run_key(count), run_key(prepare)}
    down = trace(project.ws, "raw.txt", direction="down")
    assert (object_key(hash_bytes(b"6\n")), run_key(count)) in related(down, "generated_by")
