"""A project pointed at a team server, as its users meet it: runs upload when they end, `tether
sync` uploads the rest, a second clone sees the first's runs, a down server costs a bounded wait
and loses nothing."""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path

import pytest
from tests.conftest import Tether, git, make_repo, run_python
from tests.server.conftest import Server, blake

from tether.api import Project

pytestmark = pytest.mark.slow


def _train(root: Path, name: str, acc: float) -> str:
    with Project.open(root).start_run(name=name) as run:
        run.log_params({"lr": 0.01, "layers": 3})
        run.log_metric("acc", acc)
        return run.id


def _server_runs(server: Server, project: str, token: str | None = None) -> dict[str, dict]:
    with server.http(token) as http:
        found = http.post(f"/api/v1/projects/{project}/runs/search", json={"include_deleted": True})
        found.raise_for_status()
        return {r["id"]: r for r in found.json()["runs"]}


def test_runs_upload_when_they_end_and_sync_uploads_the_history(
    any_server: Server, repo: Path, tether: Tether
) -> None:
    project = any_server.new_project()
    earlier = [_train(repo, f"before-{i}", 0.5 + i / 10) for i in range(2)]
    token = any_server.token_for(f"w{time.time_ns()}", "writer", project)
    tether("server", "login", any_server.url, "--project", project, "--token", token)

    live = _train(repo, "after-login", 0.97)  # uploads itself as it ends
    assert set(_server_runs(any_server, project)) == {live}
    assert Project.open(repo).runs_not_uploaded() == 2

    out = tether("sync").output
    assert "2 run(s)" in out and "0 run(s) not acknowledged" in out
    on_server = _server_runs(any_server, project)
    assert set(on_server) == {*earlier, live}
    assert on_server[live]["params"] == {"lr": "0.01", "layers": "3"}
    assert on_server[live]["metrics"]["acc"]["last"] == pytest.approx(0.97)
    assert "0 run(s) and 0 object(s)" in tether("sync").output  # nothing twice

    listed = tether("runs", "list", "--where", "metrics.acc > 0.9", "--json").output
    assert live in listed and earlier[0] not in listed  # `runs list` asks the server

    tether("runs", "tag", live, "stage=candidate")
    tether("runs", "delete", earlier[0])
    assert Project.open(repo).runs_not_uploaded() == 2
    tether("sync")
    on_server = _server_runs(any_server, project)
    assert on_server[live]["tags"]["stage"] == "candidate"
    assert on_server[earlier[0]]["deleted"] is True


def test_the_token_stays_out_of_what_is_committed(
    sqlite_server: Server, repo: Path, tether: Tether
) -> None:
    project = sqlite_server.new_project()
    token = sqlite_server.token_for(f"t{time.time_ns()}", "reader", project)
    tether("server", "login", sqlite_server.url, "--project", project, "--token", token, "--shared")
    shared = (repo / "tether.toml").read_text()
    assert sqlite_server.url in shared and token not in shared
    local = repo / ".tether" / "config.toml"
    assert token in local.read_text()
    assert stat.S_IMODE(os.stat(local).st_mode) == 0o600


def test_login_refuses_plain_http_to_another_host_and_a_bad_token(
    sqlite_server: Server, repo: Path, tether: Tether
) -> None:
    refused = tether("server", "login", "http://10.1.2.3:8080", "--project", "x", expect=2)
    assert "https://" in refused.output
    project = sqlite_server.new_project()
    bad = tether(
        "server", "login", sqlite_server.url, "--project", project, "--token", "tth_nope", expect=4
    )
    assert "not a Tether token" in bad.output
    assert (
        not (repo / ".tether" / "config.toml").exists()
        or "server" not in (repo / ".tether" / "config.toml").read_text()
    )


def test_a_second_clone_sees_the_first_clones_runs_and_data(
    sqlite_server: Server,
    repo: Path,
    tether: Tether,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    project = sqlite_server.new_project()
    alice = sqlite_server.token_for(f"alice{time.time_ns()}", "writer", project)
    bob = sqlite_server.token_for(f"bob{time.time_ns()}", "writer", project)
    (repo / "data").mkdir()
    (repo / "data" / "train.csv").write_text("x,y\n1,2\n")
    tether("add", "data")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "data")
    tether("server", "login", sqlite_server.url, "--project", project, "--token", alice, "--shared")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "server")
    first = _train(repo, "alice-run", 0.8)
    tether("sync")

    other = tmp_path / "bob"
    git(tmp_path, "clone", "-q", str(repo), str(other))
    make_repo(other)
    monkeypatch.chdir(other)
    Project.init(other)
    tether("server", "login", sqlite_server.url, "--project", project, "--token", bob)
    second = _train(other, "bob-run", 0.9)
    listed = tether("runs", "list", "--json").output
    assert first in listed and second in listed
    data_id = blake(b"x,y\n1,2\n")
    with sqlite_server.http(bob) as http:
        missing = http.post(f"/api/v1/projects/{project}/objects/missing", json={"ids": [data_id]})
        assert missing.json()["missing"] == []  # alice's sync took the tracked data too


def test_a_down_server_costs_a_bounded_wait_and_loses_nothing(
    sqlite_server: Server, repo: Path, tether: Tether
) -> None:
    project = sqlite_server.new_project()
    token = sqlite_server.token_for(f"d{time.time_ns()}", "writer", project)
    tether("server", "login", sqlite_server.url, "--project", project, "--token", token)
    sqlite_server.stop()
    try:
        started = time.monotonic()
        done = run_python(
            "import tether\n"
            "with tether.start_run(name='offline') as run:\n"
            "    run.log_metric('acc', 0.9)\n"
            "print(run.id)\n",
            repo,
        )
        took = time.monotonic() - started
        assert done.returncode == 0, done.stderr
        assert took < 15, f"a run waited {took:.1f} s on a down server"
        run_id = done.stdout.strip()
        started = time.monotonic()
        tether("status")  # never contacts the server
        assert time.monotonic() - started < 2
        assert Project.open(repo).runs_not_uploaded() == 1
        refused = tether("sync", expect=4)
        assert "did not answer" in refused.output and "nothing is lost" in refused.output
    finally:
        sqlite_server.start()
    assert "1 run(s)" in tether("sync").output
    assert run_id in _server_runs(sqlite_server, project)


def test_a_run_whose_objects_were_not_uploaded_is_refused(
    sqlite_server: Server, repo: Path
) -> None:
    """The server never indexes a run it cannot serve whole."""
    project = sqlite_server.new_project()
    run_id = _train(repo, "partial", 0.5)
    record = Project.open(repo).ws.refs.get(f"runs/{run_id}")[0]
    data = Project.open(repo).ws.store.read_bytes(record)
    with sqlite_server.http() as http:
        http.put(f"/api/v1/projects/{project}/objects/{record}", content=data).raise_for_status()
        refused = http.put(f"/api/v1/projects/{project}/runs/{run_id}", json={"record": record})
        assert refused.status_code == 409 and "upload them first" in refused.json()["message"]
        wrong = http.put(f"/api/v1/projects/{project}/runs/someone-else", json={"record": record})
        assert wrong.status_code in (400, 409)
    assert _server_runs(sqlite_server, project) == {}


def test_the_python_api_searches_the_server(
    sqlite_server: Server, repo: Path, tether: Tether
) -> None:
    project = sqlite_server.new_project()
    token = sqlite_server.token_for(f"p{time.time_ns()}", "writer", project)
    tether("server", "login", sqlite_server.url, "--project", project, "--token", token)
    run_id = _train(repo, "api", 0.99)
    found = Project.open(repo).search_runs("metrics.acc > 0.9", source="server")
    assert [r.id for r in found] == [run_id]
    assert found[0].metrics["acc"].last == pytest.approx(0.99)


def test_status_and_runs_list_say_what_is_not_uploaded_without_asking_the_server(
    sqlite_server: Server, repo: Path, tether: Tether
) -> None:
    project = sqlite_server.new_project()
    token = sqlite_server.token_for(f"s{time.time_ns()}", "writer", project)
    mine = _train(repo, "before-login", 0.1)
    tether("server", "login", sqlite_server.url, "--project", project, "--token", token)
    Project.open(repo).config_set("server.url", "http://127.0.0.1:9", local=True)  # nobody there
    assert "1 run(s) not on the team server yet" in tether("status").output
    assert mine in tether("runs", "list", "--local", "--json").output
    Project.open(repo).config_set("server.url", sqlite_server.url, local=True)
    tether("sync")
    assert "not on the team server" not in tether("status").output


def test_a_teammates_run_is_fetched_from_the_server_for_show_and_diff(
    sqlite_server: Server,
    repo: Path,
    tether: Tether,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    project = sqlite_server.new_project()
    token = sqlite_server.token_for(f"f{time.time_ns()}", "writer", project)
    tether("server", "login", sqlite_server.url, "--project", project, "--token", token)
    theirs = _train(repo, "theirs", 0.7)
    tether("runs", "note", theirs, "a note from their clone")
    tether("sync")

    mine_root = make_repo(tmp_path / "mine")
    monkeypatch.chdir(mine_root)
    Project.init(mine_root)
    tether("server", "login", sqlite_server.url, "--project", project, "--token", token)
    mine = _train(mine_root, "mine", 0.9)
    shown = tether("runs", "show", theirs[:13]).output  # a prefix this clone has never seen
    assert "theirs" in shown and "a note from their clone" in shown
    diff = tether("diff", theirs, mine).output
    assert "acc" in diff
    assert Project.open(mine_root).runs_not_uploaded() == 0  # fetched runs are not re-uploaded
    assert tether("runs", "show", "no-such-run", expect=4).exit_code == 4


def test_sync_sends_big_files_straight_to_s3(pg_server: Server, repo: Path, tether: Tether) -> None:
    project = pg_server.new_project()
    token = pg_server.token_for(f"b{time.time_ns()}", "writer", project)
    big = os.urandom(9 << 20)
    (repo / "model.bin").write_bytes(big)
    tether("add", "model.bin")
    tether("server", "login", pg_server.url, "--project", project, "--token", token)
    tether("sync")
    with pg_server.http() as http:
        assert http.get(f"/api/v1/projects/{project}/objects/{blake(big)}").content == big
        metrics = http.get("/metrics").text
    assert 'route="/api/v1/projects/{project}/uploads/{upload}/commit",status="201"' in metrics


def test_a_running_run_is_seen_live_and_its_sealed_record_wins(
    sqlite_server: Server, repo: Path, tether: Tether
) -> None:
    project = sqlite_server.new_project()
    token = sqlite_server.token_for(f"l{time.time_ns()}", "writer", project)
    tether("server", "login", sqlite_server.url, "--project", project, "--token", token)
    with Project.open(repo).start_run(name="live") as run:
        run.log_param("lr", 0.1)
        for step in range(5):
            run.log_metric("loss", 1.0 / (step + 1), step=step)
        run.log_metric("loss", float("nan"), step=5)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            seen = _server_runs(sqlite_server, project).get(run.id)
            if seen and seen["metrics"].get("loss", {}).get("count") == 6:
                break
            time.sleep(0.2)
        assert seen is not None and seen["status"] == "running"
        assert seen["params"]["lr"] == "0.1"
        assert seen["metrics"]["loss"]["min"] == pytest.approx(1 / 5)
        assert seen["metrics"]["loss"]["last"] == "NaN"
        live_view = dict(seen)
    after = _server_runs(sqlite_server, project)[run.id]
    assert after["status"] == "finished" and after["record"]
    with sqlite_server.http(token) as http:  # a late live view never hides the sealed record
        late = http.put(f"/api/v1/projects/{project}/runs/{run.id}/live", json={
            k: live_view[k] for k in ("id", "name", "experiment", "status", "started", "params")
        })  # fmt: skip
        assert late.json() == {"shown": False}
    assert _server_runs(sqlite_server, project)[run.id]["status"] == "finished"


def test_tether_server_in_a_repository_serves_it_with_no_flags(repo: Path) -> None:
    import subprocess

    import httpx
    from tests.conftest import BIN, _free_port
    from tests.server.conftest import wait_until_up

    mine = _train(repo, "local", 0.42)
    port = _free_port()
    proc = subprocess.Popen(
        [str(BIN / "tether"), "server", "--port", str(port), "--project", "here"],
        cwd=repo,
        start_new_session=True,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until_up(url, proc)
        deadline, found = time.monotonic() + 20, []
        while time.monotonic() < deadline and not found:
            answer = httpx.post(f"{url}/api/v1/projects/here/runs/search", json={})
            found = answer.json().get("runs", []) if answer.status_code == 200 else []
            time.sleep(0.2)
        assert [r["id"] for r in found] == [mine]
        assert (repo / ".tether" / "server" / "server.db").exists()
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def test_lineage_walks_a_teammates_runs_through_the_server(
    sqlite_server: Server,
    repo: Path,
    tether: Tether,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    project = sqlite_server.new_project()
    token = sqlite_server.token_for(f"g{time.time_ns()}", "writer", project)
    tether("server", "login", sqlite_server.url, "--project", project, "--token", token)
    (repo / "raw.csv").write_text("a,b\n1,2\n")
    with Project.open(repo).start_run(name="prepare") as run:
        run.log_input(repo / "raw.csv")
        (repo / "clean.csv").write_text("a,b\n1,2\n# cleaned\n")
        made = run.log_output(repo / "clean.csv")
    tether("sync")

    other = make_repo(tmp_path / "other")
    monkeypatch.chdir(other)
    Project.init(other)
    tether("server", "login", sqlite_server.url, "--project", project, "--token", token)
    shown = tether("lineage", made, "--format", "json").output
    assert run.id in shown and blake(b"a,b\n1,2\n") in shown  # its run and the run's input


def test_a_clone_pulls_the_tracked_data_from_the_server(
    sqlite_server: Server,
    repo: Path,
    tether: Tether,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    project = sqlite_server.new_project()
    token = sqlite_server.token_for(f"d{time.time_ns()}", "writer", project)
    (repo / "data").mkdir()
    for i in range(30):
        (repo / "data" / f"f{i}.txt").write_text(f"row {i}\n")
    (repo / "model.bin").write_bytes(os.urandom(2 << 20))
    tether("add", "data", "model.bin")
    tether("server", "login", sqlite_server.url, "--project", project, "--token", token, "--shared")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "data")
    tether("sync")

    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(repo), str(clone))
    monkeypatch.chdir(clone)
    tether("server", "login", sqlite_server.url, "--project", project, "--token", token)
    out = tether("pull").output
    assert "31 file(s) written" in out
    assert (clone / "data" / "f7.txt").read_text() == "row 7\n"
    assert (clone / "model.bin").read_bytes() == (repo / "model.bin").read_bytes()
    assert "clean" in tether("status").output


def test_logout_forgets_the_token(sqlite_server: Server, repo: Path, tether: Tether) -> None:
    project = sqlite_server.new_project()
    token = sqlite_server.token_for(f"o{time.time_ns()}", "writer", project)
    tether("server", "login", sqlite_server.url, "--project", project, "--token", token)
    assert "server.token" in tether("server", "logout").output
    assert token not in (repo / ".tether" / "config.toml").read_text()
    assert Project.open(repo).runs_not_uploaded() is None
    assert "no server was set" in tether("server", "logout").output


def test_the_token_goes_only_to_the_server_it_was_given_for(
    sqlite_server: Server, repo: Path, tether: Tether, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A teammate's commit that points tether.toml elsewhere, or a TETHER_TOKEN exported for
    another server, never hands a token to a server it was not given for."""
    from tether.teamclient import sync as team

    project = sqlite_server.new_project()
    token = sqlite_server.token_for(f"b{time.time_ns()}", "writer", project)
    tether("server", "login", sqlite_server.url, "--project", project, "--token", token, "--shared")
    ws = Project.open(repo).ws
    assert team.target(ws).token == token
    (repo / "tether.toml").write_text(
        (repo / "tether.toml").read_text().replace(sqlite_server.url, "http://127.0.0.1:9")
    )
    Project.open(repo).server_logout()
    Project.open(repo).config_set("server.token", token, local=True)
    Project.open(repo).config_set("server.token_url", sqlite_server.url, local=True)
    moved = team.target(Project.open(repo).ws)
    assert moved.url == "http://127.0.0.1:9" and moved.token is None
    monkeypatch.setenv("TETHER_TOKEN", "tth_0123456789ab_" + "e" * 43)
    monkeypatch.setenv("TETHER_SERVER_URL", "https://other.example.com")
    assert team.target(Project.open(repo).ws).token is None
    monkeypatch.setenv("TETHER_SERVER_URL", "http://127.0.0.1:9")
    assert team.target(Project.open(repo).ws).token.endswith("e" * 43)
    assert team.token_for("http://10.0.0.5:8080", token, "http://10.0.0.5:8080") is None


def test_a_server_only_a_committed_tether_toml_names_is_never_contacted(
    repo: Path, tether: Tether, monkeypatch: pytest.MonkeyPatch
) -> None:
    """tether.toml is shared content: a teammate's commit naming another machine's server
    (plain http or not) gets none of this clone's runs until this clone logs in to it."""
    from tether.teamclient import sync as team

    with (repo / "tether.toml").open("a") as f:
        f.write('\n[server]\nurl = "https://collector.example.com"\nproject = "p"\n')
    assert team.target(Project.open(repo).ws) is None
    assert "never logged in to" in team.no_server(Project.open(repo).ws)
    with Project.open(repo).start_run(name="kept-here"):
        pass  # its end tries no upload to that server, and the run is kept locally
    assert "kept-here" in tether("runs", "list").output
    assert "never logged in to" in tether("sync", expect=2).output
    monkeypatch.setenv("TETHER_SERVER_URL", "https://collector.example.com")
    assert team.target(Project.open(repo).ws).url == "https://collector.example.com"


def test_sync_fits_its_packs_under_the_servers_body_limit(
    sqlite_server: Server, repo: Path, tether: Tether
) -> None:
    """The session's server takes 4 MiB bodies; 30 outputs of 300 KB make packs of 8 MiB."""
    project = sqlite_server.new_project()
    token = sqlite_server.token_for(f"m{time.time_ns()}", "writer", project)
    with Project.open(repo).start_run(name="many") as run:
        for i in range(30):
            (repo / f"out{i}.bin").write_bytes(os.urandom(300_000))
            run.log_output(repo / f"out{i}.bin")
    tether("server", "login", sqlite_server.url, "--project", project, "--token", token)
    assert "1 run(s)" in tether("sync").output
    assert run.id in _server_runs(sqlite_server, project)


def test_sync_against_a_server_that_answers_nonsense_says_so(repo: Path, tether: Tether) -> None:
    """A loopback server that answers every request with `{}`: a clear error, not a crash."""
    import http.server
    import threading

    class Nonsense(http.server.BaseHTTPRequestHandler):
        def _answer(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        do_GET = do_POST = do_PUT = _answer

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Nonsense)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with Project.open(repo).start_run(name="kept"):
            pass
        url = f"http://127.0.0.1:{server.server_address[1]}"
        Project.open(repo).config_set("server.url", url, local=True)
        Project.open(repo).config_set("server.project", "p", local=True)
        out = tether("sync", expect=4).output
        assert "is it a Tether server" in out
    finally:
        server.shutdown()
