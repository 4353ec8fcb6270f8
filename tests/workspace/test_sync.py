"""Push, clone elsewhere, pull: byte-identical data, through a folder remote and through S3."""

import os
import shutil
from pathlib import Path

import pytest

from tests.conftest import Tether, git, make_repo, many_files, snapshot, write_files
from tether.api import Project
from tether.errors import MissingObjectError, UsageError


def _commit(repo: Path) -> None:
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "data")


def _clone(repo: Path, dest: Path, monkeypatch: pytest.MonkeyPatch) -> Project:
    git(repo.parent, "clone", "-q", str(repo), str(dest))
    make_repo(dest)  # sets the test identity
    monkeypatch.chdir(dest)
    return Project.open(dest)


def test_push_clone_pull_is_byte_identical(
    repo: Path, project: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    many_files(repo / "data", 1500, size=128)
    write_files(repo, {"data/big.bin": os.urandom(200_000), "model.bin": os.urandom(70_000)})
    os.chmod(repo / "data/d000/f000001.bin", 0o755)
    os.symlink("big.bin", repo / "data/latest")
    project.add(["data", "model.bin"])
    project.add_remote("origin", str(tmp_path / "remote"))
    pushed = project.push()
    assert pushed.objects.objects == 1500 + 2 + 1  # blobs + the folder manifest
    assert pushed.objects.packs >= 1
    _commit(repo)
    assert project.push().objects.objects == 0  # nothing re-sent

    clone = _clone(repo, tmp_path / "clone", monkeypatch)
    assert [s.state for s in clone.status()] == ["missing", "missing"]
    fetched, done = clone.pull()
    assert fetched.objects == 1503 and done.written == 1503
    assert snapshot(tmp_path / "clone/data") == snapshot(repo / "data")
    assert (tmp_path / "clone/model.bin").read_bytes() == (repo / "model.bin").read_bytes()
    assert [s.state for s in clone.status()] == ["clean", "clean"]
    assert clone.pull()[0].objects == 0


def test_pull_of_a_sub_path_fetches_only_what_it_needs(
    repo: Path, project: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    many_files(repo / "data", 300, size=64)
    project.add(["data"])
    project.add_remote("origin", str(tmp_path / "remote"))
    project.push()
    _commit(repo)
    clone = _clone(repo, tmp_path / "clone", monkeypatch)
    fetched, _ = clone.pull(["data/d001"])
    assert fetched.objects == 100 + 1  # the folder's 100 files and the manifest
    assert sorted(p.name for p in (tmp_path / "clone/data").iterdir()) == ["d001"]
    assert snapshot(tmp_path / "clone/data/d001") == snapshot(repo / "data/d001")


def test_push_refuses_when_neither_side_has_an_object(
    repo: Path, project: Project, tmp_path: Path
) -> None:
    write_files(repo, {"data/a": "a"})
    project.add(["data"])
    shutil.rmtree(repo / ".tether/objects")
    project.ws.store.create()
    project.add_remote("origin", str(tmp_path / "remote"))
    with pytest.raises(MissingObjectError, match=r"needed by data\.tether"):
        project.push()


def test_a_run_whose_data_this_cache_lost_says_how_to_push_again(
    repo: Path, project: Project, tmp_path: Path
) -> None:
    """A run links the data it read; when neither this cache nor the remote has it any more,
    push says which run and how to drop it, and pushes once it is purged."""
    write_files(repo, {"data/a": "never pushed"})
    project.add(["data"])
    project.add_remote("origin", str(tmp_path / "remote"))
    done = project.run(["true"])
    lost = set(project.ws.store.iter_ids()) - {project.ws.refs.get(f"runs/{done.run_id}")[0]}
    project.ws.store.drop(lost)  # a disk that lost them
    write_files(repo, {"data/a": "mine"})
    project.add(["data"])
    with pytest.raises(MissingObjectError, match=f"runs delete {done.run_id}") as info:
        project.push()
    assert "runs purge" in str(info.value)
    project.delete_run(done.run_id)
    project.purge_runs()
    assert project.push().refs.refs >= 1  # the tombstone


def test_no_remote_configured_says_how_to_add_one(project: Project) -> None:
    with pytest.raises(UsageError, match="tether remote add"):
        project.push()


def test_refs_travel_as_a_union(
    repo: Path, project: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    oid = project.ws.store.put_bytes(b"a run record")
    project.ws.refs.set("runs/0001", [oid])
    project.add_remote("origin", str(tmp_path / "remote"))
    assert project.push().refs.refs == 1
    _commit(repo)
    clone = _clone(repo, tmp_path / "clone", monkeypatch)
    result = clone.fetch()
    assert result.refs == 1
    assert clone.ws.refs.get("runs/0001") == (oid,)
    assert clone.ws.store.read_bytes(oid) == b"a run record"


@pytest.mark.s3
def test_s3_round_trip_in_few_requests(
    repo: Path,
    project: Project,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    s3_endpoint: str,
    s3_bucket: str,
) -> None:
    many_files(repo / "data", 2000, size=256)
    write_files(repo, {"data/big.bin": os.urandom(300_000)})
    project.add(["data"])
    project.add_remote("s3", f"s3://{s3_bucket}/store")
    project.config_set("remote.s3.endpoint_url", s3_endpoint)
    pushed = project.push()
    assert pushed.objects.objects == 2002
    _commit(repo)

    assert pushed.objects.requests < 40, f"push took {pushed.objects.requests} requests"

    clone = _clone(repo, tmp_path / "clone", monkeypatch)
    fetched, _ = clone.pull()
    assert fetched.objects == 2002
    assert snapshot(tmp_path / "clone/data") == snapshot(repo / "data")
    assert fetched.requests < 40, f"pull of 2,002 objects took {fetched.requests} requests"


@pytest.mark.slow
def test_a_100k_file_data_set_round_trips(
    repo: Path, project: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The issue's acceptance run: init, add 100k files, commit, push, clone, pull, compare."""
    many_files(repo / "data", 100_000, size=16, per_dir=1000)
    (result,) = project.add(["data"])
    assert result.files == 100_000
    project.add_remote("origin", str(tmp_path / "remote"))
    pushed = project.push()
    assert pushed.objects.objects == 100_001 and pushed.objects.requests < 20
    _commit(repo)
    clone = _clone(repo, tmp_path / "clone", monkeypatch)
    fetched, done = clone.pull()
    assert fetched.objects == 100_001 and done.written == 100_000
    assert snapshot(tmp_path / "clone/data") == snapshot(repo / "data")
    assert clone.status()[0].state == "clean"


def test_local_packs_travel_whole(repo: Path, project: Project, tmp_path: Path) -> None:
    many_files(repo / "data", 500, size=64)
    project.add(["data"])
    local = {p.name for p in (repo / ".tether/packs").glob("*.pack")}
    assert len(local) == 1
    project.add_remote("origin", str(tmp_path / "remote"))
    result = project.push()
    assert result.objects.objects == 501
    assert local <= {p.name for p in (tmp_path / "remote/packs").glob("*.pack")}


def test_a_remote_of_an_unknown_format_is_refused(
    repo: Path, project: Project, tmp_path: Path
) -> None:
    from tether.errors import FormatError

    write_files(repo, {"data/a": "1"})
    project.add(["data"])
    project.add_remote("origin", str(tmp_path / "remote"))
    project.push()
    (tmp_path / "remote/FORMAT").write_text('{"tether":"remote","format":9}')
    with pytest.raises(FormatError, match=r"format 9.*upgrade Tether"):
        project.push()
    with pytest.raises(FormatError, match="upgrade Tether"):
        project.fetch()


def test_runs_a_refused_pull_fetched_are_found_and_the_refusal_says_pull(
    repo: Path,
    project: Project,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    tether: Tether,
) -> None:
    write_files(repo, {"data.txt": "theirs\n"})
    project.add(["data.txt"])
    project.add_remote("origin", str(tmp_path / "remote"))
    _commit(repo)
    cli = tether
    cli("run", "-n", "UP3", "--", "true")
    project.push()
    clone = _clone(repo, tmp_path / "clone", monkeypatch)
    write_files(tmp_path / "clone", {"data.txt": "my unsaved edit\n"})
    out = cli("pull", expect=4).output
    assert "tether pull --force" in out and "data.txt" in out
    assert (tmp_path / "clone/data.txt").read_text() == "my unsaved edit\n"
    assert clone.resolve_run("UP3")  # the fetch brought it: it is found
    assert "UP3" in cli("runs", "list").output
