"""``git_maybe`` tells git's "no" (a missing ref, an unset key, no repository) from a failure to
answer (git missing, a damaged repository, a broken config, a timeout), which raises."""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

import pytest

from tests.conftest import Tether, git, make_repo, write_files
from tether.errors import GitError
from tether.gitio.commits import default_range
from tether.gitio.repo import committer_email, git_maybe, is_commit, read_blob


def corrupt_git_object(root: Path, oid: str) -> None:
    path = root / ".git" / "objects" / oid[:2] / oid[2:]
    os.chmod(path, 0o644)
    path.write_bytes(b"bit rot")


@pytest.fixture
def plain(tmp_path: Path) -> Path:
    root = make_repo(tmp_path / "plain")
    write_files(root, {"f.txt": "hello\n"})
    git(root, "add", "f.txt")
    git(root, "commit", "-qm", "one")
    return root


def test_git_maybe_answers_no_for_what_is_not_there(plain: Path, tmp_path: Path) -> None:
    assert git_maybe(plain, "rev-parse", "--verify", "-q", "refs/heads/nothing") is None
    assert git_maybe(plain, "config", "--get", "no.such-key") is None
    outside = tmp_path / "not-a-repo"
    outside.mkdir()
    assert git_maybe(outside, "status", "--porcelain") is None  # no repository: no answer
    assert git_maybe(tmp_path / "gone", "status") is None
    assert not is_commit(plain, "0" * 40)
    assert read_blob(plain, "0" * 40) is None
    blob = git(plain, "rev-parse", "HEAD:f.txt").strip()
    assert read_blob(plain, blob[:10]) == b"hello\n"
    assert read_blob(plain, "HEAD") is None  # a commit, not a blob
    assert is_commit(plain, "HEAD")


def test_a_damaged_repository_is_an_error_not_a_no(plain: Path) -> None:
    head = git(plain, "rev-parse", "HEAD").strip()
    blob = git(plain, "rev-parse", "HEAD:f.txt").strip()
    corrupt_git_object(plain, blob)
    with pytest.raises(GitError, match=r"git rev-parse .* failed in .*exit 128"):
        read_blob(plain, blob)
    corrupt_git_object(plain, head)
    with pytest.raises(GitError, match="exit 128"):
        git_maybe(plain, "rev-parse", "--verify", "-q", f"{head}^{{commit}}")
    with pytest.raises(GitError):
        is_commit(plain, head)


def test_a_broken_git_config_is_an_error_not_an_unset_key(plain: Path) -> None:
    with (plain / ".git" / "config").open("a") as f:
        f.write("[core\nbroken")
    with pytest.raises(GitError, match="bad config line"):
        git_maybe(plain, "config", "core.commentChar")


def test_git_missing_is_an_error_not_a_no(plain: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(plain / "no-bin"))
    with pytest.raises(GitError, match="git is not installed"):
        git_maybe(plain, "rev-parse", "--verify", "-q", "HEAD")


def test_git_that_does_not_answer_in_time_is_an_error(
    plain: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "git"
    fake.write_text(f"#!{sys.executable}\nimport time\ntime.sleep(60)\n")  # a hung remote
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", str(bin_dir))
    with pytest.raises(GitError, match=r"did not finish within 0\.2 s"):
        git_maybe(plain, "ls-remote", "origin", timeout=0.2)


def test_committer_email_comes_from_the_environment_then_git_config(
    plain: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GIT_COMMITTER_EMAIL", raising=False)
    monkeypatch.delenv("EMAIL", raising=False)
    assert committer_email(plain) == "test@example.com"
    git(plain, "config", "committer.email", "ci@example.com")
    assert committer_email(plain) == "ci@example.com"
    monkeypatch.setenv("GIT_COMMITTER_EMAIL", "env@example.com")
    assert committer_email(plain) == "env@example.com"
    monkeypatch.delenv("GIT_COMMITTER_EMAIL")
    git(plain, "config", "--unset", "committer.email")
    git(plain, "config", "--unset", "user.email")
    monkeypatch.setenv("HOME", str(plain / "home"))  # no global identity either
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    assert committer_email(plain) is None
    monkeypatch.setenv("EMAIL", "mail@example.com")
    assert committer_email(plain) == "mail@example.com"


def test_default_range_follows_the_upstream_only_while_it_exists(
    plain: Path, tmp_path: Path
) -> None:
    assert default_range(plain) == "HEAD"  # no upstream
    origin = tmp_path / "origin.git"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(origin))
    git(plain, "remote", "add", "origin", str(origin))
    git(plain, "push", "-q", "-u", "origin", "main")
    assert default_range(plain) == "@{upstream}..HEAD"
    git(plain, "update-ref", "-d", "refs/remotes/origin/main")  # configured, but gone
    assert default_range(plain) == "HEAD"
    git(plain, "checkout", "-q", "--detach")
    assert default_range(plain) == "HEAD"
    empty = make_repo(tmp_path / "empty")
    assert default_range(empty) is None


def test_a_damaged_registration_tag_is_an_error_not_an_unregistered_prompt(
    repo: Path, tether: Tether
) -> None:
    write_files(
        repo,
        {
            "prompts/greet/v1.0.0/prompt.yaml": "variables: {name: string}\n",
            "prompts/greet/v1.0.0/template.jinja2": "Hello {{ name }}",
        },
    )
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "feat: greet")
    tether("prompt", "register", "greet@v1.0.0")
    assert "v1.0.0*" in tether("prompt", "list").output
    tag = git(repo, "rev-parse", "refs/tags/greet@v1.0.0").strip()
    corrupt_git_object(repo, tag)
    (repo / "prompts/greet/v1.0.0/template.jinja2").write_text("Changed {{ name }}")
    out = tether("prompt", "show", "greet@v1.0.0", expect=4).output
    assert "git for-each-ref" in out and "failed" in out  # not "registered: no"
