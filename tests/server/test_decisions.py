# ruff: noqa: F811  (fixtures are imported)
"""Registry and label decisions in a project bound to a team server need the server: they are
made on the team's log and land on the server at once; a down or hung server fails them fast
with nothing recorded, and one the server refuses is not kept by the clone either."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from tests.conftest import Tether, git
from tests.prompts.test_labels import versions  # noqa: F401
from tests.registry.conftest import trained  # noqa: F401
from tests.registry.test_root_of_trust import Use, keys, rooted, use  # noqa: F401
from tests.server.conftest import Server
from tests.server.test_teammates import hung_server  # noqa: F401

from tether import signing
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
    with pytest.raises(
        RegistryError, match="refused this decision, so this clone does not"
    ) as refused:
        Project.open(repo).models.set_alias("model@v1", "champion")
    assert "403" in str(refused.value) or "reader" in str(refused.value)
    models = Project.open(repo).models.state().models
    assert models["model"][1].aliases == set()
    assert git(repo, "rev-parse", "refs/tether/events/registry").strip() == log_before
    assert not (repo / ".tether" / "refs" / "registry" / "model" / "champion").exists()
    assert Project.open(repo).models.verify_audit().problems == []


class Proxy:
    """A loopback TCP relay in front of the server that misbehaves on git pushes only: with
    ``mode`` "lose" it hands a push to the server and drops the answer (the connection is cut
    after the server took it); with "hang" it holds the push and never answers."""

    def __init__(self, port: int, mode: str) -> None:
        self.port, self.mode, self.pushes = port, mode, 0
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.held: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client = self.listener.accept()[0]
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self.port))
            self.held += [client, server]
            pushing = threading.Event()
            threading.Thread(target=self._up, args=(client, server, pushing), daemon=True).start()
            threading.Thread(target=self._down, args=(server, client, pushing), daemon=True).start()

    def _up(self, client: socket.socket, server: socket.socket, pushing: threading.Event) -> None:
        while data := _recv(client):
            if data.startswith(b"POST ") and b"git-receive-pack" in data.split(b"\r\n", 1)[0]:
                self.pushes += 1
                pushing.set()
                if self.mode == "hang":
                    return  # never sent on, never answered
                if self.mode == "die":  # the server is gone: this and every later connection
                    self.listener.close()
                    client.close()
                    return
            server.sendall(data)

    def _down(self, server: socket.socket, client: socket.socket, pushing: threading.Event) -> None:
        while data := _recv(server):
            if pushing.is_set():  # the server answered the push: it took it; the answer is lost
                client.close()
                server.close()
                return
            client.sendall(data)

    def close(self) -> None:
        self.listener.close()
        for conn in self.held:
            conn.close()


def _recv(conn: socket.socket) -> bytes:
    try:
        return conn.recv(1 << 16)
    except OSError:
        return b""


@pytest.fixture
def proxied(sqlite_server: Server, request: pytest.FixtureRequest) -> Iterator[Proxy]:
    proxy = Proxy(int(sqlite_server.url.rsplit(":", 1)[1]), request.param)
    yield proxy
    proxy.close()


def _login_via(tether: Tether, server: Server, proxy: Proxy, project: str, role: str) -> None:
    token = server.token_for(f"{role}{time.time_ns()}", role, project)
    tether("server", "login", proxy.url, "--project", project, "--token", token)


@pytest.mark.parametrize("proxied", ["lose"], indirect=True)
def test_a_decision_whose_answer_was_lost_after_the_server_took_it_is_kept(
    sqlite_server: Server, proxied: Proxy, trained: str, repo: Path, tether: Tether
) -> None:
    project = sqlite_server.new_project()
    _login_via(tether, sqlite_server, proxied, project, "writer")
    Project.open(repo).models.register("model", run=trained, path="model.pkl")
    assert proxied.pushes == 1  # its answer never came back
    with sqlite_server.http() as http:
        refs = http.get(f"/git/{project}.git/info/refs?service=git-upload-pack").text
    assert "refs/tags/model@v1" in refs  # the server holds the decision...
    assert _tags(repo, "model@v*") == ["model@v1"]  # ...and so does the clone, as it should
    assert list(Project.open(repo).models.state().models["model"]) == [1]


@pytest.mark.parametrize("proxied", ["hang", "die"], indirect=True)
def test_a_push_the_server_never_answers_or_dies_in_is_bounded_and_undone(
    sqlite_server: Server,
    proxied: Proxy,
    trained: str,
    repo: Path,
    tether: Tether,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import tether._api_decisions as decisions

    monkeypatch.setattr(decisions, "STALL_S", 2)
    project = sqlite_server.new_project()
    _login_via(tether, sqlite_server, proxied, project, "writer")
    started = time.monotonic()
    with pytest.raises(RegistryError, match="did not take this decision"):
        Project.open(repo).models.register("model", run=trained, path="model.pkl")
    assert time.monotonic() - started < 60  # bounded (git gives up after 2 s without a byte)
    # "die": asking the server whether the push landed fails too, so it is undone here
    assert proxied.pushes >= 1
    assert Project.open(repo).models.state().models == {}
    assert _tags(repo, "model@v*") == []


def test_trust_init_puts_the_root_in_both_logs_on_the_server(
    sqlite_server: Server, use: Use, trained: str, repo: Path, tether: Tether
) -> None:
    project = sqlite_server.new_project()
    _login(tether, sqlite_server, project, "admin")
    said = tether("trust", "init").output
    assert "root version 1 is in force" in said and "The team server has it" in said
    assert "Push it" not in said  # nothing is left to push by hand
    with sqlite_server.http() as http:
        refs = http.get(f"/git/{project}.git/info/refs?service=git-upload-pack").text
    local = {
        ref: git(repo, "rev-parse", ref).strip()
        for ref in ("refs/tether/events/registry", "refs/tether/events/prompts")
    }
    for ref, commit in local.items():
        assert f"{commit} {ref}" in refs, f"{ref} is not on the server as in the clone"


def test_a_teammates_run_is_registered_from_the_team_server(
    sqlite_server: Server, trained: str, repo: Path, tether: Tether, tmp_path: Path
) -> None:
    """Bob registers Ann's run: its record and the model file it wrote come from the server."""
    project = sqlite_server.new_project()
    _login(tether, sqlite_server, project, "writer")
    tether("sync")  # Ann's run and its model.pkl reach the server
    bob = tmp_path / "bob"
    git(tmp_path, "clone", "-q", str(repo), str(bob))
    Project.init(bob)
    token = sqlite_server.token_for(f"bob{time.time_ns()}", "writer", project)
    Project.open(bob).server_login(sqlite_server.url, project, token)
    version = Project.open(bob).models.register("model", run=trained, path="model.pkl")
    assert version.number == 1 and Project.open(bob).ws.store.has(version.object)
    on_server = git(bob, "ls-remote", "tether", "refs/tags/model@v*").split()[1::2]
    assert "refs/tags/model@v1" in on_server


def test_a_signed_release_reaches_the_server_and_its_models_page_verifies_it(
    sqlite_server: Server, rooted: str, repo: Path, tether: Tether
) -> None:
    """Under a root of trust, `model sign` hands the signed statement to the server with the
    decision; the server checks it against the root's keys and the files it holds."""
    project = sqlite_server.new_project()
    _login(tether, sqlite_server, project, "admin")
    tether("sync")  # the run and the model file it wrote
    tether("model", "sign", "model", "1")
    signature = Project.open(repo).models.state().models["model"][1].signature
    with sqlite_server.http() as http:
        assert http.post(f"/api/v1/projects/{project}/objects/missing",
                         json={"ids": [signature]}).json()["missing"] == []  # fmt: skip
        cookie = http.post("/api/v1/session", json={"token": sqlite_server.admin_token}).cookies
        page = httpx.get(f"{sqlite_server.url}/p/{project}/models", cookies=cookie).text
    assert "✓ verified: signed by" in page and "1 file(s) match what was signed" in page


def test_a_root_change_the_server_refuses_leaves_the_clone_as_it_was(
    sqlite_server: Server, rooted: str, repo: Path, tether: Tether, tmp_path: Path
) -> None:
    """The door refuses a writer's root change; the clone's log and the root version it pins
    are both put back, so the clone still works (it did not take a root it never kept)."""
    project = sqlite_server.new_project()
    _login(tether, sqlite_server, project, "admin")
    tether("model", "list")  # the clone's root reaches the server with its first decision
    tether("trust", "policy")  # root version 2, taken by the server: an admin's account
    pinned = (repo / ".tether" / "trust.json").read_text()
    _login(tether, sqlite_server, project, "writer")
    key = signing.generate("dave@example.com", tmp_path / "keys")
    refused = tether("trust", "add", str(key.public_path), "--identity", "dave@example.com",
                     "--role", "promoter", expect=4).output  # fmt: skip
    assert "refused this decision" in refused and "needs the admin role" in refused
    assert (repo / ".tether" / "trust.json").read_text() == pinned
    assert Project.open(repo).models.state().root.version == 2  # type: ignore[union-attr]
    assert "model" in tether("model", "list").output  # not "the log was rolled back"
