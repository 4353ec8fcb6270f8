"""Remote gc that cannot race or guess (issue 12): pushes publish their roots and hold a lock of
their own, gc holds the remote alone, takes nothing out of use but into a quarantine dated by the
store's clock, deletes only after the grace period, and a push or pull brings back what it needs.

Each scenario runs on a folder remote and on S3. S3 scenarios that need time to pass run against
a moto server inside this process, whose objects' LastModified a test can set back; the others
use the shared ``s3_endpoint`` server. Nothing sleeps: time passes by dating the store's files
back, and interleavings are driven with events and with locks held through the internals."""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Tether, git, make_repo, snapshot, write_files
from tether._types import NoProgress
from tether.api import Project
from tether.errors import FormatError, LockError
from tether.hashing import hash_bytes
from tether.objects.remote import Remote
from tether.objects.remote_locks import LockTimes, hold_gc, hold_push

DAY = 86400.0
TIMES = LockTimes(stale=1800, wait=0)


# -- remotes, and making time pass on them --------------------------------------------------------
class Store:
    """A data remote under test: its URL, its settings, and a way to date its files back."""

    def __init__(self, url: str, settings: dict[str, str], age: Callable[[str, float], None]):
        self.url, self.settings, self._age = url, settings, age

    def configure(self, tether: Tether) -> None:
        """`tether remote add` and its settings, in the repository of the cwd."""
        tether("remote", "add", "origin", self.url)
        for key, value in self.settings.items():
            tether("config", "set", f"remote.origin.{key}", value)

    def remote(self) -> Remote:
        from tether.objects.remote import storage_options

        return Remote("origin", self.url, storage_options(self.settings))

    def files(self, under: str = "") -> list[str]:
        remote = self.remote()
        base = remote.root.strip("/") + "/"
        return sorted(p.lstrip("/")[len(base) :] for p in remote._find(under))

    def age(self, under: str, seconds: float) -> None:
        """Date every file under ``under`` back by ``seconds``, on the store itself."""
        for rel in self.files(under):
            self._age(rel, seconds)


def _folder_store(tmp_path: Path) -> Store:
    root = tmp_path / "data-remote"

    def age(rel: str, seconds: float) -> None:
        path = root / rel
        st = path.stat()
        os.utime(path, (st.st_atime - seconds, st.st_mtime - seconds))

    return Store(str(root), {}, age)


@pytest.fixture(scope="module")
def moto_here() -> Iterator[str]:
    """A moto S3 server in this process: a test can set an object's LastModified back."""
    from moto.server import ThreadedMotoServer

    from tests.conftest import _free_port

    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


def _s3_store(endpoint: str, bucket: str, in_process: bool) -> Store:
    def age(rel: str, seconds: float) -> None:
        assert in_process, "only moto in this process can date files back"
        from moto.core import DEFAULT_ACCOUNT_ID
        from moto.s3.models import s3_backends

        key = s3_backends[DEFAULT_ACCOUNT_ID]["aws"].buckets[bucket].keys[f"store/{rel}"]
        key.last_modified = key.last_modified - timedelta(seconds=seconds)

    return Store(f"s3://{bucket}/store", {"endpoint_url": endpoint}, age)


def _new_bucket(endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    import boto3

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    name = f"g-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(Bucket=name)
    return name


@pytest.fixture(params=["folder", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    """A remote on which time can pass: a folder, or S3 on moto in this process."""
    if request.param == "folder":
        return _folder_store(tmp_path)
    request.applymarker(pytest.mark.s3)
    endpoint = request.getfixturevalue("moto_here")
    monkeypatch = request.getfixturevalue("monkeypatch")
    return _s3_store(endpoint, _new_bucket(endpoint, monkeypatch), in_process=True)


@pytest.fixture(params=["folder", "s3"])
def shared_store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    """A folder remote, or S3 on the shared moto server (``s3_endpoint``)."""
    if request.param == "folder":
        return _folder_store(tmp_path)
    request.applymarker(pytest.mark.s3)
    endpoint = request.getfixturevalue("s3_endpoint")
    monkeypatch = request.getfixturevalue("monkeypatch")
    return _s3_store(endpoint, _new_bucket(endpoint, monkeypatch), in_process=False)


# -- a team: a bare git remote and clones ---------------------------------------------------------
class Team:
    def __init__(self, tmp_path: Path, tether: Tether, monkeypatch: pytest.MonkeyPatch):
        self.tmp, self.tether, self.mp = tmp_path, tether, monkeypatch
        self.origin = tmp_path / "origin.git"
        git(tmp_path, "init", "-q", "--bare", "-b", "main", str(self.origin))

    def founder(self, name: str, store: Store) -> Path:
        """The first clone: `tether init`, the data remote, pushed to git."""
        path = make_repo(self.tmp / name)
        self.at(path)
        self.tether("init")
        store.configure(self.tether)
        git(path, "add", "-A")
        git(path, "commit", "-qm", "tether")
        git(path, "remote", "add", "origin", str(self.origin))
        git(path, "push", "-q", "-u", "origin", "main")
        return path

    def join(self, name: str, branch: str = "main") -> Path:
        path = self.tmp / name
        git(self.tmp, "clone", "-q", "-b", branch, str(self.origin), str(path))
        make_repo(path)
        return path

    def at(self, path: Path) -> None:
        self.mp.chdir(path)


@pytest.fixture
def team(tmp_path: Path, tether: Tether, monkeypatch: pytest.MonkeyPatch) -> Team:
    return Team(tmp_path, tether, monkeypatch)


def _data(path: Path, tag: str) -> dict[str, bytes]:
    """Small files (they travel in a pack) and one large one (alone)."""
    files = {f"data/s{i}.txt": f"{tag} small {i}\n".encode() for i in range(4)}
    files["data/big.bin"] = tag.encode() + b"\x00" * 100_000
    write_files(path, dict(files))
    return files


def _commit(path: Path, message: str = "c") -> None:
    git(path, "add", "-A")
    git(path, "commit", "-qm", message)


def _alice_pushes_a_branch_not_in_git(team: Team, store: Store) -> tuple[Path, dict[str, bytes]]:
    """Alice (the founder) pushes data for a branch she keeps to herself in git, for now."""
    alice = team.founder("alice", store)
    git(alice, "checkout", "-q", "-b", "feature")
    files = _data(alice, "alice")
    team.tether("add", "data")
    _commit(alice, "feature data")
    team.tether("push")
    return alice, files


def _carol_pulls_the_branch(team: Team, alice: Path, files: dict[str, bytes]) -> str:
    git(alice, "push", "-q", "origin", "feature")
    carol = team.join("carol", "feature")
    team.at(carol)
    out = team.tether("pull").output
    assert {p: (carol / p).read_bytes() for p in files} == files
    assert snapshot(carol / "data") == snapshot(alice / "data")
    return out


# -- the promises ----------------------------------------------------------------------------------
def test_remote_gc_never_deletes_what_a_teammate_pushed_for_a_branch_not_yet_in_git(
    team: Team, shared_store: Store
) -> None:
    """Alice pushes data for an unpushed branch; Bob collects the remote with --all-commits;
    Alice pushes the branch; Carol clones it and pulls: every byte is there."""
    alice, files = _alice_pushes_a_branch_not_in_git(team, shared_store)
    bob = team.join("bob")
    team.at(bob)
    out = team.tether("gc", "--remote", "origin", "--all-commits").output
    assert "quarantined 0 object(s)" in out and "deleted 0 object(s)" in out
    _carol_pulls_the_branch(team, alice, files)


def test_what_gc_quarantined_comes_back_when_a_teammate_pulls_it(team: Team, store: Store) -> None:
    """Past its push's grace period, Alice's unmerged data is taken out of use by Bob's gc, not
    deleted; when Carol pulls the branch, the pull brings it back."""
    alice, files = _alice_pushes_a_branch_not_in_git(team, store)
    store.age("roots", 15 * DAY)  # Alice pushed 15 days ago
    bob = team.join("bob")
    team.at(bob)
    out = team.tether("gc", "--remote", "origin", "--all-commits").output
    assert "quarantined 6 object(s)" in out  # 5 files and the folder's manifest
    assert not store.files("objects") and not store.files("packs")
    out = _carol_pulls_the_branch(team, alice, files)
    assert "brought back 6 from the remote's quarantine" in out
    big = Remote.object_path(hash_bytes(files["data/big.bin"]))
    assert big in store.files("objects")  # back in use, for the next reader too


def test_a_push_that_needs_a_quarantined_object_brings_it_back_instead_of_uploading_it(
    team: Team, store: Store
) -> None:
    alice, files = _alice_pushes_a_branch_not_in_git(team, store)
    store.age("roots", 15 * DAY)
    bob = team.join("bob")
    team.at(bob)
    team.tether("gc", "--remote", "origin", "--all-commits")
    team.at(alice)
    out = team.tether("push").output
    assert "pushed 0 object(s)" in out and "brought back 6 from the remote's quarantine" in out
    assert Remote.object_path(hash_bytes(files["data/big.bin"])) in store.files("objects")
    team.at(bob)  # the quarantined copies wait out their grace; nothing is deleted twice
    out = team.tether("gc", "--remote", "origin", "--all-commits").output
    assert "quarantined 0 object(s)" in out and "deleted 0 object(s)" in out
    _carol_pulls_the_branch(team, alice, files)


def test_the_grace_period_is_honoured_by_the_stores_clock_and_only_for_the_unreferenced(
    team: Team, store: Store
) -> None:
    """v1 goes into quarantine; 13 days on (by the quarantine STAMP's time on the store) a gc
    deletes nothing, 15 days on it deletes v1 for good. v2, which a teammate's checkout needs
    again before the grace ends, is brought back rather than deleted."""
    owner = team.founder("owner", store)
    team.tether("config", "set", "gc.grace", "14d")
    v1 = _data(owner, "v1")
    team.tether("add", "data")
    _commit(owner)
    team.tether("push")
    v2 = _data(owner, "v2")
    team.tether("add", "data")
    _commit(owner)
    team.tether("push")
    v3 = _data(owner, "v3")
    team.tether("add", "data")
    _commit(owner)
    team.tether("push")
    store.age("roots", 15 * DAY)  # all three pushes are past their grace
    first = team.tether("gc", "--remote", "origin").output
    assert "quarantined 12 object(s)" in first  # v1 and v2: 5 files and a manifest each
    assert "deleted 0 object(s)" in first

    store.age("quarantine", 13 * DAY)
    early = team.tether("gc", "--remote", "origin").output
    assert "deleted 0 object(s)" in early and "12 wait in quarantine" in early

    git(owner, "checkout", "-q", "HEAD~1", "--", "data.tether")  # v2 is needed again
    store.age("quarantine", 2 * DAY)
    before = store.files()
    dry = team.tether("gc", "--remote", "origin", "--dry-run").output
    assert "would bring back 6 from quarantine" in dry and store.files() == before
    late = team.tether("gc", "--remote", "origin").output
    assert "deleted 6 object(s)" in late and "brought back 6 from quarantine" in late
    assert "quarantined 6 object(s)" in late  # v3, which nothing needs now
    live = store.files("objects") + store.files("packs")
    aside = store.files("quarantine")
    big = {
        tag: Remote.object_path(hash_bytes(v["data/big.bin"]))
        for tag, v in (("v1", v1), ("v2", v2), ("v3", v3))
    }
    assert big["v2"] in live
    assert not [f for f in live + aside if f.endswith(big["v1"])]  # v1 is gone for good
    assert [f for f in aside if f.endswith(big["v3"])]
    team.tether("checkout", "--force")
    assert (owner / "data/big.bin").read_bytes() == v2["data/big.bin"]


class PauseAtUpload(NoProgress):
    """A push's progress callback that holds the push where it starts uploading: it holds its
    remote lock, has published its roots and listed what the remote already has."""

    def __init__(self) -> None:
        self.reached, self.go = threading.Event(), threading.Event()

    def set_size(self, size: int | None) -> None:
        self.reached.set()
        assert self.go.wait(60)


def test_a_gc_started_while_a_push_runs_deletes_nothing_the_push_found_already_there(
    team: Team, store: Store
) -> None:
    """Data pushed long ago that nothing references any more is garbage. Alice's push needs
    it again (she has the same files) and finds it on the remote; while her push is under way
    Bob runs gc: it must not take those objects away from under her. Carol pulls her work."""
    alice = team.founder("alice", store)
    old = _data(alice, "shared")
    team.tether("add", "data")
    team.tether("push")  # never committed: once its grace is over, nothing protects it
    store.age("roots", 15 * DAY)
    (alice / "data.tether").unlink()
    git(alice, "checkout", "-q", "-b", "feature")
    write_files(alice, {"data/new.txt": "alice's own\n"})
    team.tether("add", "data")  # the same files as before, and one more
    _commit(alice, "feature")

    pause = PauseAtUpload()
    pushed: list[Any] = []
    worker = threading.Thread(
        target=lambda: pushed.append(Project.open(alice).push(callback=pause))
    )
    worker.start()
    try:
        assert pause.reached.wait(60)
        bob = team.join("bob")
        team.at(bob)
        team.tether("config", "set", "gc.lock_wait", "0s", "--local")
        out = team.tether("gc", "--remote", "origin", "--all-commits", expect=4).output
        assert "push(es) to remote origin are under way" in out
        assert "run gc again when they are done" in out
    finally:
        pause.go.set()
        worker.join(60)
    assert pushed and pushed[0].objects.already == 5  # the 5 files it found there
    out = team.tether("gc", "--remote", "origin", "--all-commits").output
    assert "quarantined 1 object(s)" in out  # only the old folder's manifest: nothing needs it
    assert Remote.object_path(hash_bytes(old["data/big.bin"])) in store.files("objects")
    _carol_pulls_the_branch(team, alice, {**old, "data/new.txt": b"alice's own\n"})


def test_a_push_refuses_while_a_gc_holds_the_remote_and_says_why(
    team: Team, shared_store: Store
) -> None:
    alice = team.founder("alice", shared_store)
    team.tether("config", "set", "gc.lock_wait", "0s", "--local")
    _data(alice, "v1")
    team.tether("add", "data")
    with hold_gc(shared_store.remote(), TIMES):  # Bob's gc, under way
        out = team.tether("push", expect=4).output
        assert "is being garbage-collected by" in out and "run the command again" in out
        assert not shared_store.files("packs") and not shared_store.files("roots")
    team.tether("push")
    assert shared_store.files("packs") and not shared_store.files("locks")


def test_a_gc_waits_for_a_live_push_then_runs_and_a_dead_push_blocks_nobody(
    store: Store,
) -> None:
    remote = store.remote()
    push = hold_push(remote, TIMES)
    waited: list[float] = []

    def push_finishes(seconds: float) -> None:  # called where gc would sleep
        waited.append(seconds)
        push.release()

    held = hold_gc(remote, LockTimes(stale=1800, wait=600), sleep=push_finishes)
    assert len(waited) == 1  # it waited once, and went on when the push was done
    held.release()

    dead = hold_push(remote, LockTimes(stale=1800, wait=0, beat=3600))
    store.age("locks", 2 * 3600)  # its last refresh was 2 h ago, by the store's clock
    held = hold_gc(remote, TIMES)  # no wait: the dead push lock is removed on the way
    assert len(store.files("locks")) == 1
    with pytest.raises(LockError, match="was removed while this command held it"):
        dead.refresh()
    dead.release()
    held.release()
    assert not store.files("locks")


def test_only_one_gc_holds_a_remote_at_a_time(shared_store: Store) -> None:
    remote = shared_store.remote()
    with hold_gc(remote, TIMES), pytest.raises(LockError, match="is already being collected by"):
        hold_gc(shared_store.remote(), TIMES)
    with hold_gc(remote, TIMES):
        pass


def test_a_stale_lock_owner_cannot_remove_the_lock_someone_else_now_holds(store: Store) -> None:
    """Ann's gc stalls for two hours: her lock is dead, Ben's gc removes it and takes the
    remote. When Ann wakes up, releasing (or refreshing) her lock leaves Ben's alone."""
    ann = hold_gc(store.remote(), LockTimes(stale=1800, wait=0, beat=3600))
    store.age("locks", 2 * 3600)
    ben = hold_gc(store.remote(), TIMES)
    with pytest.raises(LockError, match="was removed while this command held it"):
        ann.refresh()
    ann.release()
    locks = store.files("locks")
    assert locks == (
        [f"locks/gc/owner-{ben.token}.json"] if store.remote().is_local else ["locks/gc"]
    )
    with pytest.raises(LockError, match="already being collected"):
        hold_gc(store.remote(), TIMES)  # Ben's lock still holds
    ben.release()
    assert not store.files("locks")


def test_a_push_lock_is_kept_alive_by_its_heartbeat(store: Store) -> None:
    push = hold_push(store.remote(), LockTimes(stale=1800, wait=0, beat=0.01))
    store.age("locks", 2 * 3600)  # as if it had not been refreshed for 2 h
    for _ in range(2):  # the first may be a refresh that wrote before the aging
        push.refreshed.clear()
        assert push.refreshed.wait(30)  # the heartbeat wrote it again
    with pytest.raises(LockError, match="push\\(es\\) to remote origin are under way"):
        hold_gc(store.remote(), TIMES)
    push.release()
    assert not store.files("locks")


def test_conditional_create_and_delete_are_honoured_by_the_s3_server(
    s3_endpoint: str, s3_bucket: str
) -> None:
    """What the gc lock rests on: moto (and S3) refuse a second If-None-Match create and a
    delete whose If-Match no longer matches."""
    import boto3
    from botocore.exceptions import ClientError

    s3 = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    first = s3.put_object(Bucket=s3_bucket, Key="k", Body=b"1", IfNoneMatch="*")
    with pytest.raises(ClientError, match="PreconditionFailed"):
        s3.put_object(Bucket=s3_bucket, Key="k", Body=b"2", IfNoneMatch="*")
    s3.put_object(Bucket=s3_bucket, Key="k", Body=b"3", IfMatch=first["ETag"])
    with pytest.raises(ClientError, match="PreconditionFailed"):
        s3.delete_object(Bucket=s3_bucket, Key="k", IfMatch=first["ETag"])
    assert s3.get_object(Bucket=s3_bucket, Key="k")["Body"].read() == b"3"


def test_a_published_roots_file_gc_cannot_read_stops_it(team: Team, store: Store) -> None:
    alice = team.founder("alice", store)
    _data(alice, "v1")
    team.tether("add", "data")
    team.tether("push")
    remote = store.remote()
    remote.write_bytes("roots/bogus", b'{"tether":"roots","format":1,"ids":["not an id"]}')
    with pytest.raises(FormatError, match=r"published roots roots/bogus .* is corrupt"):
        Project.open(alice).gc(remote="origin")
    assert not store.files("quarantine") and not store.files("locks")


def test_every_remote_lock_is_gone_after_push_pull_and_gc(team: Team, store: Store) -> None:
    alice = team.founder("alice", store)
    _data(alice, "v1")
    team.tether("add", "data")
    _commit(alice)
    team.tether("push")
    team.tether("gc", "--remote", "origin")
    assert not store.files("locks")


def test_the_grace_period_is_a_duration_in_tether_toml(team: Team, tmp_path: Path) -> None:
    from tether.config import duration_seconds

    team.founder("owner", _folder_store(tmp_path))
    team.tether("config", "set", "gc.grace", "30d")
    assert 'grace = "30d"' in Path("tether.toml").read_text()
    out = team.tether("config", "set", "gc.grace", "a fortnight", expect=4).output
    assert "gc.grace cannot be 'a fortnight'" in out and "e.g. 14d" in out
    assert [duration_seconds(v) for v in ("14d", "12h", "30m", "90s", "2w", 5)] == [
        14 * DAY,
        12 * 3600,
        1800,
        90,
        14 * DAY,
        5,
    ]


def test_a_pull_survives_a_gc_deleting_a_quarantine_batch_it_listed(
    team: Team, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Carol's pull lists the remote; before it reads the quarantine's pack indexes, Bob's gc
    deletes the expired batch. The pull skips the batch that went and checks out her data."""
    _alice_pushes_a_branch_not_in_git(team, store)
    store.age("roots", 15 * DAY)
    bob = team.join("bob")
    team.at(bob)
    team.tether("gc", "--remote", "origin", "--all-commits")
    assert store.files("quarantine")
    carol = team.join("carol")
    team.at(carol)
    read_many = Remote.read_many

    def gc_deletes_the_batch_first(self: Remote, rels: list[str]) -> dict[str, bytes]:
        if any(r.startswith("quarantine/") for r in rels) and store.files("quarantine"):
            self.fs.rm(self.path("quarantine"), recursive=True)
        return read_many(self, rels)

    monkeypatch.setattr(Remote, "read_many", gc_deletes_the_batch_first)
    team.tether("pull")


def test_a_pull_whose_objects_a_gc_moved_after_the_listing_says_to_run_it_again(
    team: Team, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice, _ = _alice_pushes_a_branch_not_in_git(team, store)
    git(alice, "push", "-q", "origin", "feature")
    carol = team.join("carol", "feature")
    team.at(carol)
    inventory = Remote.inventory

    def gc_moves_the_objects_after_listing(self: Remote) -> object:
        inv = inventory(self)
        for sub in ("objects", "packs"):
            if store.files(sub):
                self.fs.rm(self.path(sub), recursive=True)
        return inv

    monkeypatch.setattr(Remote, "inventory", gc_moves_the_objects_after_listing)
    out = team.tether("pull", expect=4).output
    assert "changed under us (a gc ran meanwhile" in out and "run the command again" in out


def test_sigterm_during_a_push_releases_its_lock_and_exits_143(
    team: Team, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A CI timeout (SIGTERM) in the middle of a push: the push lock is gone, exit 143."""
    import signal

    import tether.workspace.sync as sync

    team.founder("alice", store)
    _data(Path.cwd(), "v1")
    team.tether("add", "data")

    def killed(*_args: object, **_kw: object) -> None:
        assert store.files("locks")  # the push holds its lock here
        os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(sync, "publish", killed)
    before = signal.getsignal(signal.SIGTERM)  # pytest-xdist's worker may have its own
    out = team.tether("push", expect=143).output
    assert "terminated" in out
    assert not store.files("locks")
    assert signal.getsignal(signal.SIGTERM) is before  # put back after the command


def _dead_pid() -> int:
    import subprocess

    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def test_a_gc_lock_left_by_a_killed_process_on_this_host_blocks_nobody(
    team: Team, store: Store, capsys: pytest.CaptureFixture[str]
) -> None:
    """SIGKILL leaves ``locks/gc`` behind; its owner's pid is gone on this same host, so a push
    goes on at once instead of waiting for gc.stale_lock, and the next gc removes it."""
    import json
    import socket

    alice = team.founder("alice", store)
    team.tether("config", "set", "gc.lock_wait", "0s", "--local")
    remote = store.remote()
    held = hold_gc(remote, TIMES)
    held._stop.set()  # killed: no heartbeat, no release
    body = {
        "tether": "lock",
        "format": 1,
        "kind": "gc",
        "token": held.token,
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "user": "me",
        "beat": 9,
    }
    where = held.tag if remote.is_local else "locks/gc"
    remote.write_bytes(where, json.dumps(body).encode())
    _data(alice, "v1")
    team.tether("add", "data")
    out = team.tether("push", expect=4).output  # its owner (this process) is alive: refused
    assert "counts as dead in 29 min" in out or "counts as dead in 30 min" in out
    assert "locks/gc on the remote" in out
    body["pid"] = _dead_pid()
    remote.write_bytes(where, json.dumps(body).encode())
    team.tether("push")
    team.tether("gc", "--remote", "origin")
    assert not store.files("locks")


def test_a_push_says_it_is_waiting_for_a_gc(
    store: Store, capsys: pytest.CaptureFixture[str]
) -> None:
    remote = store.remote()
    gc = hold_gc(remote, TIMES)

    def gc_finishes(_seconds: float) -> None:
        gc.release()

    push = hold_push(remote, LockTimes(stale=1800, wait=60), sleep=gc_finishes)
    push.release()
    err = capsys.readouterr().err
    assert "waiting for the gc by" in err and "(up to 60 s)" in err


@pytest.mark.parametrize("value", ["99999999999999999999w", "1e400", "inf", "nan", "5000w"])
def test_an_absurd_lock_duration_is_refused_when_set(
    tether: Tether, repo: Path, value: str
) -> None:
    out = tether("config", "set", "gc.stale_lock", value, expect=4).output
    assert "gc.stale_lock" in out or "duration" in out


def test_an_infinite_duration_edited_into_tether_toml_is_a_config_error(
    tether: Tether, repo: Path
) -> None:
    with open(repo / "tether.toml", "a") as f:
        f.write("\n[gc]\nstale_lock = inf\n")
    tether("remote", "add", "origin", str(repo.parent / "store"), expect=4)
    from tether.config import duration_seconds
    from tether.errors import ConfigError

    for value in (float("inf"), 1e400, 10**30):
        with pytest.raises(ConfigError, match="too long a duration"):
            duration_seconds(value)
