"""Hardlink and symlink cache modes: an edit to a linked file must never change the cache's only
copy. The read-only mode stops other users; root writes through it, so root gets copies."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.conftest import Tether, write_files
from tether.api import Project
from tether.hashing import hash_bytes

ROOT = os.geteuid() == 0


def _append(path: Path, text: str) -> bool:
    """`echo TEXT >> PATH` as the current user: False when the file's mode refused it."""
    try:
        with open(path, "a") as f:
            f.write(text)
    except PermissionError:
        return False
    return True


@pytest.mark.parametrize("mode", ["hardlink", "symlink"])
def test_editing_a_tracked_file_never_changes_the_cache(
    repo: Path, tether: Tether, mode: str
) -> None:
    tether("config", "set", "cache.link", mode)
    write_files(repo, {"data/a.csv": "a,b\n"})
    added = tether("add", "data").output
    if mode == "symlink":
        tether("checkout", "--force")  # symlink mode links at checkout
    if ROOT:  # the read-only mode protects nothing from root: it is told, and gets copies
        assert f"cache.link {mode} is not used when running as root" in added
        assert "cache.link_as_root" in added
    edited = _append(repo / "data/a.csv", "EDITED\n")
    assert edited == ROOT  # root edits its copy; anyone else is stopped by the read-only mode
    tether("fsck")  # exit 0: the cache still holds what was added
    tether("checkout", "--force")
    assert (repo / "data/a.csv").read_text() == "a,b\n"  # the recorded bytes come back


def test_an_edit_that_reached_the_cache_through_a_link_is_named_by_status(
    repo: Path, tether: Tether
) -> None:
    tether("config", "set", "cache.link", "hardlink")
    tether("config", "set", "cache.link_as_root", "true")  # root insists on links
    write_files(repo, {"data/a.csv": "a,b\n", "data/b.csv": "c\n"})
    tether("add", "data")
    with Project.open(repo) as project:
        assert project.status()[0].cache_edited == ()
    os.chmod(repo / "data/a.csv", 0o644)  # what an editor that forces the write does
    assert _append(repo / "data/a.csv", "EDITED\n")
    with Project.open(repo) as project:
        (now,) = project.status()
    assert now.modified == ("data/a.csv",) and now.cache_edited == ("data/a.csv",)
    out = tether("status").output
    assert "data/a.csv is linked to the cache and was edited in place" in out
    assert "tether fsck --repair" in out


@pytest.mark.skipif(not ROOT, reason="only root's links are unsafe (others' are read-only)")
def test_as_root_checkout_turns_files_linked_earlier_into_copies(
    repo: Path, tether: Tether
) -> None:
    tether("config", "set", "cache.link", "hardlink")
    tether("config", "set", "cache.link_as_root", "true")
    write_files(repo, {"data/a.csv": "a,b\n", "data/sub/b.csv": "c\n"})
    tether("add", "data")
    obj = Project.open(repo).ws.store.path(hash_bytes(b"a,b\n"))
    assert os.stat(repo / "data/a.csv").st_ino == os.stat(obj).st_ino  # linked, as asked
    tether("config", "set", "cache.link_as_root", "false")  # as after upgrading Tether
    assert "2 written" in tether("checkout").output
    assert os.stat(repo / "data/a.csv").st_ino != os.stat(obj).st_ino  # a copy now
    assert _append(repo / "data/a.csv", "EDITED\n")
    tether("fsck")  # the cache kept the recorded bytes
    assert "0 written" in tether("checkout", "--force", "data/sub").output  # nothing left linked
