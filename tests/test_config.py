from pathlib import Path

import pytest

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
    project.config_set("cache.link", "teleport")
    with pytest.raises(ConfigError, match="reflink, hardlink, symlink, copy"):
        project.ws.config.link_modes()
