import os
import shutil
from pathlib import Path

import pytest

from tests.conftest import many_files, snapshot, write_files
from tether.api import Project
from tether.errors import MissingObjectError, PathError


@pytest.fixture
def tracked(repo: Path, project: Project) -> dict[str, tuple[bytes, int] | str]:
    write_files(repo, {"data/a.txt": "alpha", "data/sub/b.txt": "beta", "data/run.sh": "#!"})
    os.chmod(repo / "data/run.sh", 0o755)
    os.symlink("sub/b.txt", repo / "data/link")
    project.add(["data"])
    return snapshot(repo / "data")


def test_checkout_restores_exactly_after_deletion(repo: Path, project: Project, tracked) -> None:  # type: ignore[no-untyped-def]
    shutil.rmtree(repo / "data")
    result = project.checkout()
    assert result.written == 4
    assert snapshot(repo / "data") == tracked
    assert project.status()[0].state == "clean"


def test_checkout_removes_extra_files_and_fixes_modes(
    repo: Path,
    project: Project,
    tracked,  # type: ignore[no-untyped-def]
) -> None:
    write_files(repo, {"data/extra/new.txt": "new"})
    os.chmod(repo / "data/run.sh", 0o644)
    plan = project.plan_checkout()
    assert sorted((a.op, a.path) for a in plan.actions) == [
        ("chmod", "data/run.sh"),
        ("delete", "data/extra/new.txt"),
    ]
    assert plan.unsaved == ["data/extra/new.txt"]  # only on disk: refused without --force
    project.checkout(force=True)
    assert snapshot(repo / "data") == tracked
    assert not (repo / "data/extra").exists()


def test_dry_run_changes_nothing(repo: Path, project: Project, tracked, tether) -> None:  # type: ignore[no-untyped-def]
    (repo / "data/a.txt").unlink()
    out = tether("checkout", "--dry-run").output
    assert "write   data/a.txt" in out
    assert not (repo / "data/a.txt").exists()


def test_checkout_of_a_sub_path_touches_nothing_else(
    repo: Path,
    project: Project,
    tracked,  # type: ignore[no-untyped-def]
) -> None:
    (repo / "data/a.txt").unlink()
    (repo / "data/sub/b.txt").unlink()
    project.checkout(["data/sub"])
    assert (repo / "data/sub/b.txt").read_text() == "beta"
    assert not (repo / "data/a.txt").exists()
    project.checkout(["data/a.txt"])
    assert (repo / "data/a.txt").read_text() == "alpha"


def test_local_changes_are_not_discarded_without_force(
    repo: Path,
    project: Project,
    tracked,  # type: ignore[no-untyped-def]
) -> None:
    (repo / "data/a.txt").write_text("my unsaved work")
    with pytest.raises(PathError, match="exist nowhere else"):
        project.checkout()
    assert (repo / "data/a.txt").read_text() == "my unsaved work"
    project.checkout(force=True)
    assert (repo / "data/a.txt").read_text() == "alpha"


def test_missing_objects_stop_checkout_before_any_change(
    repo: Path,
    project: Project,
    tracked,  # type: ignore[no-untyped-def]
) -> None:
    many_files(repo / "more", 5)
    project.add(["more"])
    shutil.rmtree(repo / "more")
    (repo / "data/a.txt").unlink()
    shutil.rmtree(repo / ".tether/objects")
    project.ws.store.create()
    with pytest.raises(MissingObjectError, match="tether pull"):
        project.checkout()
    assert not (repo / "more").exists()


def test_hardlink_checkout_links_files_from_the_cache(repo: Path, project: Project) -> None:
    project.config_set("cache.link", "hardlink")
    project.config_set("cache.link_as_root", "true")  # tests may run as root: link anyway
    write_files(repo, {"data/f.bin": b"payload"})
    (result,) = project.add(["data"])
    shutil.rmtree(repo / "data")
    project.checkout()
    entry = project.ws.store.load_tree(result.id).entries[0]
    assert os.stat(repo / "data/f.bin").st_ino == project.ws.store.path(entry.id).stat().st_ino


def test_symlink_mode_links_into_the_cache_and_status_follows(repo: Path, project: Project) -> None:
    project.config_set("cache.link", "symlink")
    project.config_set("cache.link_as_root", "true")  # tests may run as root: link anyway
    write_files(repo, {"data/f.bin": b"payload", "data/g.bin": b"other"})
    project.add(["data"])
    shutil.rmtree(repo / "data")
    project.checkout()
    assert (repo / "data/f.bin").is_symlink()
    assert (repo / "data/f.bin").read_bytes() == b"payload"
    assert project.status()[0].state == "clean"
    (repo / "data/f.bin").unlink()
    (repo / "data/f.bin").write_bytes(b"edited")  # replacing a link is an edit
    assert project.status()[0].modified == ("data/f.bin",)
