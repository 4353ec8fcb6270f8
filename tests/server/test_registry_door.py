# ruff: noqa: F811  (the registry's fixtures are imported)
"""The registry and prompt labels through the team server: each project's repository is served
over git's smart HTTP, and every push passes the door. Under a root of trust an unsigned or
unauthorised event is refused there with the reason; of two clients pushing the same move at
once exactly one wins; a reader fetches and cannot push."""

from __future__ import annotations

import subprocess
import threading
from pathlib import Path

import pytest
from tests.conftest import BIN, Tether, git
from tests.prompts.test_label_backing import forge_assignment, rooted_prompts  # noqa: F401
from tests.prompts.test_labels import versions  # noqa: F401
from tests.registry.conftest import trained  # noqa: F401
from tests.registry.test_root_of_trust import Use, forge, keys, rooted, use  # noqa: F401
from tests.server.conftest import Server

from tether.api import Project

pytestmark = pytest.mark.slow


def _remote(root: Path, server: Server, project: str, token: str) -> str:
    url = f"{server.url}/git/{project}.git"
    git(root, "remote", "add", "team", url)
    git(root, "config", f"http.{url}.extraHeader", f"Authorization: Bearer {token}")
    return url


def _raw_push(root: Path, *refs: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["git", "push", "team", *refs], cwd=root, capture_output=True, text=True, check=False
    )


def test_an_unsigned_event_is_refused_at_the_door_with_the_reason(
    sqlite_server: Server, rooted: str, repo: Path, tether: Tether
) -> None:
    project = sqlite_server.new_project()
    admin = sqlite_server.token_for(f"w{id(repo)}", "admin", project)  # a root needs an admin
    _remote(repo, sqlite_server, project, admin)
    tether("model", "push", "--remote", "team")  # the root and a signed registration: accepted
    on_server = git(repo, "ls-remote", "team", "refs/tether/events/registry").split()[0]

    body = {"name": "model", "version": 1, "stage": "production", "request": None, "n": 1}
    forge(Project.open(repo), "model.transition", body, "alice@example.com")
    refused = _raw_push(repo, "refs/tether/events/registry:refs/tether/events/registry")
    assert refused.returncode != 0
    assert "tether: refused" in refused.stderr and "model.transition" in refused.stderr
    assert "not signed" in refused.stderr
    assert git(repo, "ls-remote", "team", "refs/tether/events/registry").split()[0] == on_server
    deleted = _raw_push(repo, ":refs/tether/events/registry")
    assert deleted.returncode != 0


def test_of_two_pushes_of_the_same_move_at_once_exactly_one_wins(
    sqlite_server: Server, trained: str, repo: Path, tether: Tether, tmp_path: Path
) -> None:
    project = sqlite_server.new_project()
    token = sqlite_server.token_for(f"x{id(repo)}", "writer")
    tether("model", "register", "model", "--run", trained, "--path", "model.pkl")
    _remote(repo, sqlite_server, project, token)
    tether("model", "push", "--remote", "team")
    other = tmp_path / "other"
    git(tmp_path, "clone", "-q", str(repo), str(other))
    git(other, "remote", "remove", "origin")
    _remote(other, sqlite_server, project, token)
    for where in (repo, other):  # each clone registers its own model@v2
        (where / "model.pkl").write_bytes(str(where).encode() * 5000)
        with Project.open(where).start_run(name="retrain") as run:
            run.log_output(where / "model.pkl")
        Project.open(where).models.register("model", run=run.id, path="model.pkl")

    results: dict[Path, subprocess.CompletedProcess[str]] = {}
    start = threading.Barrier(2)

    def push(where: Path) -> None:
        start.wait()
        results[where] = subprocess.run(
            [str(BIN / "tether"), "model", "push", "--remote", "team"],
            cwd=where,
            capture_output=True,
            text=True,
            check=False,
        )

    threads = [threading.Thread(target=push, args=(w,)) for w in (repo, other)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    codes = sorted(r.returncode for r in results.values())
    assert codes[0] == 0 and codes[1] != 0, results
    loser = next(r for r in results.values() if r.returncode != 0)
    assert "pull" in loser.stderr + loser.stdout  # the way out is named


def test_a_reader_fetches_and_cannot_push(
    sqlite_server: Server, trained: str, repo: Path, tether: Tether
) -> None:
    project = sqlite_server.new_project()
    tether("model", "register", "model", "--run", trained, "--path", "model.pkl")
    _remote(repo, sqlite_server, project, sqlite_server.token_for(f"r{id(repo)}", "reader"))
    refused = _raw_push(repo, "refs/tether/events/registry:refs/tether/events/registry")
    assert refused.returncode != 0 and "403" in refused.stderr
    assert git(repo, "ls-remote", "team") == ""  # reading works, and there is nothing yet


def test_login_makes_a_tether_remote_whose_token_stays_in_tethers_config(
    sqlite_server: Server, trained: str, repo: Path, tether: Tether
) -> None:
    project = sqlite_server.new_project()
    token = sqlite_server.token_for(f"c{id(repo)}", "writer", project)
    tether("server", "login", sqlite_server.url, "--project", project, "--token", token)
    tether("model", "register", "model", "--run", trained, "--path", "model.pkl")
    tether("model", "push", "--remote", "tether")
    heads = git(repo, "ls-remote", "tether", "refs/tether/events/registry")
    assert heads.strip().endswith("refs/tether/events/registry")
    assert token not in (repo / ".git" / "config").read_text()


def test_an_unsigned_label_assignment_is_refused_at_the_door(
    sqlite_server: Server, rooted_prompts: Path, tether: Tether
) -> None:
    repo = rooted_prompts
    project = sqlite_server.new_project()
    _remote(repo, sqlite_server, project, sqlite_server.token_for(f"p{id(repo)}", "admin"))
    tether("prompt", "promote", "sentiment@v1.0.0", "--label", "production")
    tether("prompt", "push", "sentiment", "--remote", "team")  # signed by a promoter: accepted
    forge_assignment(repo)
    refused = _raw_push(repo, "refs/tether/events/prompts:refs/tether/events/prompts")
    assert refused.returncode != 0
    assert "label.assign" in refused.stderr and "not signed" in refused.stderr


def test_a_service_loads_a_label_from_the_server(
    sqlite_server: Server,
    versions: Path,
    tether: Tether,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from tether.errors import PromptError
    from tether.prompts.runtime import clear_cache, load

    project = sqlite_server.new_project()
    token = sqlite_server.token_for(f"s{id(versions)}", "writer", project)
    tether("server", "login", sqlite_server.url, "--project", project, "--token", token)
    tether("prompt", "promote", "sentiment@v1.1.0", "--label", "production")
    tether("prompt", "push", "sentiment", "--remote", "tether")

    reader = sqlite_server.token_for(f"svc{id(versions)}", "reader", project)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TETHER_PROMPTS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("TETHER_SERVER_URL", sqlite_server.url)
    monkeypatch.setenv("TETHER_TOKEN", reader)
    clear_cache()
    url = f"{sqlite_server.url}/git/{project}.git"
    prompt = load("sentiment", label="production", repo=url, ttl=0)
    assert prompt.version == "v1.1.0"
    monkeypatch.setenv("TETHER_TOKEN", "tth_000000000000_" + "x" * 43)
    monkeypatch.setenv("TETHER_PROMPTS_CACHE", str(tmp_path / "cache2"))
    clear_cache()
    with pytest.raises(PromptError, match="cannot clone"):
        load("sentiment", label="production", repo=url, ttl=0)


def test_an_approval_needs_an_approvers_account_as_well_as_an_approvers_key(
    sqlite_server: Server, rooted: str, repo: Path, use: Use, tether: Tether
) -> None:
    project = sqlite_server.new_project()
    url = _remote(repo, sqlite_server, project, sqlite_server.token_for(f"a{id(repo)}", "admin"))
    tether("model", "push", "--remote", "team")
    writer = sqlite_server.token_for(f"wr{id(repo)}", "writer", project)
    git(repo, "config", f"http.{url}.extraHeader", f"Authorization: Bearer {writer}")
    use("ci")
    tether("model", "attest", "model@v1")
    use("alice")
    tether("model", "request", "model@v1", "--to", "production")
    tether("model", "push", "--remote", "team")  # a request: a writer may hand it in
    use("bob")
    assert "now in production" in tether("model", "approve", "model@v1").output
    refused = tether("model", "push", "--remote", "team", expect=4).output
    assert "model.approve" in refused and "needs the approver role" in refused
    approver = sqlite_server.token_for(f"ap{id(repo)}", "approver", project)
    git(repo, "config", f"http.{url}.extraHeader", f"Authorization: Bearer {approver}")
    tether("model", "push", "--remote", "team")
    with sqlite_server.http() as http:
        pushes = [
            e for e in http.get("/api/v1/audit").json()["events"] if e["action"] == "git.push"
        ]
    assert pushes[-1]["actor"] == f"ap{id(repo)}"


def test_a_prompt_log_without_the_registrys_root_is_refused_at_the_door(
    sqlite_server: Server, rooted_prompts: Path, tether: Tether, tmp_path: Path
) -> None:
    """The root reached the server in the registry's log only (an older clone pushed it so):
    a teammate's prompt log, which never saw the root, cannot bring unguarded assignments."""
    repo = rooted_prompts
    project = sqlite_server.new_project()
    _remote(repo, sqlite_server, project, sqlite_server.token_for(f"r{id(repo)}", "admin"))
    pushed = _raw_push(repo, "refs/tether/events/registry:refs/tether/events/registry")
    assert pushed.returncode == 0, pushed.stderr

    other = tmp_path / "bob"
    git(tmp_path, "clone", "-q", str(repo), str(other))
    git(other, "remote", "remove", "origin")
    _remote(other, sqlite_server, project, sqlite_server.token_for(f"b{id(repo)}", "writer"))
    Project.open(other).prompts.promote("sentiment@v1.0.0", "production")  # no root here
    refused = _raw_push(other, "refs/tether/events/prompts:refs/tether/events/prompts")
    assert refused.returncode != 0
    assert "has a root of trust and this prompt log does not carry it" in refused.stderr

    carried = _raw_push(repo, "refs/tether/events/prompts:refs/tether/events/prompts")
    assert carried.returncode == 0, carried.stderr  # alice's log carries the root: taken


def test_a_hand_made_label_tag_or_a_ref_tether_does_not_keep_is_refused(
    sqlite_server: Server, versions: Path, tether: Tether
) -> None:
    """A writer cannot plant a label no event made, nor hide refs where no clone looks; the
    tags and refs a promotion pushes go through."""
    project = sqlite_server.new_project()
    token = sqlite_server.token_for(f"w{id(versions)}", "writer", project)
    _remote(versions, sqlite_server, project, token)
    tether("prompt", "promote", "sentiment@v1.0.0", "--label", "production")
    tether("prompt", "push", "sentiment", "--remote", "team")  # made by its event: taken
    for name in ("sentiment#production#7", "sentiment##1", "sentiment#production#1#x",
                 "sentiment#production", "sentiment#production#+2"):  # fmt: skip
        git(versions, "tag", "-a", name, "-m", "by hand", "sentiment@v1.1.0^{}")
        planted = _raw_push(versions, f"refs/tags/{name}")
        assert planted.returncode != 0 and "no event of the log made it" in planted.stderr, name
    git(versions, "update-ref", "refs/tether/events/prompts2", "HEAD")
    hidden = _raw_push(versions, "refs/tether/events/prompts2:refs/tether/events/prompts2")
    assert hidden.returncode != 0 and "is not a ref Tether keeps" in hidden.stderr
    tags = git(versions, "ls-remote", "--refs", "team", "refs/tags/sentiment#*").split()[1::2]
    assert tags == ["refs/tags/sentiment#production#1"]


def test_a_tag_on_the_server_never_moves_and_a_repository_it_refuses_makes_no_project(
    sqlite_server: Server, versions: Path, tether: Tether, tmp_path: Path
) -> None:
    project = sqlite_server.new_project()
    token = sqlite_server.token_for(f"m{id(versions)}", "writer", project)
    _remote(versions, sqlite_server, project, token)
    tether("prompt", "promote", "sentiment@v1.0.0", "--label", "production")
    tether("prompt", "push", "sentiment", "--remote", "team")
    git(versions, "tag", "-f", "-a", "sentiment#production#1", "-m", "moved", "sentiment@v1.1.0^{}")
    moved = _raw_push(versions, "--force", "refs/tags/sentiment#production#1")
    assert moved.returncode != 0 and "may not be moved" in moved.stderr

    # nor is a repository whose label tag points elsewhere than its event (this clone's, moved)
    name = f"p-bad{id(tmp_path) % 10**6}"
    with sqlite_server.http() as http:
        made = http.post("/api/v1/projects", json={"name": name, "git": str(versions)})
        assert made.status_code == 400 and "another commit than its event" in made.json()["message"]
        assert http.get(f"/git/{name}.git/info/refs?service=git-upload-pack").status_code == 404
    assert not (Path(sqlite_server.store).parent / "git" / f"{name}.git").exists()
