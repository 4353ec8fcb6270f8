from pathlib import Path

import pytest

from tests.conftest import git, write_files
from tether.api import Project
from tether.errors import MissingObjectError


def _commit(repo: Path, msg: str) -> None:
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", msg)


def test_diff_between_revisions_and_the_working_tree(repo: Path, project: Project) -> None:
    write_files(repo, {"data/a": "1", "data/b": "2", "model.bin": "m1"})
    project.add(["data", "model.bin"])
    _commit(repo, "v1")
    (repo / "data/a").write_text("changed")
    (repo / "data/b").unlink()
    write_files(repo, {"data/c": "3", "model.bin": "m2"})
    project.add(["data", "model.bin"])
    _commit(repo, "v2")
    write_files(repo, {"data/d": "4"})

    changes = {(c.path, c.change) for c in project.data_diff("HEAD~1", "HEAD")}
    assert changes == {
        ("data/a", "modified"),
        ("data/b", "removed"),
        ("data/c", "added"),
        ("model.bin", "modified"),
    }
    assert [(c.path, c.change) for c in project.data_diff()] == [("data/d", "added")]
    assert project.data_diff("HEAD", "HEAD") == []


def test_diff_against_a_revision_whose_data_is_not_cached(repo: Path, project: Project) -> None:
    write_files(repo, {"data/a": "1"})
    project.add(["data"])
    _commit(repo, "v1")
    project.ws.store.drop(set(project.ws.store.iter_ids()))  # an empty cache
    with pytest.raises(MissingObjectError, match="tether pull"):
        project.data_diff("HEAD", "HEAD")


def test_cli_marks_changes(repo: Path, project: Project, tether) -> None:  # type: ignore[no-untyped-def]
    write_files(repo, {"data/a": "1"})
    project.add(["data"])
    _commit(repo, "v1")
    write_files(repo, {"data/b": "2"})
    out = tether("data", "diff").output
    assert "A  data/b" in out


def test_a_revision_that_is_not_a_commit_is_explained(repo: Path, tether) -> None:  # type: ignore[no-untyped-def]
    out = tether("data", "diff", expect=2).output
    assert "HEAD is not a commit" in out and "no commits yet" in out
