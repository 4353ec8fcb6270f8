"""`executor: ray`: stages as Ray tasks on a local Ray instance, in working folders outside the
repository, with deps fetched from the remote by id and outs pushed back."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import REQUIRE_SERVICES, write_files
from tether.api import Project
from tether.errors import UsageError

PIPELINE = """executor: ray
stages:
  upper:
    cmd: mkdir -p out && tr a-z A-Z < data/words.txt > out/upper.txt && pwd > out/where.txt
    deps: [data/words.txt]
    outs: [out]
    resources: {cpu: 1}
  count:
    cmd: wc -l < out/upper.txt | tr -d ' ' > count.txt && cp count.txt count.json
    deps: [out]
    outs: [count.txt]
    metrics: [count.json]
"""


@pytest.fixture(scope="module")
def ray_instance() -> Iterator[None]:
    try:
        import ray
    except ImportError:
        if REQUIRE_SERVICES:
            pytest.fail("ray is not installed (pip install 'tether-ml[ray]')")
        pytest.skip("ray is not installed: the Ray executor tests are skipped")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def test_stages_run_on_ray_workers_outside_the_repository(
    ray_instance: None, project: Project, repo: Path, tmp_path: Path
) -> None:
    write_files(repo, {"pipeline.yaml": PIPELINE, "data/words.txt": "alpha\nbeta\n"})
    project.add_remote("origin", str(tmp_path / "remote"))
    result = project.repro()
    assert result.ok, [(r.name, r.detail) for r in result.results]
    assert (repo / "out/upper.txt").read_text() == "ALPHA\nBETA\n"
    assert (repo / "count.txt").read_text() == "2\n"
    where = (repo / "out/where.txt").read_text().strip()
    assert not where.startswith(str(repo)) and "tether-ray-" in where  # a scratch folder
    stage = project.get_run("count")
    assert stage["data"]["outputs"]["count.txt"] and stage["parent"] == result.run
    assert project.repro().plan.todo == []  # the same lock as a local run
    lock = (repo / "pipeline.lock").read_text()
    remote_objects = {p.name for p in (tmp_path / "remote").rglob("*") if p.is_file()}
    assert remote_objects and "upper" in lock  # outs travelled through the remote


def test_without_a_remote_ray_says_what_to_do(
    ray_instance: None, project: Project, repo: Path
) -> None:
    write_files(repo, {"pipeline.yaml": PIPELINE, "data/words.txt": "alpha\n"})
    with pytest.raises(UsageError, match="tether remote add"):
        project.repro()
    assert project.search_runs() == []  # nothing was started


def test_a_worker_keeps_symlinks_in_outs_as_the_work_tree_does(
    project: Project, repo: Path, tmp_path: Path
) -> None:
    """What a Ray worker stores for an out folder has the id `tether add` gives it here: files,
    exec bits, nested folders and in-folder symlinks (without Ray: the worker's own function)."""
    from tether.objects.store import ObjectStore
    from tether.pipelines.ray_executor import _store
    from tether.workspace.add import store_path

    for root in (repo, tmp_path / "worker"):
        write_files(root, {"out/model.bin": "weights", "out/sub/run.sh": "echo hi"})
        (root / "out/sub/run.sh").chmod(0o755)
        (root / "out/latest.bin").symlink_to("model.bin")
        (root / "out/sub/up").symlink_to("../model.bin")
    cache = ObjectStore(tmp_path / "worker-cache")
    cache.create()
    oid = _store(cache, tmp_path / "worker" / "out")
    assert oid == store_path(project.ws, "out")
    assert {e.path: e.target for e in cache.load_tree(oid).entries} == {
        "latest.bin": "model.bin",
        "model.bin": None,
        "sub/run.sh": None,
        "sub/up": "../model.bin",
    }
