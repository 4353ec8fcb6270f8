from pathlib import Path

from tests.conftest import git, write_files
from tether.api import Project
from tether.hashing import hash_bytes


def _commit(repo: Path) -> None:
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "c")


def test_gc_keeps_pointers_and_refs_and_drops_the_rest(repo: Path, project: Project) -> None:
    write_files(repo, {"data/a": "old"})
    project.add(["data"])
    _commit(repo)
    write_files(repo, {"data/a": "new"})
    project.add(["data"])
    record = project.ws.store.put_bytes(b"kept alive by a ref")
    project.ws.refs.set("runs/r1", [record])

    dry = project.gc(dry_run=True)
    assert dry.removed == 2  # the old file and the old manifest
    assert project.ws.store.has(hash_bytes(b"old"))

    kept_by_history = project.gc(all_commits=True)
    assert kept_by_history.removed == 0

    result = project.gc()
    assert result.removed == 2
    store = project.ws.store
    assert not store.has(hash_bytes(b"old"))
    assert store.has(hash_bytes(b"new")) and store.has(record)
    assert project.status()[0].state == "clean"


def test_records_keep_what_they_link_to(repo: Path, project: Project) -> None:
    store = project.ws.store
    blob = store.put_bytes(b"artifact")
    record = store.put_bytes(b'{"tether":"record","format":1,"links":["' + blob.encode() + b'"]}')
    project.ws.refs.set("runs/r2", [record])
    store.put_bytes(b"garbage")
    assert project.gc().removed == 1
    assert store.has(blob)


def test_remote_gc_removes_unreachable_objects_and_repacks(
    repo: Path, project: Project, tmp_path: Path
) -> None:
    write_files(repo, {f"data/f{i}": f"v1 {i}" for i in range(20)})
    project.add(["data"])
    project.add_remote("origin", str(tmp_path / "remote"))
    project.push()
    write_files(repo, {"data/f0": "v2"})
    project.add(["data"])
    project.push()
    result = project.gc(remote="origin")
    assert result.removed == 2 and result.repacked == 1
    # everything the current pointer needs is still fetchable
    project.ws.store.drop(set(project.ws.store.iter_ids()))  # an empty cache
    fetched = project.fetch()
    assert fetched.objects == 21
    assert project.gc(remote="origin", dry_run=True).removed == 0
    assert not (tmp_path / "remote/locks/gc").exists()
