# ruff: noqa: F811  (fixtures are imported)
"""Registry and label decisions in a project bound to a team server need the server: they are
made on the team's log and land on the server at once; a down or hung server fails them fast
with nothing recorded, and one the server refuses is not kept by the clone either."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest
from tests.conftest import Tether, git
from tests.prompts.test_labels import versions  # noqa: F401
from tests.registry.conftest import trained  # noqa: F401
from tests.server.conftest import Server
from tests.server.test_teammates import hung_server  # noqa: F401

from tether.api import Project
from tether.errors import RegistryError, ServerUnavailableError

pytestmark = pytest.mark.slow


def _tags(root: Path, pattern: str) -> list[str]:
    return git(root, "tag", "--list", pattern).split()


def _login(tether: Tether, server: Server, project: str, role: str) -> None:
    token = server.token_for(f"{role}{time.time_ns()}", role, project)
    tether("server", "login", server.url, "--project", project, "--token", token)


def test_a_decision_lands_on_the_server_and_a_second_clone_decides_on_top_of_it(
    sqlite_server: Server, versions: Path, tether: Tether, tmp_path: Path
) -> None:
    project = sqlite_server.new_project()
    _login(tether, sqlite_server, project, "writer")
    tether("prompt", "promote", "sentiment@v1.0.0", "--label", "production")  # no push typed
    on_server = git(versions, "ls-remote", "tether", "refs/tags/sentiment#*").split()[1::2]
    assert "refs/tags/sentiment#production#1" in on_server

    other = tmp_path / "other"
    git(tmp_path, "clone", "-q", str(versions), str(other))
    git(other, "tag", "-d", "sentiment#production#1")  # this clone has not seen the label
    Project.init(other)
    token = sqlite_server.token_for(f"bob{time.time_ns()}", "writer", project)
    Project.open(other).server_login(sqlite_server.url, project, token)
    _, done, _ = Project.open(other).prompts.promote("sentiment@v1.1.0", "production")
    assert done.n == 2  # made after the first clone's assignment, which it took first
    on_server = git(other, "ls-remote", "tether", "refs/tags/sentiment#*").split()[1::2]
    assert {"refs/tags/sentiment#production#1", "refs/tags/sentiment#production#2"} <= set(
        on_server
    )


def test_a_hung_server_fails_a_decision_fast_with_nothing_recorded(
    trained: str, repo: Path, hung_server: tuple[str, list[socket.socket]]
) -> None:
    url, taken = hung_server
    Project.open(repo).config_set("server.url", url, local=True)
    Project.open(repo).config_set("server.project", "decisions", local=True)
    with pytest.raises(ServerUnavailableError, match="did not answer within") as refused:
        Project.open(repo).models.register("model", run=trained, path="model.pkl")
    assert "nothing was decided" in str(refused.value)
    assert taken, "the server was not asked"
    assert Project.open(repo).models.state().models == {}
    assert _tags(repo, "model@v*") == []


def test_a_decision_the_server_refuses_is_not_kept_by_the_clone(
    sqlite_server: Server, trained: str, repo: Path, tether: Tether
) -> None:
    project = sqlite_server.new_project()
    _login(tether, sqlite_server, project, "writer")
    Project.open(repo).models.register("model", run=trained, path="model.pkl")
    assert "refs/tags/model@v1" in git(repo, "ls-remote", "tether", "refs/tags/*").split()[1::2]
    log_before = git(repo, "rev-parse", "refs/tether/events/registry").strip()

    _login(tether, sqlite_server, project, "reader")  # the same clone, now a reader's account
    with pytest.raises(RegistryError, match="did not take this decision") as refused:
        Project.open(repo).models.set_alias("model@v1", "champion")
    assert "403" in str(refused.value) or "reader" in str(refused.value)
    models = Project.open(repo).models.state().models
    assert models["model"][1].aliases == set()
    assert git(repo, "rev-parse", "refs/tether/events/registry").strip() == log_before
    assert not (repo / ".tether" / "refs" / "registry" / "model" / "champion").exists()
    assert Project.open(repo).models.verify_audit().problems == []
