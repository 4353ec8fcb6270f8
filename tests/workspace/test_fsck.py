from pathlib import Path

from tests.conftest import corrupt_object, write_files
from tether.api import Project
from tether.hashing import hash_bytes


def test_clean_store(repo: Path, project: Project) -> None:
    write_files(repo, {"data/a": "1", "data/b": "2"})
    project.add(["data"])
    report = project.fsck()
    assert report.ok and report.objects == 3


def test_corrupt_and_missing_objects_name_what_they_break(
    repo: Path,
    project: Project,
    tether,  # type: ignore[no-untyped-def]
) -> None:
    write_files(repo, {"data/a": "alpha", "data/b": "beta", "model.bin": "weights"})
    project.add(["data", "model.bin"])
    store = project.ws.store
    corrupt_object(store, hash_bytes(b"alpha"))
    store.drop({hash_bytes(b"weights")})

    report = project.fsck()
    assert report.corrupt == {hash_bytes(b"alpha"): ["data.tether"]}
    assert report.missing == {hash_bytes(b"weights"): ["model.bin.tether"]}
    out = tether("fsck", expect=1).output
    assert "corrupt" in out and "data.tether" in out and "tether pull" in out

    repaired = project.fsck(repair=True)
    assert repaired.repaired == 1
    assert not store.has(hash_bytes(b"alpha"))
    # re-adding the original data restores the object
    write_files(repo, {"data/a": "alpha"})
    project.add(["data"])
    assert project.fsck().corrupt == {}


def test_unreadable_pointer_is_reported(repo: Path, project: Project) -> None:
    write_files(repo, {"data/a": "1"})
    project.add(["data"])
    (repo / "data.tether").write_text("format: 1\npath: [unclosed\n")
    report = project.fsck()
    assert not report.ok
    assert "not valid YAML" in report.bad_pointers[0]
