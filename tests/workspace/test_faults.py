"""Bad input and faults: each gets a clear error and loses nothing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.conftest import git, many_files, snapshot, write_files
from tether.api import Project
from tether.errors import CacheWriteError, PathError, PointerError, UnsafePathError

TETHER = [sys.executable, "-c", "from tether.cli.main import main; main()"]


def run_tether(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*TETHER, *args], cwd=cwd, capture_output=True, text=True, check=False)


# -- pointer files --------------------------------------------------------------------------------
def test_pointer_that_is_not_yaml(repo: Path, project: Project, tether) -> None:  # type: ignore[no-untyped-def]
    write_files(repo, {"data/a": "1"})
    project.add(["data"])
    (repo / "data.tether").write_text("format: 1\nid: [oops\n")
    with pytest.raises(PointerError, match="not valid YAML"):
        Project.open(repo).status()
    out = tether("status", expect=4).output
    assert "data.tether is not valid YAML" in out and "git checkout -- data.tether" in out
    # re-adding re-creates it, and the data was never touched
    assert (repo / "data/a").read_text() == "1"
    Project.open(repo).add(["data"])
    assert Project.open(repo).status()[0].state == "clean"


def test_pointer_of_an_unknown_format_version(repo: Path, project: Project) -> None:
    write_files(repo, {"data/a": "1"})
    project.add(["data"])
    text = (repo / "data.tether").read_text().replace("format: 1", "format: 7")
    (repo / "data.tether").write_text(text)
    with pytest.raises(PointerError, match=r"format 7.*upgrade Tether"):
        Project.open(repo).status()


def test_pointer_that_escapes_its_folder(repo: Path, project: Project) -> None:
    write_files(repo, {"data/a": "1"})
    project.add(["data"])
    text = (repo / "data.tether").read_text().replace("path: data", "path: ../../etc")
    (repo / "data.tether").write_text(text)
    with pytest.raises(UnsafePathError, match="governs only the 'data' beside it"):
        Project.open(repo).checkout()


def test_checkout_path_outside_the_repository(repo: Path, project: Project, tmp_path: Path) -> None:
    with pytest.raises(PathError, match="outside the repository"):
        project.checkout([str(tmp_path)])


# -- processes killed mid-write ------------------------------------------------------------------
def _kill_when(proc: subprocess.Popen[bytes], ready: callable, timeout: float = 60) -> bool:  # type: ignore[valid-type]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        if ready():
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            return True
        time.sleep(0.005)
    proc.kill()
    raise AssertionError("the process never reached the point to kill it at")


def _packs_written(repo: Path) -> int:
    folder = repo / ".tether/packs"
    return sum(1 for p in folder.iterdir() if p.suffix == ".pack") if folder.is_dir() else 0


def test_kill_9_during_add_then_fsck_is_clean_and_add_finishes(repo: Path) -> None:
    many_files(repo / "data", 6000, size=4096)  # 24 MB: three 8 MiB packs
    before = snapshot(repo / "data")
    proc = subprocess.Popen([*TETHER, "add", "data"], cwd=repo)
    killed = _kill_when(proc, lambda: _packs_written(repo) >= 1)
    assert killed, "add finished before it could be killed: make the data set bigger"
    assert not (repo / "data.tether").exists()  # no pointer to half-stored data
    fsck = Project.open(repo).fsck()
    assert fsck.ok, fsck
    assert snapshot(repo / "data") == before
    result = Project.open(repo).add(["data"])[0]
    assert result.files == 6000
    assert Project.open(repo).fsck().ok
    assert Project.open(repo).status()[0].state == "clean"


def test_kill_9_during_push_then_push_finishes(repo: Path, tmp_path: Path) -> None:
    many_files(repo / "data", 400, size=200_000 // 4 * 4)  # loose objects: one file each
    project = Project.open(repo)
    project.add(["data"])
    project.add_remote("origin", str(tmp_path / "remote"))
    project.config_set("transfer.jobs", "1")
    proc = subprocess.Popen([*TETHER, "push"], cwd=repo)
    killed = _kill_when(proc, lambda: sum(len(f) for _, _, f in os.walk(tmp_path / "remote")) > 60)
    assert killed, "push finished before it could be killed"
    assert Project.open(repo).fsck().ok
    again = Project.open(repo).push()
    assert 0 < again.objects.objects < 401 and again.objects.already > 0
    # a fresh cache pulls everything back, byte-identical
    project.ws.store.drop(set(project.ws.store.iter_ids()))  # an empty cache
    Project.open(repo).fetch()
    assert Project.open(repo).fsck().ok
    assert Project.open(repo).status()[0].state == "clean"


def test_kill_9_during_checkout_then_checkout_finishes_without_force(repo: Path) -> None:
    many_files(repo / "data", 8000, size=2048)
    before = snapshot(repo / "data")
    Project.open(repo).add(["data"])
    subprocess.run(["rm", "-rf", str(repo / "data")], check=True)
    proc = subprocess.Popen([*TETHER, "checkout"], cwd=repo)
    killed = _kill_when(
        proc, lambda: (repo / "data").is_dir() and sum(1 for _ in (repo / "data").rglob("*")) > 2000
    )
    assert killed, "checkout finished before it could be killed"
    # the half-written files are Tether's own (journalled), not changes to protect
    Project.open(repo).checkout()
    assert snapshot(repo / "data") == before
    assert Project.open(repo).status()[0].state == "clean"
    assert not list((repo / ".tether/journal").iterdir())


def test_a_file_cut_short_by_a_killed_checkout_is_not_mistaken_for_work(repo: Path) -> None:
    write_files(repo, {"data/a.bin": b"A" * 5000, "data/b.bin": b"B" * 5000})
    project = Project.open(repo)
    project.add(["data"])
    subprocess.run(["rm", "-rf", str(repo / "data")], check=True)
    # what `kill -9` in the middle of writing a.bin leaves: its journal and half the file
    (repo / ".tether/journal").mkdir(exist_ok=True)
    (repo / ".tether/journal/checkout-0badc0ffee").write_text("data/a.bin\ndata/b.bin")
    write_files(repo, {"data/a.bin": b"A" * 2048})
    Project.open(repo).checkout()
    assert (repo / "data/a.bin").read_bytes() == b"A" * 5000
    assert not list((repo / ".tether/journal").iterdir())
    # without a journal, the same half file is a change the user made: it is protected
    (repo / "data/a.bin").unlink()
    write_files(repo, {"data/a.bin": b"A" * 2048})
    with pytest.raises(PathError, match="exist nowhere else"):
        Project.open(repo).checkout()


# -- two writers at once -------------------------------------------------------------------------
def test_two_adds_at_once_lose_nothing(repo: Path) -> None:
    many_files(repo / "one", 3000, size=128)
    many_files(repo / "two", 3000, size=96)
    write_files(
        repo, {"one/shared.bin": b"same bytes in both", "two/shared.bin": b"same bytes in both"}
    )
    procs = [subprocess.Popen([*TETHER, "add", name], cwd=repo) for name in ("one", "two", "one")]
    assert [p.wait() for p in procs] == [0, 0, 0]
    project = Project.open(repo)
    assert [(s.target, s.state) for s in project.status()] == [("one", "clean"), ("two", "clean")]
    assert project.fsck().ok
    lines = (repo / ".gitignore").read_text().splitlines()
    assert "/one" in lines and "/two" in lines


# -- a remote that goes away mid-push ------------------------------------------------------------
@contextmanager
def flaky_proxy(upstream: str) -> Iterator[tuple[str, dict[str, int]]]:
    """An HTTP proxy to ``upstream`` that drops every connection once ``state['fail_after']``
    uploads (PUTs) have gone through (until it is set back to a large number)."""
    import http.client
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    from urllib.parse import urlsplit

    target = urlsplit(upstream)
    state = {"seen": 0, "fail_after": 10**9}

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def _forward(self) -> None:
            state["seen"] += self.command == "PUT"
            if state["seen"] > state["fail_after"]:
                self.close_connection = True
                self.connection.shutdown(2)
                return
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            conn = http.client.HTTPConnection(target.hostname, target.port, timeout=30)
            headers = {k: v for k, v in self.headers.items() if k.lower() != "connection"}
            conn.request(self.command, self.path, body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
            self.send_response(resp.status)
            for k, v in resp.getheaders():
                if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                    self.send_header(k, v)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)
            conn.close()

        do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _forward

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", state
    finally:
        server.shutdown()


@pytest.mark.s3
def test_remote_going_away_mid_push(
    repo: Path,
    project: Project,
    s3_endpoint: str,
    s3_bucket: str,
    tether,  # type: ignore[no-untyped-def]
) -> None:
    many_files(repo / "data", 600, size=1024)
    project.add(["data"])
    with flaky_proxy(s3_endpoint) as (url, state):
        project.add_remote("s3", f"s3://{s3_bucket}/store")
        project.config_set("remote.s3.endpoint_url", url)
        project.config_set("remote.s3.config_kwargs", "{retries = {max_attempts = 1}}")
        project.config_set("transfer.pack_size", "65536")  # many packs, so it dies half-way
        project.config_set("transfer.jobs", "1")
        # the push's lock, FORMAT, its published roots, then two packs in flight: at least one
        # pack and its index
        state["fail_after"] = 6
        out = tether("push", expect=4).output
        assert "error: remote s3" in out and "running the command again resumes" in out
        state["fail_after"] = 10**9
        result = Project.open(repo).push()
        assert result.objects.objects > 0 and result.objects.already > 0
    # the data is all there: a new cache fetches it straight from the server
    Project.open(repo).config_set("remote.s3.endpoint_url", s3_endpoint)
    project.ws.store.drop(set(project.ws.store.iter_ids()))  # an empty cache
    assert Project.open(repo).fetch().objects == 601
    assert Project.open(repo).fsck().ok


# -- a cache that cannot be written --------------------------------------------------------------
@contextmanager
def small_filesystem(path: Path, size: str, *, read_only: bool = False) -> Iterator[None]:
    """Mount a tmpfs of ``size`` at ``path`` (root), or fall back to permissions (others)."""
    if os.geteuid() != 0:
        if not read_only:
            pytest.fail("a full filesystem can only be simulated as root (tmpfs)")
        os.chmod(path, 0o555)
        try:
            yield
        finally:
            os.chmod(path, 0o755)
        return
    saved = path.with_name(path.name + ".saved")
    path.rename(saved)
    path.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], check=True)
    try:
        subprocess.run(["cp", "-a", f"{saved}/.", str(path)], check=True)
        if read_only:
            subprocess.run(["mount", "-o", "remount,ro", str(path)], check=True)
        yield
    finally:
        subprocess.run(["umount", "--lazy", str(path)], check=True)
        path.rmdir()
        saved.rename(path)


def test_full_cache_gives_a_clear_error_and_loses_nothing(repo: Path) -> None:
    many_files(repo / "data", 50, size=64 * 1024)  # 3.2 MB into a 1 MB cache
    before = snapshot(repo / "data")
    with small_filesystem(repo / ".tether", "1m"):
        with pytest.raises(CacheWriteError, match="no space left"):
            Project.open(repo).add(["data"])
        assert not (repo / "data.tether").exists()
    assert snapshot(repo / "data") == before
    Project.open(repo).add(["data"])  # with room again, it just works
    assert Project.open(repo).fsck().ok


def test_read_only_cache_gives_a_clear_error(repo: Path, tether) -> None:  # type: ignore[no-untyped-def]
    write_files(repo, {"data/a": "1"})
    with small_filesystem(repo / ".tether", "4m", read_only=True):
        out = tether("add", "data", expect=4).output
        assert "read-only" in out
    assert not (repo / "data.tether").exists()
    assert git(repo, "status", "--porcelain")  # the data is still there, untracked
