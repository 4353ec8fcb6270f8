import os
import shutil
from pathlib import Path

from tests.conftest import many_files, write_files
from tether.api import Project


def test_clean_modified_missing_down_to_the_file(repo: Path, project: Project) -> None:
    write_files(repo, {"data/a": "1", "data/b": "2", "data/c/d": "3", "model.bin": "m"})
    project.add(["data", "model.bin"])
    assert [(s.target, s.state) for s in project.status()] == [
        ("data", "clean"),
        ("model.bin", "clean"),
    ]
    (repo / "data/a").write_text("changed")
    (repo / "data/c/d").unlink()
    (repo / "data/new").write_text("new")
    (repo / "model.bin").unlink()
    data, model = project.status()
    assert data.state == "modified"
    assert (data.added, data.removed, data.modified) == (("data/new",), ("data/c/d",), ("data/a",))
    assert model.state == "missing"


def test_status_of_a_sub_path_only_reports_inside_it(repo: Path, project: Project) -> None:
    write_files(repo, {"data/x/1": "1", "data/y/2": "2"})
    project.add(["data"])
    (repo / "data/x/1").write_text("changed")
    (repo / "data/y/2").write_text("changed too")
    (only,) = project.status(["data/y"])
    assert only.modified == ("data/y/2",)


def test_status_reports_objects_missing_from_the_cache(repo: Path, project: Project) -> None:
    many_files(repo / "data", 20)
    project.add(["data"])
    shutil.rmtree(repo / ".tether/objects")
    (status,) = project.status()
    assert status.state == "clean" and not status.in_cache


def test_status_cli_lists_changes(repo: Path, tether) -> None:  # type: ignore[no-untyped-def]
    write_files(repo, {"data/a": "1"})
    tether("add", "data")
    (repo / "data/a").write_text("2")
    out = tether("status").output
    assert "data: modified" in out
    assert "modified:  data/a" in out


def test_a_same_size_edit_with_its_mtime_put_back_is_still_seen(
    repo: Path, project: Project
) -> None:
    write_files(repo, {"data/a": "aaaa", "data/b": "bbbb"})
    project.add(["data"])
    assert project.status()[0].state == "clean"  # the folder's snapshot is taken
    st = (repo / "data/a").stat()
    (repo / "data/a").write_text("AAAA")
    os.utime(repo / "data/a", ns=(st.st_atime_ns, st.st_mtime_ns))
    (status,) = project.status()
    assert status.state == "modified" and status.modified == ("data/a",)
