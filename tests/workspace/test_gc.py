import sys
from pathlib import Path

import pytest

from tests.conftest import Tether, git, make_repo, write_files
from tether.api import Project
from tether.hashing import hash_bytes
from tether.workspace.pointer import PointerFile

READ = "print(open('data/raw.csv').read(), open('data/sub/more.txt').read())\n"


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


def test_remote_gc_quarantines_unreachable_objects_repacks_and_deletes_them_after_grace(
    repo: Path, project: Project, tmp_path: Path
) -> None:
    project.config_set("gc.grace", "0s")  # no grace: pushes protect nothing, quarantine is brief
    write_files(repo, {f"data/f{i}": f"v1 {i}" for i in range(20)})
    project.add(["data"])
    project.add_remote("origin", str(tmp_path / "remote"))
    project.push()
    write_files(repo, {"data/f0": "v2"})
    project.add(["data"])
    project.push()
    result = project.gc(remote="origin")
    assert (result.quarantined, result.removed, result.repacked) == (2, 0, 1)
    # everything the current pointer needs is still fetchable
    project.ws.store.drop(set(project.ws.store.iter_ids()))  # an empty cache
    fetched = project.fetch()
    assert fetched.objects == 21
    later = project.gc(remote="origin")  # the grace period (none) has ended
    assert (later.quarantined, later.removed) == (0, 2)
    assert not list((tmp_path / "remote/quarantine").iterdir())
    dry = project.gc(remote="origin", dry_run=True)
    assert (dry.quarantined, dry.removed) == (0, 0)
    assert not list((tmp_path / "remote/locks").iterdir())


def test_gc_and_push_keep_the_data_a_finished_run_read(
    repo: Path, project: Project, tmp_path: Path, tether: Tether, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The script reads data/ without logging it: the run's record still names the data it
    could read (the pointers at its start), so neither gc nor a push loses it."""
    write_files(repo, {"data/raw.csv": "a,b\n1,2\n", "data/sub/more.txt": "v1", "train.py": READ})
    tether("add", "data")
    _commit(repo)
    tether("run", "--", sys.executable, "train.py")
    old = {p: hash_bytes(b) for p, b in (("raw", b"a,b\n1,2\n"), ("more", b"v1"))}
    old_tree = PointerFile.parse((repo / "data.tether").read_bytes(), "data.tether").id
    write_files(repo, {"data/raw.csv": "a,b\n3,4\n", "data/sub/more.txt": "v2"})
    tether("add", "data")
    _commit(repo)

    tether("gc")
    store = Project.open(repo).ws.store  # a fresh look at the cache, as the next command has
    assert store.has(old_tree) and all(store.has(oid) for oid in old.values())
    assert project.fsck().ok

    project.add_remote("origin", str(tmp_path / "remote"))
    _commit(repo)
    tether("push")
    other = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(repo), str(other))
    make_repo(other)
    monkeypatch.chdir(other)
    tether("pull")
    clone = Project.open(other)
    assert clone.ws.store.has(old_tree) and not clone.ws.store.missing(old.values())
    assert clone.fsck().ok


def test_remote_gc_from_a_fresh_clone_keeps_what_pushed_runs_read(
    repo: Path, project: Project, tmp_path: Path, tether: Tether, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The clone collecting the remote never pulled the run's data: the record's folder input
    sits in a pack of an earlier push, and its files must stay on the remote all the same."""
    write_files(repo, {"data/raw.csv": "v1\n", "data/sub/more.txt": "v1", "train.py": READ})
    tether("add", "data")
    project.add_remote("origin", str(tmp_path / "remote"))
    _commit(repo)
    tether("push")  # the data's manifest and files, in packs of their own
    tether("run", "--", sys.executable, "train.py")
    tether("push")  # the run's record, in another pack
    write_files(repo, {"data/raw.csv": "v2\n", "data/sub/more.txt": "v2"})
    tether("add", "data")
    _commit(repo)
    tether("push")
    for name in ("collector", "reader"):
        git(tmp_path, "clone", "-q", str(repo), str(tmp_path / name))
        make_repo(tmp_path / name)
    monkeypatch.chdir(tmp_path / "collector")
    out = tether("gc", "--remote", "origin").output
    assert "quarantined 0 object(s)" in out and "deleted 0 object(s)" in out
    monkeypatch.chdir(tmp_path / "reader")
    tether("pull")
    reader = Project.open(tmp_path / "reader")
    assert reader.ws.store.has(hash_bytes(b"v1\n")) and reader.fsck().ok


def test_a_run_links_the_pointers_it_read_not_those_of_missing_or_edited_data() -> None:
    """What a run's record links: its data's pointers at start and end, except a tracked path
    that was missing at the start or edited (whose real bytes are an input instead)."""
    from tether.runs.record import run_links

    ids = {name: hash_bytes(name.encode()) for name in ("a", "b", "c", "c-real", "d", "env")}
    body = {
        "env": ids["env"],
        "params": {"looks_like_an_id": ids["d"]},  # the user's text: never followed
        "data": {
            "inputs": {"c": ids["c-real"]},
            "modified": ["c"],
            "missing": ["b"],
            "pointers_start": {"a": ids["a"], "b": ids["b"], "c": ids["c"]},
            "pointers_end": {"a": ids["a"]},
        },
    }
    assert run_links(body) == {ids["env"], ids["a"], ids["c-real"]}
