import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import git, make_repo


def test_init_outside_git_says_how_to_fix(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    tether,  # type: ignore[no-untyped-def]
) -> None:
    monkeypatch.chdir(tmp_path)
    out = tether("init", expect=4).output
    assert "not inside a git repository" in out and "git init" in out


@pytest.fixture
def bare_repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A git repository without Tether; the cwd is inside it."""
    repo = make_repo(tmp_path / "r")
    monkeypatch.chdir(repo)
    return repo


def test_init_is_idempotent_and_ignores_the_cache(bare_repo: Path, tether) -> None:  # type: ignore[no-untyped-def]
    repo = bare_repo
    tether("init")
    toml = (repo / "tether.toml").read_text()
    tether("init")
    assert (repo / "tether.toml").read_text() == toml
    assert (repo / ".gitignore").read_text().splitlines().count("/.tether/") == 1
    assert (repo / ".tether/objects").is_dir()
    status = git(repo, "status", "--porcelain", "-uall")
    assert ".tether/" not in status and "tether.toml" in status


def test_commands_outside_a_project(bare_repo: Path, tether) -> None:  # type: ignore[no-untyped-def]
    out = tether("status", expect=4).output
    assert "not a Tether project" in out and "tether init" in out


def test_new_lays_out_a_project(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    tether,  # type: ignore[no-untyped-def]
) -> None:
    monkeypatch.chdir(tmp_path)
    tether("new", "churn-model")
    root = tmp_path / "churn-model"
    for rel in (
        "data/raw",
        "data/processed",
        "src/churn_model/__init__.py",
        "params.yaml",
        "pipeline.yaml",
        "prompts",
        "evals",
        "models",
        "notebooks",
        "README.md",
        ".gitignore",
        "tether.toml",
        ".tether/objects",
        ".git",
    ):
        assert (root / rel).exists(), rel
    assert "# churn-model" in (root / "README.md").read_text()
    assert "/.tether/" in (root / ".gitignore").read_text()
    assert "already exists" in tether("new", "churn-model", expect=2).output


def test_the_console_script_runs() -> None:
    out = subprocess.run(
        [sys.executable, "-c", "from tether.cli.main import main; main()", "--version"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out.startswith("tether, version ")


def test_progress_bars_are_drawn_on_a_terminal(tmp_path: Path) -> None:
    import os
    import pty

    repo = make_repo(tmp_path / "r")
    (repo / "data").mkdir()
    for i in range(300):
        (repo / "data" / f"f{i}").write_text(str(i))
    cmd = [sys.executable, "-c", "from tether.cli.main import main; main()"]
    subprocess.run([*cmd, "init"], cwd=repo, check=True, capture_output=True)
    leader, follower = pty.openpty()
    proc = subprocess.run(
        [*cmd, "add", "data"], cwd=repo, stderr=follower, stdout=subprocess.PIPE, check=True
    )
    os.close(follower)
    drawn = b""
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:
            break
        if not chunk:
            break
        drawn += chunk
    os.close(leader)
    assert b"adding data" in drawn  # the bar, on the terminal
    assert b"adding data" not in proc.stdout and b"300 files" in proc.stdout
