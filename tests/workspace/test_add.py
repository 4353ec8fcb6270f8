import os
import stat
import time
from pathlib import Path

import pytest

from tests.conftest import git, many_files, write_files
from tether.api import Project
from tether.errors import PathError, UsageError
from tether.hashing import hash_bytes
from tether.workspace.pointer import PointerFile
from tether.workspace.scan import RACY_NS


def test_add_folder_writes_pointer_stores_objects_and_ignores_data(
    repo: Path, project: Project
) -> None:
    write_files(repo, {"data/a.txt": "alpha", "data/sub/b.txt": "beta"})
    (result,) = project.add(["data"])
    assert (result.files, result.size, result.unchanged) == (2, 9, False)
    ptr = PointerFile.parse((repo / "data.tether").read_bytes(), "data.tether")
    assert (ptr.path, ptr.kind, ptr.files, ptr.id) == ("data", "dir", 2, result.id)
    tree = project.ws.store.load_tree(ptr.id)
    assert {e.path: e.id for e in tree.entries} == {
        "a.txt": hash_bytes(b"alpha"),
        "sub/b.txt": hash_bytes(b"beta"),
    }
    assert project.ws.store.read_bytes(hash_bytes(b"beta")) == b"beta"
    assert "/data" in (repo / ".gitignore").read_text().splitlines()
    # git sees the pointer, not the data
    assert git(repo, "status", "--porcelain", "-uall").split().count("data.tether") == 1
    assert "data/a.txt" not in git(repo, "status", "--porcelain", "-uall")


def test_add_single_file_beside_its_pointer(repo: Path, project: Project) -> None:
    write_files(repo, {"models/model.bin": b"\x00\x01weights"})
    (result,) = project.add(["models/model.bin"])
    ptr = PointerFile.parse((repo / "models/model.bin.tether").read_bytes(), "p")
    assert (ptr.kind, ptr.id, ptr.size) == ("file", hash_bytes(b"\x00\x01weights"), 9)
    assert result.pointer == "models/model.bin.tether"
    assert "/model.bin" in (repo / "models/.gitignore").read_text().splitlines()


def test_unchanged_files_are_not_read_again(repo: Path, project: Project) -> None:
    many_files(repo / "data", 300)
    time.sleep(RACY_NS / 1e9)  # older than a clock tick: not "racily clean"
    first = project.add(["data"])[0]
    assert first.hashed == 300
    again = project.add(["data"])[0]
    assert (again.hashed, again.unchanged, again.id) == (0, True, first.id)
    (repo / "data/d001/f000150.bin").write_bytes(b"changed")
    third = project.add(["data"])[0]
    assert third.hashed == 1 and third.id != first.id and not third.unchanged


def test_a_file_changed_just_before_add_is_read_again_next_time(
    repo: Path, project: Project
) -> None:
    """Its stat could repeat within one tick of the file clock (git's "racily clean")."""
    write_files(repo, {"data/old": "old", "data/fresh": "fresh"})
    ahead = time.time_ns() + 3_600 * 10**9
    os.utime(repo / "data/fresh", ns=(ahead, ahead))  # "just changed", for as long as we need
    time.sleep(RACY_NS / 1e9)
    assert project.add(["data"])[0].hashed == 2
    assert project.add(["data"])[0].hashed == 1  # only the racy one, every time
    assert project.add(["data"])[0].hashed == 1
    os.utime(repo / "data/fresh", ns=(1, 1))  # long ago (utime moves its ctime to now)
    time.sleep(RACY_NS / 1e9)
    assert project.add(["data"])[0].hashed == 1
    assert project.add(["data"])[0].hashed == 0


def test_file_modes_and_in_folder_symlinks_are_recorded(repo: Path, project: Project) -> None:
    write_files(repo, {"data/run.sh": "#!/bin/sh\n", "data/x.txt": "x"})
    os.chmod(repo / "data/run.sh", 0o755)
    os.symlink("x.txt", repo / "data/alias")
    (result,) = project.add(["data"])
    entries = project.ws.store.load_tree(result.id).by_path
    assert entries["run.sh"].mode == 0o755
    assert entries["x.txt"].mode == 0o644
    assert entries["alias"].target == "x.txt"


def test_symlink_leaving_the_folder_is_refused(
    repo: Path, project: Project, tmp_path: Path
) -> None:
    write_files(repo, {"data/x.txt": "x"})
    (tmp_path / "secret").write_text("outside")
    os.symlink(tmp_path / "secret", repo / "data/escape")
    with pytest.raises(PathError, match="outside the tracked folder"):
        project.add(["data"])
    assert not (repo / "data.tether").exists()


def test_paths_outside_the_repository_are_refused(
    repo: Path, project: Project, tmp_path: Path
) -> None:
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "f").write_text("no")
    with pytest.raises(PathError, match="outside the repository"):
        project.add([str(outside)])
    with pytest.raises(PathError, match="outside the repository"):
        project.add(["../elsewhere"])
    os.symlink(outside, repo / "sneaky")
    with pytest.raises(PathError):
        project.add(["sneaky"])
    with pytest.raises(PathError):
        project.add(["sneaky/f"])


def test_files_git_tracks_cannot_be_added(repo: Path, project: Project) -> None:
    write_files(repo, {"code.py": "print(1)"})
    git(repo, "add", "code.py")
    with pytest.raises(UsageError, match=r"git rm -r --cached code\.py"):
        project.add(["code.py"])


def test_nested_tracking_is_refused(repo: Path, project: Project) -> None:
    write_files(repo, {"data/a/x": "1", "data/b": "2"})
    project.add(["data"])
    with pytest.raises(UsageError, match="already tracked"):
        project.add(["data/a"])


def test_hardlink_mode_shares_inodes_and_makes_files_read_only(
    repo: Path, project: Project
) -> None:
    project.config_set("cache.link", "hardlink")
    project.config_set("cache.link_as_root", "true")  # tests may run as root: link anyway
    write_files(repo, {"data/big.bin": os.urandom(4096)})
    (result,) = project.add(["data"])
    entry = project.ws.store.load_tree(result.id).entries[0]
    obj = project.ws.store.path(entry.id)
    assert os.stat(repo / "data/big.bin").st_ino == obj.stat().st_ino
    assert stat.S_IMODE(obj.stat().st_mode) == 0o444  # an in-place edit needs a chmod first


def test_copy_mode_edits_never_reach_the_cache(repo: Path, project: Project) -> None:
    write_files(repo, {"data/f.bin": b"original"})
    (result,) = project.add(["data"])
    with open(repo / "data/f.bin", "r+b") as f:  # edit in place, same inode
        f.write(b"EDITED!!")
    assert project.ws.store.read_bytes(hash_bytes(b"original")) == b"original"
    assert project.ws.store.verify(hash_bytes(b"original"))
    assert project.status()[0].modified == ("data/f.bin",)
    assert result.id == PointerFile.parse((repo / "data.tether").read_bytes(), "p").id


def test_objects_lost_from_the_cache_are_stored_again(repo: Path, project: Project) -> None:
    many_files(repo / "data", 50)
    (result,) = project.add(["data"])
    store = project.ws.store
    lost = project.ws.store.load_tree(result.id).entries[7].id
    store.drop({lost})  # as if lost by hand
    report = project.fsck()
    assert list(report.missing) == [lost]
    again = project.add(["data"])[0]
    assert again.unchanged and store.has(lost)
    assert project.fsck().ok


def test_a_fifo_is_refused_by_name_instead_of_read_forever(repo: Path) -> None:
    import subprocess
    import sys

    os.mkfifo(repo / "pipe")
    write_files(repo, {"data/a.csv": "1\n"})
    os.mkfifo(repo / "data" / "live")
    tether = str(Path(sys.executable).parent / "tether")
    proc = subprocess.run(
        [tether, "add", "pipe"], cwd=repo, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 4 and "pipe is a FIFO (named pipe)" in proc.stderr
    assert not (repo / "pipe.tether").exists()
    proc = subprocess.run(
        [tether, "add", "data"], cwd=repo, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr  # inside a folder a FIFO is left out, as git does
    pointer = PointerFile.parse((repo / "data.tether").read_bytes(), "p")
    with Project.open(repo) as project:
        tree = project.ws.store.load_tree(pointer.id)
    assert [e.path for e in tree.entries] == ["a.csv"]
