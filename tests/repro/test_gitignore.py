"""Restored data hidden from git in a rebuilt worktree, for the reproduction only."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import git, make_repo, write_files
from tether.repro.gitignore import hidden_from_git


def test_odd_names_are_hidden_and_the_users_own_excludes_still_apply(tmp_path: Path) -> None:
    tree = make_repo(tmp_path / "tree")
    (tmp_path / "mine.ignore").write_text("*.log\n")
    git(tree, "config", "core.excludesFile", str(tmp_path / "mine.ignore"))
    odd = "we ird[1]*?.txt "
    write_files(tree, {odd: "data", "!bang": "data", "run.log": "log", "code.py": "x"})
    with hidden_from_git(tree, [odd, "!bang"]):
        seen = git(tree, "status", "--porcelain", "-z", "-uall").split("\0")
    assert [s for s in seen if s] == ["?? code.py"]
    after = git(tree, "status", "--porcelain", "-z", "-uall").split("\0")
    assert {s for s in after if s} == {"?? code.py", f"?? {odd}", "?? !bang"}
