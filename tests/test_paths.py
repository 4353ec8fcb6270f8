"""Paths from content are checked as git's verify_path checks a tree's paths."""

from __future__ import annotations

import os
import posixpath
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tether._paths import (
    WriteGuard,
    _all_plain_and_apart,
    _check_each,
    check_link,
    check_links,
    check_path,
    check_paths,
    is_reserved,
    problem,
)
from tether.errors import TetherError, UnsafePathError

REFUSED = [
    "",
    "/etc/passwd",
    "../outside.txt",
    "data/../../outside.txt",
    "a//b",
    "a/./b",
    "a/",
    ".git/hooks/pre-commit",
    "sub/.git/config",
    ".GIT/hooks/pre-commit",
    ".git./hooks/x",
    ".git /hooks/x",
    ".git::$INDEX_ALLOCATION/hooks/x",
    "GIT~1/hooks/x",
    ".g\u200cit/hooks/x",
    "\ufeff.git/config",
    ".tether/config",
    ".Tether/cache/x",
    "TETHER~1/x",
    "a\\..\\..\\x",
    "line\nbreak",
    "nul\0byte",
]

ALLOWED = [
    "data/train.csv",
    "a/b/c/d.bin",
    ".gitignore",
    ".github/workflows/ci.yml",
    ".tetherignore",
    "git/objects",
    "images/2024-01-01T10:00:00.png",
    "données/été.csv",
    "x~y",
    "v1.0/model.pt",
]


@pytest.mark.parametrize("path", REFUSED)
def test_a_path_that_leaves_its_folder_or_names_git_is_refused(path: str) -> None:
    assert problem(path) is not None
    with pytest.raises(UnsafePathError, match="manifest m"):
        check_path(path, "manifest m")


@pytest.mark.parametrize("path", ALLOWED)
def test_ordinary_paths_pass(path: str) -> None:
    assert problem(path) is None


def test_two_entries_that_fold_to_one_file_are_refused() -> None:
    with pytest.raises(UnsafePathError, match="same file"):
        check_paths(["Data/x.csv", "data/X.csv"], "m")
    nfc, nfd = "caf\u00e9.txt", "cafe\u0301.txt"
    with pytest.raises(UnsafePathError, match="same file"):
        check_paths([nfc, nfd], "m")
    with pytest.raises(UnsafePathError, match="twice"):
        check_paths(["a", "a"], "m")
    check_paths(["a/b", "a/c", "ab"], "m")


def test_a_file_that_is_also_a_folder_is_refused() -> None:
    with pytest.raises(UnsafePathError, match="as a file and as a folder"):
        check_paths(["a/b", "a/b/c"], "m")
    with pytest.raises(UnsafePathError, match="as a file and as a folder"):
        check_paths(["A", "a/b"], "m")


def test_a_symlink_may_only_point_inside() -> None:
    check_link("a/link", "../b", "m")
    check_link("link", "sub/file", "m")
    for path, target in [
        ("link", "../outside"),
        ("a/link", "../../x"),
        ("link", "/etc/passwd"),
        ("link", "a/../../x"),
        ("link", ".git/hooks"),
        ("link", ""),
    ]:
        with pytest.raises(UnsafePathError):
            check_link(path, target, "m")


@given(st.text(max_size=60))
def test_every_path_a_check_passes_stays_inside_and_away_from_git(path: str) -> None:
    try:
        check_path(path, "m")
    except UnsafePathError:
        return
    assert not posixpath.isabs(path)
    assert posixpath.normpath(path) == path
    parts = path.split("/")
    assert ".." not in parts
    assert not any(is_reserved(p) for p in parts)
    root = "/r/o/o/t"
    assert posixpath.normpath(posixpath.join(root, path)).startswith(root + "/")


@given(st.lists(st.text(alphabet="aA/.é\u0301b", max_size=8), max_size=8))
def test_a_set_of_paths_is_accepted_or_refused_with_a_clear_error(paths: list[str]) -> None:
    try:
        check_paths(paths, "m")
    except TetherError as exc:
        assert "m " in str(exc)


def test_a_symlinked_folder_planted_before_the_write_is_not_written_through(
    tmp_path: Path,
) -> None:
    root, outside = tmp_path / "repo", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (root / "data").mkdir()
    os.symlink(outside, root / "data" / "sub")
    guard = WriteGuard(root)
    assert guard.file("data/x.csv") == f"{root}/data/x.csv"
    with pytest.raises(UnsafePathError, match="data/sub is a symlink"):
        guard.file("data/sub/x.csv")
    assert list(outside.iterdir()) == []
    (root / "file").write_text("x")
    with pytest.raises(UnsafePathError, match="file where a folder must be"):
        guard.folder("file/x")
    assert guard.file("new/deep/y") == f"{root}/new/deep/y"
    assert (root / "new" / "deep").is_dir()


def test_a_delete_never_goes_through_a_symlinked_folder(tmp_path: Path) -> None:
    root, outside = tmp_path / "repo", tmp_path / "outside"
    (root / "data/real").mkdir(parents=True)
    outside.mkdir()
    (outside / "x.csv").write_text("theirs")
    os.symlink(outside, root / "data" / "sub")
    guard = WriteGuard(root)
    assert guard.existing("data/real/x.csv") == f"{root}/data/real/x.csv"
    assert guard.existing("data/gone/x.csv") is None  # nothing there to delete
    with pytest.raises(UnsafePathError, match="data/sub is a symlink"):
        guard.existing("data/sub/x.csv")
    for climbing in ("data/../../x", "data/..", "../x", "data//x"):
        with pytest.raises(UnsafePathError, match="not a normalised relative path"):
            guard.existing(climbing)
        with pytest.raises(UnsafePathError, match="not a normalised relative path"):
            guard.file(climbing)
    assert (outside / "x.csv").read_text() == "theirs"


def test_a_link_that_leads_through_another_link_is_refused() -> None:
    check_links({"sub/up": "..", "alias": "sub/up"}, "m")
    with pytest.raises(UnsafePathError, match="leads through the symlink 'sub/up'"):
        check_links({"sub/up": "..", "out": "sub/up/../.."}, "m")
    with pytest.raises(UnsafePathError, match="leads through the symlink 'SUB/UP'"):
        check_links({"sub/up": "..", "out": "SUB/UP/x"}, "m")  # one file where case is ignored


@given(
    st.lists(
        st.text(alphabet="aAb/.~: \\\n\u00e9", max_size=6)
        | st.sampled_from(["a", "a/b", "A/b", "a/b/c", "b", ".git", "x/..", "c/d"]),
        max_size=8,
    )
)
def test_checking_all_paths_at_once_agrees_with_checking_each(paths: list[str]) -> None:
    """The fast check of a whole manifest passes only what the path-by-path check passes."""
    if _all_plain_and_apart(paths):
        _check_each(paths, "m")  # raises if the fast check let something through
