"""The HTTP API as a client meets it: tokens and roles, bad bodies, size limits, hostile paths,
verified objects, idempotent writes. Each on SQLite + folder and on PostgreSQL + S3."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from tests.server.conftest import Server, blake

pytestmark = pytest.mark.slow


def test_health_ready_and_metrics_answer(any_server: Server) -> None:
    assert httpx.get(f"{any_server.url}/health").json() == {"status": "ok"}
    assert httpx.get(f"{any_server.url}/ready").json() == {"database": "ok", "store": "ok"}
    with any_server.http() as http:
        http.get("/api/v1/whoami").raise_for_status()
    metrics = httpx.get(f"{any_server.url}/metrics").text
    assert 'tether_http_requests_total{method="GET",route="/api/v1/whoami",status="200"}' in metrics
    assert "tether_http_request_seconds_bucket" in metrics
    doc = httpx.get(f"{any_server.url}/api/v1/openapi.json").json()
    assert "/api/v1/projects/{project}/runs/search" in doc["paths"]


def test_missing_unknown_revoked_and_expired_tokens_are_401_with_the_way_out(
    any_server: Server,
) -> None:
    url = f"{any_server.url}/api/v1/whoami"
    missing = httpx.get(url)
    assert missing.status_code == 401
    assert "tether server login" in missing.json()["message"]
    unknown = httpx.get(url, headers={"Authorization": "Bearer tth_000000000000_" + "x" * 43})
    assert unknown.status_code == 401 and "not known" in unknown.json()["message"]
    assert httpx.get(url, headers={"Authorization": "Basic abc"}).status_code == 401

    token = any_server.token_for(f"u{time.time_ns()}", "reader")
    assert httpx.get(url, headers={"Authorization": f"Bearer {token}"}).status_code == 200
    token_id = token.split("_")[1]
    with any_server.http() as http:
        http.delete(f"/api/v1/tokens/{token_id}").raise_for_status()
    revoked = httpx.get(url, headers={"Authorization": f"Bearer {token}"})
    assert revoked.status_code == 401 and "revoked" in revoked.json()["message"]

    short = any_server.token_for(f"v{time.time_ns()}", "reader", expires_in=0.5)
    time.sleep(0.6)
    expired = httpx.get(url, headers={"Authorization": f"Bearer {short}"})
    assert expired.status_code == 401 and "expired" in expired.json()["message"]


def test_roles_are_per_project_and_a_reader_cannot_write(any_server: Server) -> None:
    mine, other = any_server.new_project(), any_server.new_project()
    reader = any_server.token_for(f"r{time.time_ns()}", "reader", mine)
    data = b"a reader's attempt"
    with any_server.http(reader) as http:
        assert http.post(f"/api/v1/projects/{mine}/objects/missing", json={"ids": []}).is_success
        refused = http.put(f"/api/v1/projects/{mine}/objects/{blake(data)}", content=data)
        assert refused.status_code == 403
        assert "needs writer" in refused.json()["message"]
        assert "tether server user add" in refused.json()["message"]
        elsewhere = http.post(f"/api/v1/projects/{other}/objects/missing", json={"ids": []})
        assert elsewhere.status_code == 403
        assert http.get("/api/v1/users").status_code == 403  # accounts are for admins
        assert http.get("/api/v1/projects").json()["projects"] == [
            p for p in http.get("/api/v1/projects").json()["projects"] if p["name"] == mine
        ]
    with any_server.http() as http:
        missing = http.post(f"/api/v1/projects/{mine}/objects/missing", json={"ids": [blake(data)]})
        assert missing.json()["missing"] == [blake(data)]  # nothing was stored


def test_account_changes_are_audited(any_server: Server) -> None:
    user = f"a{time.time_ns()}"
    token = any_server.token_for(user, "writer")
    with any_server.http() as http:
        http.delete(f"/api/v1/tokens/{token.split('_')[1]}").raise_for_status()
        events = http.get("/api/v1/audit").json()["events"]
    mine = [
        (e["actor"], e["action"]) for e in events if user in (e["target"], e["detail"].get("token"))
    ]
    assert ("root", "user.add") in mine and ("root", "role.set") in mine
    assert ("root", "token.create") in mine
    assert any(e["action"] == "token.revoke" and e["target"] == token.split("_")[1] for e in events)
    assert all(token not in str(e) for e in events)  # the secret itself is never written


def test_an_object_is_stored_only_when_its_bytes_match_its_id(any_server: Server) -> None:
    project = any_server.new_project()
    data = b"the real content"
    base = f"/api/v1/projects/{project}"
    with any_server.http() as http:
        lie = http.put(f"{base}/objects/{blake(data)}", content=b"something else")
        assert lie.status_code == 400 and "does not hash" in lie.json()["message"]
        assert http.post(f"{base}/objects/missing", json={"ids": [blake(data)]}).json()[
            "missing"
        ] == [blake(data)]
        first = http.put(f"{base}/objects/{blake(data)}", content=data)
        again = http.put(f"{base}/objects/{blake(data)}", content=data)  # a retried upload
        assert (first.status_code, first.json()["stored"]) == (201, True)
        assert (again.status_code, again.json()["stored"]) == (200, False)
        assert http.get(f"{base}/objects/{blake(data)}").content == data


def test_a_pack_is_checked_object_by_object_and_a_resent_pack_stores_nothing_twice(
    any_server: Server,
) -> None:
    from tether.api import pack_bytes

    project = any_server.new_project()
    base = f"/api/v1/projects/{project}"
    objects = [(blake(b"x%d" % i), b"x%d" % i) for i in range(50)]
    with any_server.http() as http:
        forged = pack_bytes([*objects[:2], (blake(b"claimed"), b"delivered")])
        refused = http.post(f"{base}/packs", content=forged)
        assert refused.status_code == 400
        assert http.post(f"{base}/objects/missing", json={"ids": [objects[0][0]]}).json()[
            "missing"
        ]  # a pack with one lie stores nothing
        first = http.post(f"{base}/packs", content=pack_bytes(objects)).json()["stored"]
        again = http.post(f"{base}/packs", content=pack_bytes(objects)).json()["stored"]
        assert sorted(first) == sorted(o for o, _ in objects) and again == []
        for oid, data in objects[::7]:
            assert http.get(f"{base}/objects/{oid}").content == data
        assert http.post(f"{base}/packs", content=b"TTHPACK1" + b"\xff" * 8).status_code == 400


def test_malformed_json_and_wrong_types_are_400_naming_the_field(any_server: Server) -> None:
    project = any_server.new_project()
    base = f"/api/v1/projects/{project}"
    with any_server.http() as http:
        broken = http.post(
            f"{base}/runs/search",
            content=b"{not json",
            headers={"Content-Type": "application/json"},
        )
        assert broken.status_code == 400
        wrong = http.post(f"{base}/runs/search", json={"limit": "ten"})
        assert wrong.status_code == 400 and wrong.json()["message"].startswith("limit")
        extra = http.post(f"{base}/objects/missing", json={"ids": [], "sneaky": 1})
        assert extra.status_code == 400 and "sneaky" in extra.json()["message"]
        bad_id = http.post(f"{base}/objects/missing", json={"ids": ["../../etc/passwd"]})
        assert bad_id.status_code == 400 and bad_id.json()["message"].startswith("ids")
        query = http.post(f"{base}/runs/search", json={"where": "metrics.acc >>> 1"})
        assert query.status_code == 400


@pytest.mark.parametrize(
    "path",
    [
        "/objects/..%2F..%2F..%2Fetc%2Fpasswd",
        "/objects/blake3:..%2F..%2Fserver.db",
        "/objects/%2E%2E",
        "/runs/..%2Fx",
    ],
)
def test_paths_that_try_to_escape_are_refused(sqlite_server: Server, path: str) -> None:
    project = sqlite_server.new_project()
    with sqlite_server.http() as http:
        for method in ("GET", "PUT"):
            response = http.request(method, f"/api/v1/projects/{project}{path}", content=b"x")
            assert response.status_code in (400, 404, 405), response.text
        outside = http.get(f"/api/v1/projects/..%2F{project}/objects/missing")
        assert outside.status_code in (400, 404, 405)


def test_a_body_over_the_limit_is_413_and_nothing_is_stored(sqlite_server: Server) -> None:
    project = sqlite_server.new_project()
    big = b"\0" * ((4 << 20) + 1)
    oid = blake(big)
    with sqlite_server.http() as http:
        declared = http.put(f"/api/v1/projects/{project}/objects/{oid}", content=big)
        assert declared.status_code == 413 and "limit" in declared.json()["message"]

        def chunked():  # no Content-Length: counted as it arrives
            for start in range(0, len(big), 1 << 20):
                yield big[start : start + (1 << 20)]

        streamed = http.put(f"/api/v1/projects/{project}/objects/{oid}", content=chunked())
        assert streamed.status_code == 413
        assert http.post(f"/api/v1/projects/{project}/objects/missing", json={"ids": [oid]}).json()[
            "missing"
        ] == [oid]


def test_an_upload_cut_halfway_stores_nothing(any_server: Server) -> None:
    """The client dies mid-request: the server must not count half an object as stored."""
    project = any_server.new_project()
    data = b"y" * 200_000
    oid = blake(data)
    parts = urlsplit(any_server.url)
    with socket.create_connection((parts.hostname, parts.port)) as sock:
        head = (
            f"PUT /api/v1/projects/{project}/objects/{oid} HTTP/1.1\r\n"
            f"Host: {parts.netloc}\r\nAuthorization: Bearer {any_server.admin_token}\r\n"
            f"Content-Length: {len(data)}\r\n\r\n"
        )
        sock.sendall(head.encode() + data[: len(data) // 2])
    time.sleep(0.3)
    with any_server.http() as http:
        assert http.post(f"/api/v1/projects/{project}/objects/missing", json={"ids": [oid]}).json()[
            "missing"
        ] == [oid]
        assert (
            http.put(f"/api/v1/projects/{project}/objects/{oid}", content=data).status_code == 201
        )


def test_two_clients_uploading_the_same_objects_at_once_both_succeed_once(
    pg_server: Server,
) -> None:
    """Two workers, two clients, the same pack and object: every request succeeds, and each
    object is stored exactly once."""
    from concurrent.futures import ThreadPoolExecutor

    from tether.api import pack_bytes

    project = pg_server.new_project()
    objects = [(blake(b"race%d" % i), b"race%d" % i) for i in range(200)]
    big = b"B" * 3_000_000

    def upload(_: int) -> tuple[list[str], bool]:
        with pg_server.http() as http:
            packed = http.post(f"/api/v1/projects/{project}/packs", content=pack_bytes(objects))
            loose = http.put(f"/api/v1/projects/{project}/objects/{blake(big)}", content=big)
            packed.raise_for_status()
            loose.raise_for_status()
            return packed.json()["stored"], loose.json()["stored"]

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(upload, range(4)))
    stored = [oid for packed, _ in results for oid in packed]
    assert sorted(set(stored)) == sorted(o for o, _ in objects)
    assert sum(1 for _, loose in results if loose) >= 1
    with pg_server.http() as http:
        missing = http.post(
            f"/api/v1/projects/{project}/objects/missing",
            json={"ids": [o for o, _ in objects] + [blake(big)]},
        )
        assert missing.json()["missing"] == []
        assert http.get(f"/api/v1/projects/{project}/objects/{blake(big)}").content == big


def test_a_big_object_goes_straight_to_s3_and_counts_only_once_the_server_hashed_it(
    pg_server: Server,
) -> None:
    project = pg_server.new_project()
    data = os.urandom(3 << 20)
    oid = blake(data)
    base = f"/api/v1/projects/{project}"
    with pg_server.http() as http:
        ticket = http.post(f"{base}/uploads", json={"id": oid}).json()
        assert "Authorization" not in ticket["url"] and ticket["url"].startswith("http")
        assert httpx.put(ticket["url"], content=b"not the bytes claimed").status_code == 200
        assert http.post(f"{base}/objects/missing", json={"ids": [oid]}).json()["missing"] == [oid]
        lie = http.post(f"{base}/uploads/{ticket['upload']}/commit")
        assert lie.status_code == 400 and "do not hash" in lie.json()["message"]
        assert http.post(f"{base}/objects/missing", json={"ids": [oid]}).json()["missing"] == [oid]

        ticket = http.post(f"{base}/uploads", json={"id": oid}).json()
        assert httpx.put(ticket["url"], content=data).status_code == 200
        done = http.post(f"{base}/uploads/{ticket['upload']}/commit")
        assert (done.status_code, done.json()["stored"]) == (201, True)
        assert http.post(f"{base}/objects/missing", json={"ids": [oid]}).json()["missing"] == []
        assert http.get(f"{base}/objects/{oid}").content == data
        again = http.post(f"{base}/uploads/{ticket['upload']}/commit")
        assert again.status_code == 400  # the quarantined copy is gone once committed


def test_a_folder_store_takes_no_presigned_uploads(sqlite_server: Server) -> None:
    project = sqlite_server.new_project()
    with sqlite_server.http() as http:
        refused = http.post(f"/api/v1/projects/{project}/uploads", json={"id": blake(b"x")})
        assert refused.status_code == 400 and "not S3" in refused.json()["message"]


def test_a_sealed_run_never_changes_and_amendments_from_two_clones_add_up(
    any_server: Server, repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A hostile writer cannot replace a run's record under its id; two clones' tags merge."""
    from tether.api import Project
    from tether.runs.record import dump_record

    project = any_server.new_project()
    p = Project.open(repo)
    with p.start_run(name="honest") as run:
        run.log_metric("acc", 0.5)
    p.amend_run(run.id, tags={"by": "first"})
    monkeypatch.setenv("TETHER_TOKEN", any_server.admin_token)
    monkeypatch.setenv("TETHER_SERVER_URL", any_server.url)
    p.sync(to=(any_server.url, project))
    base = f"/api/v1/projects/{project}"
    with any_server.http() as http:
        record = p.ws.store.read_bytes(p.ws.refs.get(f"runs/{run.id}")[0])
        forged = record.replace(b'"acc"', b'"acd"')
        put = http.put(f"{base}/objects/{blake(forged)}", content=forged)
        assert put.status_code == 201
        refused = http.put(f"{base}/runs/{run.id}", json={"record": blake(forged)})
        assert refused.status_code == 409 and "never changes" in refused.json()["message"]

        other = dump_record("amendment", {"run": run.id, "time": 2e9, "user": "b", "tags": {
            "second": "yes"}, "untag": [], "note": None})  # fmt: skip
        http.put(f"{base}/objects/{blake(other)}", content=other)
        state = http.get(f"{base}/runs/{run.id}/state").json()
        again = http.put(
            f"{base}/runs/{run.id}",
            json={"record": state["record"], "amendments": [blake(other)]},
        )
        assert again.status_code == 200
        shown = http.post(f"{base}/runs/get", json={"ids": [run.id]}).json()
    (row,) = shown["runs"]
    assert row["tags"]["by"] == "first" and row["tags"]["second"] == "yes"
    assert "acc" in row["metrics"]


def test_a_pack_whose_index_lies_about_sizes_is_a_400(sqlite_server: Server) -> None:
    import json
    import struct

    project = sqlite_server.new_project()
    index = json.dumps([[blake(b"x"), 2**60]]).encode()
    lie = b"TTHPACK1" + struct.pack(">Q", len(index)) + index + b"x"
    with sqlite_server.http() as http:
        answer = http.post(f"/api/v1/projects/{project}/packs", content=lie)
    assert answer.status_code == 400 and "refused" in answer.json()["message"]


def test_a_token_carries_each_of_its_users_roles_until_the_user_is_disabled(
    any_server: Server,
) -> None:
    """A token stands for its user's roles in every project, read as it is used: a role added
    later counts at once, and a disabled user's tokens stop working."""
    from tether.team.accounts import Accounts
    from tether.team.db import open_engine

    one, two = any_server.new_project(), any_server.new_project()
    user = f"w{time.time_ns()}"
    token = any_server.token_for(user, "writer", one)
    url = f"{any_server.url}/api/v1/whoami"
    auth = {"Authorization": f"Bearer {token}"}
    assert httpx.get(url, headers=auth).json()["roles"] == {one: "writer"}
    with any_server.http() as http:
        http.post("/api/v1/users", json={"name": user, "role": "reader", "project": two})
    assert httpx.get(url, headers=auth).json()["roles"] == {one: "writer", two: "reader"}

    engine = open_engine(any_server.index)
    try:
        Accounts(engine).disable_user(user, actor="test")
    finally:
        engine.dispose()
    refused = httpx.get(url, headers=auth)
    assert refused.status_code == 401 and "disabled" in refused.json()["message"]


def test_a_run_the_index_holds_but_the_store_lost_is_taken_again(
    any_server: Server, repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The store restored from a backup older than the database: a run's ref is gone while its
    index row stays. Its next upload is accepted at once, and the run is shown once."""
    from tether.api import Project

    project = any_server.new_project()
    p = Project.open(repo)
    with p.start_run(name="kept") as run:
        run.log_metric("acc", 0.5)
    monkeypatch.setenv("TETHER_TOKEN", any_server.admin_token)
    monkeypatch.setenv("TETHER_SERVER_URL", any_server.url)
    p.sync(to=(any_server.url, project))
    ref = f"{any_server.store.rstrip('/')}/{project}/refs/runs/{run.id}"
    if ref.startswith("s3://"):
        import boto3

        bucket, _, key = ref.removeprefix("s3://").partition("/")
        env = any_server.env
        s3 = boto3.client(
            "s3",
            endpoint_url=env["AWS_ENDPOINT_URL"],
            region_name=env["AWS_DEFAULT_REGION"],
            aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        )
        s3.delete_object(Bucket=bucket, Key=key)
    else:
        Path(ref).unlink()
    base = f"/api/v1/projects/{project}"
    record = p.ws.refs.get(f"runs/{run.id}")[0]  # type: ignore[index]
    with any_server.http() as http:
        again = http.put(f"{base}/runs/{run.id}", json={"record": record})
        assert again.status_code == 200, again.text
        assert http.get(f"{base}/runs/{run.id}/state").json()["record"] == record
        found = http.post(f"{base}/runs/search", json={"where": None}).json()["runs"]
    assert [r["id"] for r in found] == [run.id]
