"""Shared fixtures: real git repositories in temp folders, the CLI in-process, moto's S3 server."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from hypothesis import HealthCheck, settings

from tether.api import Project
from tether.objects.store import ObjectStore

REQUIRE_SERVICES = os.environ.get("TETHER_REQUIRE_SERVICES") == "1"

# Property tests of parsers of outside content: a fixed budget so `make test` stays well under its
# ten minutes (`HYPOTHESIS_PROFILE=deep` searches longer, by hand).
settings.register_profile(
    "ci",
    max_examples=150,
    deadline=2000,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
settings.register_profile("deep", max_examples=5000, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
BIN = Path(sys.executable).parent


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, check=True, capture_output=True, text=True
    ).stdout


def make_repo(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    git(path, "init", "-q", "-b", "main")
    git(path, "config", "user.email", "test@example.com")
    git(path, "config", "user.name", "Test")
    git(path, "config", "commit.gpgsign", "false")
    return path


def write_files(root: Path, files: dict[str, bytes | str]) -> None:
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content.encode() if isinstance(content, str) else content)


def many_files(root: Path, n: int, size: int = 64, per_dir: int = 100) -> None:
    for i in range(n):
        path = root / f"d{i // per_dir:03d}" / f"f{i:06d}.bin"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(i.to_bytes(4, "big") * (size // 4))


def snapshot(root: Path) -> dict[str, tuple[bytes, int] | str]:
    """Every file under root: bytes and exec bit, or a symlink's target."""
    out: dict[str, tuple[bytes, int] | str] = {}
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            path = Path(dirpath) / name
            rel = path.relative_to(root).as_posix()
            if path.is_symlink():
                out[rel] = os.readlink(path)
            else:
                out[rel] = (path.read_bytes(), os.stat(path).st_mode & 0o111)
    return out


def corrupt_object(store: ObjectStore, oid: str, data: bytes = b"bit rot") -> None:
    """Change an object's bytes in place, loose or packed, as a failing disk would."""
    path = store.loose_path(oid)
    if path is not None:
        os.chmod(path, 0o644)
        path.write_bytes(data)
        return
    name, offset, _ = store.packs.index()[oid]
    pack = store.packs.folder / f"{name}.pack"
    os.chmod(pack, 0o644)
    with open(pack, "r+b") as f:
        f.seek(offset)
        f.write(data[:1] if data[:1] != f.read(1) else b"\x00")
    store.packs.close()


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A git repository with Tether initialised; the cwd is inside it."""
    root = make_repo(tmp_path / "repo")
    monkeypatch.chdir(root)
    Project.init(root)
    return root


@pytest.fixture
def project(repo: Path) -> Project:
    return Project.open(repo)


Tether = Callable[..., Result]


@pytest.fixture
def tether() -> Tether:
    """Run the CLI in-process: ``tether("add", "data")``; fails loudly on an unexpected exit."""
    from tether.cli.main import cli

    def run(*args: str, expect: int = 0) -> Result:
        result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
        assert result.exit_code == expect, (
            f"tether {' '.join(args)} exited {result.exit_code}:\n{result.output}"
        )
        return result

    return run


# -- S3 through moto's server, over real HTTP on loopback ----------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    exe = BIN / "moto_server"
    if not exe.exists():
        if REQUIRE_SERVICES:
            pytest.fail("moto_server is not installed (pip install 'moto[server]')")
        pytest.skip("moto_server is not installed (pip install 'moto[server]'): S3 tests skipped")
    port = _free_port()
    proc = subprocess.Popen(
        [str(exe), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    pytest.fail("moto's S3 server did not start")
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture
def s3_bucket(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh bucket; credentials come from the environment, as a user would set them."""
    import uuid

    import boto3

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    name = f"b-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1").create_bucket(Bucket=name)
    return name


# -- PostgreSQL: the server the machine runs on loopback ------------------------------------------
PG_BASE = os.environ.get("TETHER_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A SQLAlchemy URL on a fresh PostgreSQL schema, dropped afterwards."""
    import uuid

    try:
        import psycopg
    except ImportError:
        if REQUIRE_SERVICES:
            pytest.fail("psycopg is not installed (pip install 'tether-ml[postgres]')")
        pytest.skip("psycopg is not installed: PostgreSQL tests skipped")
    plain = PG_BASE.replace("postgresql+psycopg://", "postgresql://")
    try:
        admin = psycopg.connect(plain, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        if REQUIRE_SERVICES:
            pytest.fail(f"PostgreSQL is not reachable at {plain}: {exc}")
        pytest.skip(f"no PostgreSQL at {plain} ({exc}): PostgreSQL tests skipped")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin.execute(f"CREATE SCHEMA {schema}")
    try:
        yield f"{PG_BASE}?options=-csearch_path%3D{schema}"
    finally:
        admin.execute(f"DROP SCHEMA {schema} CASCADE")
        admin.close()


def run_python(
    code: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run a Python snippet with this interpreter, in ``cwd``."""
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        check=False,
    )
