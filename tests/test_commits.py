"""Conventional Commits checks (tether.gitio.commits), `tether policy check-commits`, and the
commit-msg / pre-commit hooks `tether hooks install` writes, run by a real `git commit`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner, Result

from tests.conftest import git, make_repo
from tether.cli.hooks import hooks, main, policy
from tether.errors import UsageError
from tether.gitio.commits import (
    CUT_LINE,
    Footer,
    Parsed,
    Problem,
    check_range,
    check_staged,
    cleanup,
    parse,
)

MiB = 1024 * 1024


def ok(message: str, **kwargs: Any) -> Parsed:
    result = parse(message, **kwargs)
    assert isinstance(result, Parsed), result
    return result


def bad(message: str, **kwargs: Any) -> Problem:
    result = parse(message, **kwargs)
    assert isinstance(result, Problem), result
    # the example is itself a valid message
    assert isinstance(parse(result.example, **kwargs), Parsed), result.example
    return result


# -- parse ----------------------------------------------------------------------------------------
def test_good_headers() -> None:
    assert ok("feat: add pointer files") == Parsed(type="feat", description="add pointer files")
    p = ok("fix(cache/packs): close the pack before renaming\n")
    assert (p.type, p.scope, p.breaking) == ("fix", "cache/packs", False)
    assert ok("refactor(api)!: rename Project.open").breaking
    assert ok("Docs: types are not case-sensitive").type == "docs"
    assert ok("chore(deps-1.2_x): bump").scope == "deps-1.2_x"


def test_body_and_footers() -> None:
    p = ok(
        "feat(cli): add hooks\n\nA body paragraph.\nStill the body.\n\nAnother one.\n\n"
        "BREAKING CHANGE: the hook runs on every commit\n  and its value goes on\n"
        "Refs #123\nReviewed-by: Ann <ann@example.com>\n"
    )
    assert p.body == "A body paragraph.\nStill the body.\n\nAnother one."
    assert p.footers == (
        Footer("BREAKING CHANGE", "the hook runs on every commit\n  and its value goes on"),
        Footer("Refs", "123"),
        Footer("Reviewed-by", "Ann <ann@example.com>"),
    )
    assert p.breaking
    assert ok("fix: x\n\nBREAKING-CHANGE: y").breaking
    only_footers = ok("fix: x\n\nSigned-off-by: A <a@b>")
    assert only_footers.body == "" and only_footers.footers == (Footer("Signed-off-by", "A <a@b>"),)
    # a body paragraph that merely contains a colon is not a footer when prose follows it
    assert ok("fix: x\n\nNote: read this.\n\nMore prose here.").footers == ()


@pytest.mark.parametrize(
    ("message", "words"),
    [
        ("add pointer files", "does not start with a type"),
        ("feature: add pointer files", "'feature' is not a commit type"),
        ("feat: ", "description after the colon is empty"),
        ("feat(api):", "description after the colon is empty"),
        ("feat:add", "one space"),
        ("feat(): add", "scope is empty"),
        ("feat(My Scope): add", "characters outside"),
        ("feat: add\nthe body glued to the header", "blank line"),
        ("feat: " + "x" * 95, "101 characters, over the limit of 100"),
        ("feat: x\n\nbreaking change: y", "capitals"),
        ("feat: x\n\nBREAKING CHANGE: ", "footer is empty"),
        ("", "empty"),
    ],
)
def test_bad_messages(message: str, words: str) -> None:
    assert words in bad(message).message


def test_examples_keep_what_was_meant() -> None:
    assert bad("feature(API): add pointer files").example == "feat(api): add pointer files"
    assert bad("bugfix: close the pack").example == "fix: close the pack"
    assert bad("Add pointer files").example == "feat: Add pointer files"
    assert len(bad("feat: " + "y" * 200).example) <= 100


def test_types_and_header_length_are_configurable() -> None:
    assert "use one of feat, wip" in bad("fix: x", types=("feat", "wip")).message
    assert ok("wip: x", types=("feat", "wip")).type == "wip"
    assert "over the limit of 20" in bad("feat: twenty-one chars", max_header=20).message
    ok("feat: " + "x" * 110, max_header=120)


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        ("Merge branch 'topic' into main", "merge"),
        ("Merge pull request #12 from ann/topic\n\nAdd things", "merge"),
        ("Merge remote-tracking branch 'origin/main'", "merge"),
        ("fixup! feat: add pointer files", "fixup"),
        ("squash! whatever was there", "fixup"),
        ("amend! feat: add pointer files\n\nfeat: add pointer files, better", "fixup"),
        ('Revert "feat: add pointer files"\n\nThis reverts commit 0123abcd.', "revert"),
    ],
)
def test_messages_git_writes_itself_pass(message: str, reason: str) -> None:
    assert ok(message).exempt == reason


def test_cleanup_strips_comments_and_everything_below_the_scissors() -> None:
    edited = (
        "\n\nfeat: add hooks   \n# Please enter the commit message\n\n\n\nbody line\n#\n"
        f"# {CUT_LINE}\n# Do not modify or remove the line above.\ndiff --git a/x b/x\n"
    )
    assert cleanup(edited) == "feat: add hooks\n\nbody line\n"
    assert cleanup("# only comments\n#\n") == ""
    assert cleanup("; feat: x\nfeat: y\n", comment_char=";") == "feat: y\n"
    assert cleanup(f"feat: x\n; {CUT_LINE}\nbelow\n", comment_char=";") == "feat: x\n"
    # a comment line glued under the header is gone, so the message passes
    assert isinstance(parse(cleanup("feat: x\n# a comment\n")), Parsed)


# -- check_range and `tether policy check-commits` -----------------------------------------------
def commit(root: Path, message: str) -> str:
    git(root, "commit", "-q", "--allow-empty", "--no-verify", "-m", message)
    return git(root, "rev-parse", "HEAD").strip()


@pytest.fixture
def history(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, list[str]]:
    root = make_repo(tmp_path / "repo")
    monkeypatch.chdir(root)
    ids = [
        commit(root, "feat: first"),
        commit(root, "bad message"),
        commit(root, "fix(core): third\n\nwith a body\n\nRefs #1"),
    ]
    return root, ids


def invoke(group: click.Group, *args: str) -> Result:
    return CliRunner().invoke(group, list(args))


def test_check_range_names_the_bad_commit(history: tuple[Path, list[str]]) -> None:
    root, ids = history
    (finding,) = check_range(root)
    assert finding.commit == ids[1] and finding.header == "bad message"
    assert "does not start with a type" in finding.problem.message
    assert check_range(root, f"{ids[1]}..HEAD") == []


def test_check_commits_fails_on_a_bad_commit(history: tuple[Path, list[str]]) -> None:
    _, ids = history
    result = invoke(policy, "check-commits")
    assert result.exit_code == 1, result.output
    assert f"{ids[1][:8]}  bad message" in result.output
    assert "e.g. feat: bad message" in result.output
    assert "1 of 3 commits do not follow" in result.output
    good = invoke(policy, "check-commits", "HEAD~1..HEAD")
    assert good.exit_code == 0 and "all 1 commits follow Conventional Commits" in good.output
    custom = invoke(policy, "check-commits", "--types", "feat,chore", "HEAD~1..HEAD")
    assert custom.exit_code == 1 and "'fix' is not a commit type" in custom.output


def test_check_commits_defaults_to_what_is_not_pushed(
    history: tuple[Path, list[str]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root, _ = history
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(root), str(clone))
    git(clone, "config", "user.email", "test@example.com")
    git(clone, "config", "user.name", "Test")
    monkeypatch.chdir(clone)
    assert "no commits in @{upstream}..HEAD" in invoke(policy, "check-commits").output
    new = commit(clone, "docs: fine")
    assert "all 1 commits follow" in invoke(policy, "check-commits").output
    commit(clone, "wip")
    result = invoke(policy, "check-commits")
    assert result.exit_code == 1 and "wip" in result.output and new[:8] not in result.output


def test_check_commits_explains_a_bad_range(history: tuple[Path, list[str]]) -> None:
    result = invoke(policy, "check-commits", "nope..HEAD")
    assert isinstance(result.exception, UsageError)
    assert "origin/main..HEAD" in str(result.exception)


def test_a_repository_without_commits_has_nothing_to_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(make_repo(tmp_path / "empty"))
    result = invoke(policy, "check-commits")
    assert result.exit_code == 0 and "nothing to check" in result.output


# -- the hooks, run by git ------------------------------------------------------------------------
@pytest.fixture
def hooked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = make_repo(tmp_path / "repo")
    monkeypatch.chdir(root)
    result = invoke(hooks, "install")
    assert result.exit_code == 0, result.output
    return root


def git_commit(
    root: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["git", "commit", "-q", *args],
        cwd=root,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        check=False,
    )


def test_install_writes_executable_hooks_that_run_this_python(hooked: Path) -> None:
    for name in ("commit-msg", "pre-commit"):
        path = hooked / ".git" / "hooks" / name
        assert os.access(path, os.X_OK)
        text = path.read_text()
        assert text.startswith("#!/bin/sh\n") and os.path.abspath(sys.executable) in text
        assert f"-m tether.cli.hooks {name}" in text
    assert invoke(hooks, "install").exit_code == 0  # again: its own hooks are refreshed


def test_commit_msg_hook_refuses_a_bad_message(hooked: Path) -> None:
    (hooked / "a.txt").write_text("a\n")
    git(hooked, "add", "a.txt")
    refused = git_commit(hooked, "-m", "bad message")
    assert refused.returncode != 0
    assert "does not follow Conventional Commits" in refused.stderr
    assert "e.g. feat: bad message" in refused.stderr
    assert git_commit(hooked, "-m", "feat: good").returncode == 0
    assert git(hooked, "log", "--format=%s") == "feat: good\n"


def test_commit_msg_hook_ignores_what_git_strips(hooked: Path, tmp_path: Path) -> None:
    """An editor leaves comments and `commit -v`'s diff below the scissors: git drops them, and
    so must the check (a comment glued under the header is not a body)."""
    editor = tmp_path / "editor.sh"
    editor.write_text(
        "#!/bin/sh\n"
        f"printf 'feat: from the editor\\n# a comment\\n# {CUT_LINE}\\nno blank line\\n' > \"$1\"\n"
    )
    editor.chmod(0o755)
    (hooked / "a.txt").write_text("a\n")
    git(hooked, "add", "a.txt")
    done = git_commit(hooked, "-v", env={"GIT_EDITOR": str(editor)})
    assert done.returncode == 0, done.stderr
    assert git(hooked, "log", "--format=%B") == "feat: from the editor\n\n"


def test_pre_commit_refuses_a_large_file_until_unstaged(hooked: Path) -> None:
    (hooked / "big.bin").write_bytes(b"\0" * (11 * MiB))
    (hooked / "small.txt").write_text("small\n")
    git(hooked, "add", "big.bin", "small.txt")
    refused = git_commit(hooked, "-m", "feat: add data")
    assert refused.returncode != 0
    assert "big.bin is 11.0 MiB, over the 10.0 MiB limit" in refused.stderr
    assert "track it with `tether add big.bin` instead" in refused.stderr
    assert "small.txt" not in refused.stderr
    git(hooked, "rm", "-q", "--cached", "big.bin")
    done = git_commit(hooked, "-m", "feat: add the small file")
    assert done.returncode == 0, done.stderr


def test_pre_commit_reads_the_limit_from_tether_toml(hooked: Path) -> None:
    (hooked / "tether.toml").write_text("format = 1\n\n[hooks]\nmax_file_mb = 1\n")
    (hooked / "two.bin").write_bytes(b"x" * (2 * MiB))
    git(hooked, "add", "two.bin")
    refused = git_commit(hooked, "-m", "feat: two")
    assert refused.returncode != 0 and "over the 1.0 MiB limit" in refused.stderr


def test_pre_commit_sizes_what_is_staged_not_the_work_tree(hooked: Path) -> None:
    (hooked / "grows.bin").write_bytes(b"x")
    git(hooked, "add", "grows.bin")
    (hooked / "grows.bin").write_bytes(b"x" * (11 * MiB))
    assert check_staged(hooked, max_bytes=10 * MiB) == []
    assert git_commit(hooked, "-m", "feat: small as staged").returncode == 0


def test_pre_commit_refuses_data_a_pointer_tracks(hooked: Path) -> None:
    (hooked / "data").mkdir()
    (hooked / "data" / "rows.csv").write_text("a,b\n")
    (hooked / "data.tether").write_text("format: 1\npath: data\n")
    (hooked / "model.bin.tether").write_text("format: 1\npath: model.bin\n")
    (hooked / "model.bin").write_bytes(b"weights")
    git(hooked, "add", "-f", "data/rows.csv", "model.bin", "data.tether")
    found = {f.path: f.pointer for f in check_staged(hooked, max_bytes=10 * MiB)}
    assert found == {"data/rows.csv": "data.tether", "model.bin": "model.bin.tether"}
    refused = git_commit(hooked, "-m", "feat: data")
    assert refused.returncode != 0
    assert "data/rows.csv is data tracked by data.tether" in refused.stderr
    assert "git rm --cached -- data/rows.csv" in refused.stderr


def test_hooks_import_little(hooked: Path) -> None:
    (hooked / "a.txt").write_text("a\n")
    git(hooked, "add", "a.txt")
    (hooked / "msg").write_text("feat: x\n")
    code = (
        "import runpy, sys\n"
        "for argv in (['pre-commit'], ['commit-msg', 'msg']):\n"
        "    sys.argv = ['hooks', *argv]\n"
        "    try:\n"
        "        runpy.run_module('tether.cli.hooks', run_name='__main__')\n"
        "    except SystemExit as exc:\n"
        "        assert exc.code == 0, exc.code\n"
        "print(sorted(m for m in ('rich', 'sqlalchemy', 'yaml', 'httpx') if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=hooked, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]", out.stderr


def test_an_existing_hook_is_kept_without_force(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = make_repo(tmp_path / "repo")
    monkeypatch.chdir(root)
    mine = root / ".git" / "hooks" / "pre-commit"
    mine.write_text("#!/bin/sh\necho mine\n")
    refused = invoke(hooks, "install")
    assert isinstance(refused.exception, UsageError) and "--force" in str(refused.exception)
    assert mine.read_text() == "#!/bin/sh\necho mine\n"
    assert not (root / ".git" / "hooks" / "commit-msg").exists()  # all or nothing

    forced = invoke(hooks, "install", "--force")
    assert forced.exit_code == 0 and "kept the old hook" in forced.output
    assert (root / ".git" / "hooks" / "pre-commit.bak").read_text() == "#!/bin/sh\necho mine\n"
    assert "tether-hook" in mine.read_text()

    removed = invoke(hooks, "uninstall")
    assert removed.exit_code == 0 and "restored the old hook" in removed.output
    assert mine.read_text() == "#!/bin/sh\necho mine\n"
    assert not (root / ".git" / "hooks" / "commit-msg").exists()
    assert "left" in invoke(hooks, "uninstall").output  # a foreign hook is never removed


def test_install_respects_core_hooks_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = make_repo(tmp_path / "repo")
    monkeypatch.chdir(root)
    git(root, "config", "core.hooksPath", "githooks")
    assert invoke(hooks, "install").exit_code == 0
    assert (root / "githooks" / "commit-msg").exists()
    assert not (root / ".git" / "hooks" / "commit-msg").exists()
    (root / "a.txt").write_text("a\n")
    git(root, "add", "a.txt")
    assert git_commit(root, "-m", "nope").returncode != 0


def test_the_hook_falls_back_to_tether_on_path(hooked: Path, tmp_path: Path) -> None:
    """With the installing Python gone, the hook runs `tether hooks run` from PATH, and with
    neither it refuses the commit and says how to reinstall."""
    hook = hooked / ".git" / "hooks" / "commit-msg"
    hook.write_text(hook.read_text().replace(os.path.abspath(sys.executable), "/gone/python"))
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "tether").write_text(  # stands for the console script: `tether hooks ...`
        "#!/bin/sh\n"
        f'exec "{sys.executable}" -c "import sys; from tether.cli.hooks import hooks; '
        'hooks(sys.argv[2:])" "$@"\n'
    )
    (bin_dir / "tether").chmod(0o755)
    (hooked / "a.txt").write_text("a\n")
    git(hooked, "add", "a.txt")
    with_tether = {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    refused = git_commit(hooked, "-m", "bad", env=with_tether)
    assert refused.returncode != 0 and "does not follow" in refused.stderr
    without = git_commit(hooked, "-m", "feat: fine", env={"PATH": "/usr/bin:/bin"})
    assert without.returncode != 0 and "is gone" in without.stderr
    assert "tether hooks install" in without.stderr
    assert git_commit(hooked, "-m", "feat: fine", env=with_tether).returncode == 0


def test_main_rejects_unknown_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["post-commit"]) == 2
    assert "usage" in capsys.readouterr().err
