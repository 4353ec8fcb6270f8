"""Real team servers for the tests: `tether server` under uvicorn on a loopback port, one per
backend per test session (SQLite + a folder; PostgreSQL + moto's S3 with two workers). Each test
makes its own project on them, so tests never see each other's runs."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from tests.conftest import BIN, PG_BASE, REQUIRE_SERVICES, _free_port


@dataclass
class Server:
    url: str
    index: str
    store: str
    admin_token: str
    env: dict[str, str]
    proc: subprocess.Popen[bytes] | None = None
    args: list[str] = field(default_factory=list)

    def http(self, token: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token or self.admin_token}"}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """`tether server ARGS` on this server's database and store."""
        return subprocess.run(
            [str(BIN / "tether"), "server", *args, "--index", self.index, "--store", self.store],
            env=self.env,
            capture_output=True,
            text=True,
            check=check,
        )

    def new_project(self) -> str:
        name = f"p-{uuid.uuid4().hex[:10]}"
        with self.http() as http:
            http.post("/api/v1/projects", json={"name": name}).raise_for_status()
        return name

    def token_for(self, user: str, role: str, project: str = "*", **extra: Any) -> str:
        with self.http() as http:
            http.post(
                "/api/v1/users", json={"name": user, "role": role, "project": project}
            ).raise_for_status()
            made = http.post("/api/v1/tokens", json={"user": user, **extra})
            made.raise_for_status()
            return str(made.json()["token"])

    def start(self) -> None:
        self.proc = subprocess.Popen(self.args, env=self.env, start_new_session=True)
        wait_until_up(self.url, self.proc)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
            self.proc.wait(timeout=20)


def wait_until_up(url: str, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"the server at {url} exited with {proc.returncode}")
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    pytest.fail(f"the server at {url} did not start in {timeout} s")


def launch(index: str, store: str, env: dict[str, str], *extra: str, workers: int = 1) -> Server:
    port = _free_port()
    init = subprocess.run(
        [
            str(BIN / "tether"),
            "server",
            "init",
            "--admin",
            "root",
            "--index",
            index,
            "--store",
            store,
        ],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    token = init.stdout.strip().splitlines()[-1]
    args = [
        str(BIN / "tether"), "server", "--index", index, "--store", store,
        "--port", str(port), "--workers", str(workers), *extra,
    ]  # fmt: skip
    server = Server(f"http://127.0.0.1:{port}", index, store, token, env, args=args)
    server.start()
    return server


@pytest.fixture(scope="session")
def sqlite_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server on SQLite and a folder, with a 4 MiB body limit, for the whole session."""
    folder = tmp_path_factory.mktemp("server")
    env = {**os.environ, "TETHER_TOKEN": ""}
    server = launch(
        f"sqlite:///{folder / 'server.db'}", str(folder / "store"), env, "--max-body", str(4 << 20)
    )
    yield server
    server.stop()


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """A database of its own on the machine's PostgreSQL (shared: never restarted), dropped
    afterwards."""
    try:
        import psycopg
    except ImportError:
        if REQUIRE_SERVICES:
            pytest.fail("psycopg is not installed (pip install 'tether-ml[postgres]')")
        pytest.skip("psycopg is not installed: PostgreSQL server tests skipped")
    plain = PG_BASE.replace("postgresql+psycopg://", "postgresql://")
    try:
        admin = psycopg.connect(plain, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        if REQUIRE_SERVICES:
            pytest.fail(f"PostgreSQL is not reachable at {plain}: {exc}")
        pytest.skip(f"no PostgreSQL at {plain} ({exc}): PostgreSQL server tests skipped")
    name = f"tether_srv_{uuid.uuid4().hex[:10]}"
    admin.execute(f"CREATE DATABASE {name}")
    try:
        yield PG_BASE.rsplit("/", 1)[0] + f"/{name}"
    finally:
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,)
        )
        admin.execute(f"DROP DATABASE IF EXISTS {name}")
        admin.close()


@pytest.fixture(scope="session")
def pg_server(pg_database: str, s3_endpoint: str) -> Iterator[Server]:
    """One server on PostgreSQL and moto's S3 over HTTP, two uvicorn workers."""
    import boto3

    bucket = f"srv-{uuid.uuid4().hex[:10]}"
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": s3_endpoint,
        "TETHER_TOKEN": "",
    }
    boto3.client(
        "s3",
        endpoint_url=s3_endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    ).create_bucket(Bucket=bucket)
    server = launch(pg_database, f"s3://{bucket}/objects", env, workers=2)
    yield server
    server.stop()


@pytest.fixture(params=["sqlite", "pg"])
def any_server(request: pytest.FixtureRequest) -> Server:
    """Each test runs on both backends."""
    server: Server = request.getfixturevalue(f"{request.param}_server")
    return server


def terminate_pg_connections(database: str) -> int:
    import psycopg

    plain = PG_BASE.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(plain, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid()",
            (database.rsplit("/", 1)[1],),
        ).fetchall()
    return len(rows)


def blake(data: bytes) -> str:
    from blake3 import blake3

    return "blake3:" + blake3(data).hexdigest()
