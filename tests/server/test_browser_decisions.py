# ruff: noqa: F811  (fixtures are imported)
"""Decisions a browser makes through the team server (`POST .../decisions`): the server makes
them for the account as a clone would, and they pass the same door. Without a root of trust a
label assignment is the account's own; under one every event is signed by the browser's key,
one signature per ask, and the server never signs. A browser key is Ed25519 as WebCrypto makes
it; here the test holds it (the UI's tests sign in a real Chromium)."""

from __future__ import annotations

import base64
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from tests.conftest import Tether, git
from tests.prompts.test_label_backing import rooted_prompts  # noqa: F401
from tests.prompts.test_labels import versions  # noqa: F401
from tests.registry.conftest import trained  # noqa: F401
from tests.registry.test_root_of_trust import Use, keys, rooted, use  # noqa: F401
from tests.server.conftest import Server

from tether.api import Project

pytestmark = pytest.mark.slow


def _pem(key: Ed25519PrivateKey) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def _browser_key(
    tether: Tether, tmp_path: Path, identity: str, role: str, how: str
) -> Ed25519PrivateKey:
    """A browser's key, trusted for ``identity`` with ``role``: in the root of trust (``how``
    = "trust": `tether trust add`, by the root's admin) or in tether.toml ("keys")."""
    key = Ed25519PrivateKey.generate()
    path = tmp_path / f"{identity.split('@')[0]}-browser.pub"
    path.write_text(_pem(key))
    tether(how, {"trust": "add", "keys": "trust"}[how], str(path), "--identity", identity,
           "--role", role)  # fmt: skip
    return key


def decide(
    server: Server, project: str, token: str, key: Ed25519PrivateKey | None = None, **body: Any
) -> httpx.Response:
    """Ask for a decision as the browser's script does: sign what the server asks, ask again."""
    if key is not None:
        body |= {"public_key": _pem(key), "signatures": []}
    with server.http(token) as http:
        for _ in range(8):
            answer = http.post(f"/api/v1/projects/{project}/decisions", json=body)
            if answer.status_code != 200 or "sign" not in answer.json():
                return answer
            assert key is not None, f"an unsigned decision was asked to sign: {answer.json()}"
            signature = key.sign(base64.b64decode(answer.json()["sign"]))
            body["signatures"].append(base64.b64encode(signature).decode())
            body["time"] = answer.json()["time"]
    raise AssertionError("the server kept asking for signatures")


def _login(tether: Tether, server: Server, project: str, role: str) -> None:
    token = server.token_for(f"{role}{time.time_ns()}", role, project)
    tether("server", "login", server.url, "--project", project, "--token", token)


def test_a_writer_promotes_and_rolls_back_in_the_browser_and_clones_see_it(
    sqlite_server: Server, versions: Path, tether: Tether
) -> None:
    project = sqlite_server.new_project()
    _login(tether, sqlite_server, project, "writer")
    tether("prompt", "promote", "sentiment@v1.0.0", "--label", "production")  # from a clone
    user = f"ann{time.time_ns()}"
    ann = sqlite_server.token_for(user, "writer", project)
    made = decide(sqlite_server, project, ann, action="promote", name="sentiment",
                  label="production", version="v1.1.0")  # fmt: skip
    assert made.status_code == 200, made.text
    assert made.json()["decided"] == "sentiment#production -> v1.1.0"
    stale = decide(
        sqlite_server,
        project,
        ann,
        action="rollback",
        name="sentiment",
        label="production",
        version="v1.1.0",
    )  # fmt: skip  (the page said v1.1.0)
    assert stale.status_code == 409 and "gives back v1.0.0 now" in stale.json()["message"]
    back = decide(sqlite_server, project, ann, action="rollback", name="sentiment",
                  label="production", version="v1.0.0")  # fmt: skip
    assert back.json()["decided"] == "sentiment#production rolled back to v1.0.0"

    Project.open(versions).prompts.pull("tether")
    history, problems = Project.open(versions).prompts.history("sentiment")
    assert problems == []
    assert [(a.n, a.version, a.reason) for a in history] == [
        (1, "v1.0.0", "promote"), (2, "v1.1.0", "promote"), (3, "v1.0.0", "rollback"),
    ]  # fmt: skip
    assert [a.actor for a in history[1:]] == [user, user]  # the account decided, unsigned
    with sqlite_server.http() as http:  # the server's audit log names the account
        audit = http.get("/api/v1/audit").json()["events"]
    mine = [e for e in audit if e["action"] == "decision" and e["target"] == project]
    assert sorted((e["actor"], e["detail"]["action"]) for e in mine) == [
        (user, "promote"), (user, "rollback"),
    ]  # fmt: skip
    render = tether("prompt", "render", "sentiment@production", "--var", "review=x").output
    assert "R: x" in render  # the clone serves what the browser decided
    # and the clone decides on top of it
    assert "#4 -> v1.1.0" in tether("prompt", "promote", "sentiment@v1.1.0",
                                    "--label", "production").output  # fmt: skip


def test_under_a_root_the_browser_signs_each_event_and_the_server_signs_nothing(
    sqlite_server: Server, rooted_prompts: Path, tether: Tether, tmp_path: Path
) -> None:
    project = sqlite_server.new_project()
    _login(tether, sqlite_server, project, "admin")  # alice's clone
    key = _browser_key(tether, tmp_path, "dave@example.com", "promoter", "trust")
    tether("prompt", "promote", "sentiment@v1.0.0", "--label", "production")
    dave = sqlite_server.token_for(f"dave{time.time_ns()}", "writer", project)
    ask = {"action": "promote", "name": "sentiment", "label": "production", "version": "v1.1.0"}

    unsigned = decide(sqlite_server, project, dave, **ask)  # no key: the root refuses
    assert unsigned.status_code == 403 and "root of trust" in unsigned.json()["message"]
    stranger = decide(sqlite_server, project, dave, Ed25519PrivateKey.generate(), **ask)
    assert stranger.status_code == 403 and "is not one" in stranger.json()["message"]
    url, signed = f"/api/v1/projects/{project}/decisions", {**ask, "public_key": _pem(key)}
    with sqlite_server.http(dave) as http:  # a signature over other bytes is refused
        first = http.post(url, json={**signed, "signatures": []}).json()
        forged = base64.b64encode(key.sign(b"something else")).decode()
        refused = http.post(url, json={**signed, "time": first["time"], "signatures": [forged]})
    assert refused.status_code == 403 and "does not sign what" in refused.json()["message"]

    made = decide(sqlite_server, project, dave, key, **ask)
    assert made.status_code == 200, made.text
    Project.open(rooted_prompts).prompts.pull("tether")
    history, problems = Project.open(rooted_prompts).prompts.history("sentiment")
    assert problems == []  # the clone's own check of the root's signatures holds
    assert [(a.n, a.version, a.actor) for a in history] == [
        (1, "v1.0.0", "alice@example.com"), (2, "v1.1.0", "dave@example.com"),
    ]  # fmt: skip
    assert "Review: x" in tether("prompt", "render", "sentiment@production",
                                 "--var", "review=x").output  # fmt: skip


def test_an_approver_approves_in_the_browser_and_a_reader_or_writer_cannot(
    sqlite_server: Server, rooted: str, repo: Path, use: Use, tether: Tether, tmp_path: Path
) -> None:
    """Bob approves from his browser: its key, trusted by alice for bob, signs the approval and
    the transition it completes; the gates are the ones a clone checks."""
    project = sqlite_server.new_project()
    _login(tether, sqlite_server, project, "admin")  # alice's clone, the root's admin
    key = _browser_key(tether, tmp_path, "bob@example.com", "approver", "trust")
    tether("sync")
    use("ci")
    tether("model", "attest", "model@v1")
    use("alice")
    tether("model", "request", "model@v1", "--to", "production")
    ask = {"action": "approve", "name": "model@v1", "comment": "looks right"}
    for role in ("reader", "writer"):
        token = sqlite_server.token_for(f"{role}{time.time_ns()}", role, project)
        refused = decide(sqlite_server, project, token, key, **ask)
        assert refused.status_code == 403 and "needs approver" in refused.json()["message"]

    bob = sqlite_server.token_for(f"bob{time.time_ns()}", "approver", project)
    made = decide(sqlite_server, project, bob, key, **ask)
    assert made.status_code == 200, made.text
    assert made.json()["decided"] == "model@v1 -> production approved (approved)"
    Project.open(repo).models.pull("tether")
    state = Project.open(repo).models.state()
    assert state.resolve("model@v1").stage == "production"
    assert [r.approvals for r in state.requests.values()] == [["bob@example.com"]]
    audit = tether("audit", "verify").output  # every event signed by a key of the root
    assert "audit log verified" in audit and "head signed by bob@example.com" in audit
    again = decide(sqlite_server, project, bob, key, **ask)  # nothing left to decide
    assert again.status_code == 409 and "no open transition request" in again.json()["message"]


def test_of_two_browsers_promoting_at_once_exactly_one_wins(
    sqlite_server: Server, versions: Path, tether: Tether
) -> None:
    project = sqlite_server.new_project()
    _login(tether, sqlite_server, project, "writer")
    tether("prompt", "promote", "sentiment@v1.0.0", "--label", "staging")  # brings the versions
    tokens = [sqlite_server.token_for(f"w{i}{time.time_ns()}", "writer", project) for i in (1, 2)]
    start = threading.Barrier(2)
    answers: list[httpx.Response] = []

    def promote(token: str, version: str) -> None:
        start.wait()
        answers.append(decide(sqlite_server, project, token, action="promote", seen=0,
                              name="sentiment", label="production", version=version))  # fmt: skip

    threads = [threading.Thread(target=promote, args=(t, v))
               for t, v in zip(tokens, ("v1.0.0", "v1.1.0"), strict=True)]  # fmt: skip
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(a.status_code for a in answers) == [200, 409], [a.text for a in answers]
    lost = next(a for a in answers if a.status_code == 409).json()["message"]
    assert "reached the server first" in lost
    Project.open(versions).prompts.pull("tether")
    history, problems = Project.open(versions).prompts.history("sentiment")
    assert problems == [] and [a.n for a in history if a.label == "production"] == [1]


def test_a_decision_dated_by_its_page_is_never_backdated_or_early(
    sqlite_server: Server, versions: Path, tether: Tether
) -> None:
    project = sqlite_server.new_project()
    _login(tether, sqlite_server, project, "writer")
    tether("prompt", "promote", "sentiment@v1.0.0", "--label", "production")
    ann = sqlite_server.token_for(f"ann{time.time_ns()}", "writer", project)
    ask = {"action": "promote", "name": "sentiment", "label": "production", "version": "v1.1.0"}
    for when, said in (
        (time.time() - 295, "asked too long ago"),
        (time.time() + 60, "after the server's clock"),
        (time.time() - 60, "before the newest decision"),  # the clone's promote was just now
    ):
        signed = {"signatures": ["A" * 86 + "=="]}  # a later ask: its date is the first one's
        refused = decide(sqlite_server, project, ann, **ask, **signed, time=when)
        assert refused.status_code == 400 and said in refused.json()["message"], refused.text
    for name in ("model@v²", "sentiment\x00", "-x"):  # someone else's input: a refusal, not a 500
        odd = decide(
            sqlite_server, project, ann, action="promote", name=name, label="x", version="v1"
        )
        assert 400 <= odd.status_code < 500, odd.text
    first = decide(sqlite_server, project, ann, **ask, time=time.time() - 100)
    assert first.status_code == 200 and first.json()["time"] > time.time() - 10  # the server's
    unknown = decide(sqlite_server, project, ann, **{**ask, "version": "v9.9.9"})
    assert unknown.status_code == 409
    assert "no registered version 'v9.9.9'" in unknown.json()["message"]
    assert "v1.0.0, v1.1.0" in unknown.json()["message"]


def test_a_project_bound_to_a_repository_with_a_root_takes_its_logs_and_is_held_to_it(
    sqlite_server: Server, rooted_prompts: Path, tether: Tether
) -> None:
    """Its labels and root come with the repository: a browser without a key is refused, not
    let in as if the project had no root (which every clone would then refuse)."""
    tether("prompt", "promote", "sentiment@v1.0.0", "--label", "production")  # alice, signed
    name = f"p-{time.time_ns() % 10**10}"
    with sqlite_server.http() as http:
        http.post("/api/v1/projects", json={"name": name, "git": str(rooted_prompts)})
    writer = sqlite_server.token_for(f"w{time.time_ns()}", "writer", name)
    ask = {"action": "promote", "name": "sentiment", "label": "production", "version": "v1.1.0"}
    refused = decide(sqlite_server, name, writer, **ask, seen=1)
    assert refused.status_code == 403 and "root of trust" in refused.json()["message"]
    with sqlite_server.http() as http:
        refs = http.get(f"/git/{name}.git/info/refs?service=git-upload-pack").text
    assert "refs/tether/events/prompts" in refs and "refs/tether/events/registry" in refs


def test_an_approval_is_of_the_request_the_page_showed_not_of_whatever_is_open_now(
    sqlite_server: Server, rooted: str, repo: Path, use: Use, tether: Tether, tmp_path: Path
) -> None:
    """Bob's page showed a request to staging; alice withdrew it and asked for production.
    Bob's approval names the request he saw, so it is refused, not turned into production."""
    project = sqlite_server.new_project()
    _login(tether, sqlite_server, project, "admin")
    key = _browser_key(tether, tmp_path, "bob@example.com", "approver", "trust")
    use("ci")
    tether("model", "attest", "model@v1")
    use("alice")
    tether("model", "request", "model@v1", "--to", "staging")
    seen = next(iter(Project.open(repo).models.state().requests.values())).id
    tether("model", "reject", "model@v1", "--comment", "wrong stage")  # alice takes it back
    tether("model", "request", "model@v1", "--to", "production")
    bob = sqlite_server.token_for(f"bob{time.time_ns()}", "approver", project)
    stale = decide(sqlite_server, project, bob, key, action="approve", name=seen)
    assert stale.status_code == 409 and "nothing to decide" in stale.json()["message"]
    Project.open(repo).models.pull("tether")
    state = Project.open(repo).models.state()
    assert state.resolve("model@v1").stage is None
    assert sorted(r.status for r in state.requests.values()) == ["open", "rejected"]


def test_without_a_root_the_servers_copy_of_tether_toml_trusts_the_browsers_key(
    sqlite_server: Server, trained: str, keys: dict[str, Any], use: Use, repo: Path,
    tether: Tether, tmp_path: Path,
) -> None:  # fmt: skip
    """No root of trust: keys and policies are tether.toml's, read from the branch the clone
    pushed to the server. Until one is there the server says so, rather than decide under
    defaults; the gates read the run's record from the server's objects."""
    git(repo, "add", "tether.toml")
    git(repo, "commit", "-qm", "chore: keys and policy")
    project = sqlite_server.new_project()
    _login(tether, sqlite_server, project, "admin")
    tether("sync")  # the run the gates read
    tether("model", "register", "model", "--run", trained, "--path", "model.pkl")
    tether("model", "policy", "apply")
    tether("model", "request", "model@v1", "--to", "production")
    key = _browser_key(tether, tmp_path, "bob@example.com", "approver", "keys")
    git(repo, "commit", "-qam", "chore: trust bob's browser")
    bob = sqlite_server.token_for(f"bob{time.time_ns()}", "approver", project)
    ask = {"action": "approve", "name": "model@v1"}
    before = decide(sqlite_server, project, bob, key, **ask)
    assert before.status_code == 409 and "git push tether main" in before.json()["message"]
    git(repo, "push", "-q", "tether", "HEAD:main")
    made = decide(sqlite_server, project, bob, key, **ask)
    assert made.status_code == 200, made.text
    Project.open(repo).models.pull("tether")
    assert Project.open(repo).models.state().resolve("model@v1").stage == "production"


def test_a_write_from_another_sites_page_is_refused(sqlite_server: Server) -> None:
    """A page of any site could post to a server open on loopback: its Origin gives it away."""
    project = sqlite_server.new_project()
    with sqlite_server.http() as http:
        ask = {"action": "rollback", "name": "sentiment", "label": "production"}
        url = f"/api/v1/projects/{project}/decisions"
        evil = http.post(url, json=ask, headers={"Origin": "http://evil.example"})
        assert evil.status_code == 403 and "another site" in evil.json()["message"]
        own = http.post(url, json=ask, headers={"Origin": sqlite_server.url})
        assert own.status_code != 403  # its own pages may (here: nothing to roll back)


def test_a_server_open_on_loopback_answers_only_to_a_loopback_host(tmp_path: Path) -> None:
    """No account yet, so no token is asked: a page whose name was made to resolve to
    127.0.0.1 (DNS rebinding) sends its own name as Host, and is turned away."""
    import asyncio

    from tether.api import ServerSettings
    from tether.asgi import create_app

    settings = ServerSettings(
        f"sqlite:///{tmp_path / 'open.db'}", str(tmp_path / "store"), open_without_accounts=True
    )
    app = create_app(settings)

    async def ask() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8080") as c:
            rebound = await c.post("/api/v1/projects", json={"name": "x"},
                                   headers={"Host": "evil.example:8080"})  # fmt: skip
            return [rebound, await c.get("/api/v1/projects")]

    rebound, listed = asyncio.run(ask())
    assert rebound.status_code == 421
    assert listed.status_code == 200 and listed.json()["projects"] == []
