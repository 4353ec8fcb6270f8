import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import BIN
from tether.api import Project
from tether.config import Config, set_value
from tether.errors import ConfigError


def test_layers_local_over_project_over_defaults_env_over_all(repo: Path) -> None:
    assert Config.load(repo).get("cache.link") == "reflink,copy"
    set_value(repo, "cache.link", "copy", local=False)
    assert Config.load(repo).get("cache.link") == "copy"
    set_value(repo, "cache.link", "hardlink", local=True)
    assert Config.load(repo).get("cache.link") == "hardlink"
    env = {"TETHER_CACHE__LINK": "symlink"}
    assert Config.load(repo, environ=env).get("cache.link") == "symlink"
    assert "hardlink" not in (repo / "tether.toml").read_text()


def test_secrets_never_go_into_tether_toml(repo: Path, project: Project, tether) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError, match="--local"):
        project.config_set("remote.s3.secret_access_key", "AKIAxxxx")
    with pytest.raises(ConfigError, match="password"):
        project.add_remote("db", "s3://user:hunter2@host/bucket")
    project.config_set("remote.s3.secret_access_key", "AKIAxxxx", local=True)
    assert "AKIA" not in (repo / "tether.toml").read_text()
    assert (repo / ".tether/config.toml").stat().st_mode & 0o077 == 0
    assert project.config_get("remote.s3.secret_access_key") == "AKIAxxxx"
    listing = tether("config", "list").output
    assert "AKIAxxxx" not in listing and "remote.s3.secret_access_key = ****" in listing


def test_a_secret_committed_by_hand_is_refused(repo: Path) -> None:
    with open(repo / "tether.toml", "a") as f:
        f.write('\n[remote.s3]\nsecret_access_key = "leaked"\n')
    with pytest.raises(ConfigError, match="looks like a credential"):
        Config.load(repo)


def test_cli_get_set(repo: Path, tether) -> None:  # type: ignore[no-untyped-def]
    tether("config", "set", "transfer.jobs", "4")
    assert tether("config", "get", "transfer.jobs").output.strip() == "4"
    out = tether("config", "get", "nope.key", expect=4).output
    assert "nope.key is not set" in out


def test_bad_link_mode_is_explained(repo: Path, project: Project) -> None:
    with pytest.raises(ConfigError, match="reflink, hardlink, symlink, copy"):
        project.config_set("cache.link", "teleport")
    text = (repo / "tether.toml").read_text()
    (repo / "tether.toml").write_text(text.replace('"reflink,copy"', '"teleport"'))  # by hand
    with pytest.raises(ConfigError, match=r"cache.link = 'teleport' in .*tether.toml"):
        Project.open(repo).ws.config.link_modes()


def test_a_bad_value_is_refused_when_set_and_named_by_file_and_key_when_read(
    repo: Path,
    tether,  # type: ignore[no-untyped-def]
) -> None:
    before = (repo / "tether.toml").read_text()
    out = tether("config", "set", "runs.diff_max_file", "1MB", expect=4).output
    assert "runs.diff_max_file cannot be '1MB'" in out and "whole number of bytes" in out
    assert (repo / "tether.toml").read_text() == before  # nothing written
    (repo / "job.py").write_text("open('ran.txt', 'w').write('ran')\n")
    with open(repo / "tether.toml", "a") as f:  # as a hand edit, or a merge, would write it
        f.write('\n[runs]\ndiff_max_file = "1MB"\n')
    proc = subprocess.run(
        [str(BIN / "tether"), "run", "--", sys.executable, "job.py"],
        cwd=repo, capture_output=True, text=True,
    )  # fmt: skip
    assert proc.returncode == 125 and "internal error" not in proc.stderr
    assert f"runs.diff_max_file = '1MB' in {repo / 'tether.toml'}" in proc.stderr
    assert not (repo / "ran.txt").exists()
    tether("config", "set", "runs.diff_max_file", "1000000")  # the way out the message names
    env = {**os.environ, "TETHER_TRANSFER__JOBS": "many"}
    proc = subprocess.run(
        [str(BIN / "tether"), "run", "--", sys.executable, "job.py"],
        cwd=repo, capture_output=True, text=True, env=env,
    )  # fmt: skip
    assert proc.returncode == 125 and "TETHER_TRANSFER__JOBS" in proc.stderr


def test_config_set_changes_one_line_and_keeps_the_comments(repo: Path, tether) -> None:  # type: ignore[no-untyped-def]
    hand = (
        "# Our team's settings: ask Ana before changing the cache.\n"
        "format = 1\n\n"
        "[cache]\n"
        "# reflink on the build machines' XFS\n"
        'link = "reflink,copy"  # fast\n'
        "jobs = 8\n\n"
        "# where runs go\n"
        "[runs]\n"
        'experiment = "baseline"\n'
    )
    (repo / "tether.toml").write_text(hand)
    tether("config", "set", "cache.link", "copy")
    tether("config", "set", "runs.diff_max_file", "2000000")
    tether("config", "set", "remote.origin.url", "/srv/tether")
    text = (repo / "tether.toml").read_text()
    for comment in ("# Our team's settings", "# reflink on the build", "# where runs go"):
        assert comment in text
    assert text.splitlines()[5] == 'link = "copy"' and "jobs = 8" in text
    assert Config.load(repo).get("runs.experiment") == "baseline"
    assert Config.load(repo).get("runs.diff_max_file") == 2000000
    assert Config.load(repo).get("remote.origin.url") == "/srv/tether"
    (repo / "tether.toml").write_text("# keep me\nformat = 1\ncache = { jobs = 2 }\n")
    tether("config", "set", "cache.link", "copy")  # an inline table: rewritten, still right
    assert (repo / "tether.toml").read_text().startswith("# keep me\n")
    cache = Config.load(repo).section("cache")
    assert (cache["jobs"], cache["link"]) == (2, "copy")
