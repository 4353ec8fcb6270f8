"""What one account's clone does to another's runs on a team server: a run belongs to the
account that first showed it, deletions reach the server even after a purge, teammates' notes
and deletions reach the clones that hold the run, and a hung server is not waited on at every
run's end of a sweep."""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.conftest import Tether, make_repo, run_python
from tests.server.conftest import Server, blake

from tether.api import Project
from tether.teamclient.packs import pack_bytes

pytestmark = pytest.mark.slow


def _train(root: Path, name: str) -> str:
    with Project.open(root).start_run(name=name) as run:
        run.log_metric("acc", 0.5)
        return run.id


def _on_server(server: Server, project: str, run_id: str) -> dict | None:
    with server.http() as http:
        found = http.post(f"/api/v1/projects/{project}/runs/search", json={"include_deleted": True})
        found.raise_for_status()
    return {r["id"]: r for r in found.json()["runs"]}.get(run_id)


def _login(tether: Tether, server: Server, project: str, token: str) -> None:
    tether("server", "login", server.url, "--project", project, "--token", token)


def test_a_run_belongs_to_the_account_that_showed_it_live(
    sqlite_server: Server, repo: Path, tether: Tether, tmp_path: Path
) -> None:
    project = sqlite_server.new_project()
    alice_name, mallory_name = f"alice{time.time_ns()}", f"mallory{time.time_ns()}"
    alice = sqlite_server.token_for(alice_name, "writer", project)
    mallory = sqlite_server.token_for(mallory_name, "writer", project)
    _login(tether, sqlite_server, project, alice)

    # mallory's own sealed record, rewritten to claim the id of alice's run while it runs
    theirs = make_repo(tmp_path / "mallory")
    Project.init(theirs)
    own = _train(theirs, "mallory-run")
    ws = Project.open(theirs).ws
    record = json.loads(ws.store.read_bytes(ws.refs.get(f"runs/{own}")[0]))  # type: ignore[index]

    with Project.open(repo).start_run(name="alice-run") as run:
        run.log_metric("acc", 0.9)
        deadline = time.monotonic() + 10
        while _on_server(sqlite_server, project, run.id) is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _on_server(sqlite_server, project, run.id) is not None, "never shown live"
        forged = json.dumps({**record, "id": run.id, "user": alice_name}).encode()
        with sqlite_server.http(mallory) as http:
            runs = f"/api/v1/projects/{project}/runs/{run.id}"
            http.put(f"/api/v1/projects/{project}/objects/{blake(forged)}", content=forged)
            sealed = http.put(runs, json={"record": blake(forged)})
            assert sealed.status_code == 403, sealed.text
            assert alice_name in sealed.json()["message"]
            live = http.put(f"{runs}/live", json={
                "id": run.id, "name": "x", "experiment": "default", "status": "running",
                "started": time.time(),
            })  # fmt: skip
            assert live.status_code == 403
    after = _on_server(sqlite_server, project, run.id)
    assert after is not None and after["status"] == "finished" and after["name"] == "alice-run"
    assert after["user"] == alice_name  # the account, not what a record claims

    # a record mallory seals under her own new id says mallory, whatever it claims
    claimed = json.dumps({**record, "id": "mallory-claims-alice", "user": alice_name}).encode()
    with sqlite_server.http(mallory) as http:
        http.put(f"/api/v1/projects/{project}/objects/{blake(claimed)}", content=claimed)
        http.put(
            f"/api/v1/projects/{project}/runs/mallory-claims-alice", json={"record": blake(claimed)}
        ).raise_for_status()
        state = http.get(f"/api/v1/projects/{project}/runs/mallory-claims-alice/state").json()
    assert state["by"] == mallory_name and state["uploaded_by"][blake(claimed)] == mallory_name
    shown = _on_server(sqlite_server, project, "mallory-claims-alice")
    assert shown is not None and shown["user"] == mallory_name


def _metric(text: str, name: str) -> float:
    return sum(float(v) for v in re.findall(rf"^{name} ([0-9.e+]+)$", text, re.M))


def test_metrics_count_a_run_and_an_object_once(sqlite_server: Server, repo: Path) -> None:
    """Repeated uploads (a retry, a second sync) are not new runs or bytes stored."""
    project = sqlite_server.new_project()
    blobs = [(blake(b), b) for b in (f"obj {time.time_ns()} {i}".encode() for i in range(3))]
    with sqlite_server.http() as http:

        def counts() -> tuple[float, float, float]:
            text = http.get("/metrics").text
            return (
                _metric(text, "tether_runs_logged_total"),
                _metric(text, "tether_objects_stored_total"),
                _metric(text, "tether_object_bytes_stored_total"),
            )

        before = counts()
        for _ in range(2):
            http.post(f"/api/v1/projects/{project}/packs", content=pack_bytes(blobs))
        after_packs = counts()
        assert after_packs[1] - before[1] == 3
        assert after_packs[2] - before[2] == sum(len(b) for _, b in blobs)  # not the pack body

        Project.open(repo).server_login(sqlite_server.url, project, sqlite_server.admin_token)
        run_id = _train(repo, "once")  # uploads itself as it ends
        ws = Project.open(repo).ws
        record = ws.refs.get(f"runs/{run_id}")[0]  # type: ignore[index]
        for _ in range(2):
            http.put(f"/api/v1/projects/{project}/runs/{run_id}", json={"record": record})
        assert counts()[0] - after_packs[0] == 1


def test_a_run_deleted_and_purged_before_sync_is_deleted_on_the_server(
    sqlite_server: Server, repo: Path, tether: Tether
) -> None:
    project = sqlite_server.new_project()
    never = _train(repo, "never-uploaded")
    token = sqlite_server.token_for(f"p{time.time_ns()}", "writer", project)
    _login(tether, sqlite_server, project, token)
    uploaded = _train(repo, "uploaded")  # uploads itself as it ends
    assert _on_server(sqlite_server, project, uploaded) is not None
    for run_id in (never, uploaded):
        tether("runs", "delete", run_id)
    tether("runs", "purge")
    assert Project.open(repo).runs_not_uploaded() == 1  # the deletion is still to tell
    tether("sync")
    found = _on_server(sqlite_server, project, uploaded)
    assert found is not None and found["deleted"] is True
    assert _on_server(sqlite_server, project, never) is None  # deleted before it went anywhere
    assert Project.open(repo).runs_not_uploaded() == 0


def test_sync_brings_teammates_notes_and_deletions_of_runs_a_clone_holds(
    sqlite_server: Server,
    repo: Path,
    tether: Tether,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    project = sqlite_server.new_project()
    token = sqlite_server.token_for(f"n{time.time_ns()}", "writer", project)
    _login(tether, sqlite_server, project, token)
    noted, doomed = _train(repo, "noted"), _train(repo, "doomed")

    mine = make_repo(tmp_path / "mine")
    monkeypatch.chdir(mine)
    Project.init(mine)
    _login(tether, sqlite_server, project, token)
    for run_id in (noted, doomed):
        assert run_id in tether("runs", "show", run_id).output  # fetched into this clone

    monkeypatch.chdir(repo)
    tether("runs", "note", noted, "checked by the team lead")
    tether("runs", "tag", noted, "stage=candidate")
    tether("runs", "delete", doomed)
    tether("sync")

    monkeypatch.chdir(mine)
    out = tether("sync").output
    assert "2 run(s) brought up to date" in out
    shown = tether("runs", "show", noted).output
    assert "checked by the team lead" in shown and "candidate" in shown
    listed = tether("runs", "list", "--local", "--json").output
    assert noted in listed and doomed not in listed
    assert "brought up to date" not in tether("sync").output  # nothing twice
    assert Project.open(mine).runs_not_uploaded() == 0


@pytest.fixture
def hung_server() -> Iterator[tuple[str, list[socket.socket]]]:
    """A server that accepts connections and never answers; the connections it took."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    taken: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                taken.append(listener.accept()[0])
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}", taken
    listener.close()
    for conn in taken:
        conn.close()


def test_a_sweep_of_runs_waits_on_a_hung_server_once(
    repo: Path, hung_server: tuple[str, list[socket.socket]]
) -> None:
    url, taken = hung_server
    Project.open(repo).config_set("server.url", url, local=True)
    Project.open(repo).config_set("server.project", "sweep", local=True)
    first = _train(repo, "sweep-0")
    contacted = len(taken)
    assert contacted >= 1  # the first run's end tried the server
    sweep = [_train(repo, f"sweep-{i}") for i in range(1, 4)]
    done = run_python(  # another process of the same sweep knows too
        "import tether\n"
        "with tether.start_run(name='sweep-4') as run:\n"
        "    run.log_metric('a', 1)\n",
        repo,
    )
    assert done.returncode == 0, done.stderr
    assert len(taken) == contacted, "later runs' ends waited on the hung server again"
    assert Project.open(repo).runs_not_uploaded() == 5  # nothing lost: all wait for `sync`
    assert {first, *sweep} <= {r.id for r in Project.open(repo).search_runs(source="local")}


def test_run_states_refuse_an_id_that_escapes(sqlite_server: Server) -> None:
    project = sqlite_server.new_project()
    with sqlite_server.http() as http:
        for bad in ("../../secrets", "a/b", ".."):
            answer = http.post(f"/api/v1/projects/{project}/runs/states", json={"ids": [bad]})
            assert answer.status_code == 400, (bad, answer.text)
