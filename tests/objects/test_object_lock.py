"""S3 Object Lock on a remote, against moto's S3 server over HTTP: pushes write objects and packs
under retention (never refs), and a remote gc or purge refuses what retention holds, collects the
rest by version id and says so."""

from __future__ import annotations

import os
import shutil
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Tether, git, make_repo, snapshot, write_files
from tether.api import Project
from tether.errors import ConfigError, RemoteError, RetainedObjectsError
from tether.hashing import hash_bytes
from tether.objects.remote import Remote, storage_options
from tether.objects.retention import MULTIPART_FROM, ObjectLock, take_object_lock
from tether.workspace.gc import GcResult

pytestmark = pytest.mark.s3

PREFIX = "store/"


def _client(endpoint: str) -> Any:
    import boto3

    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")


@pytest.fixture
def lock_bucket(s3_endpoint: str, s3_bucket: str) -> str:
    """A bucket created with Object Lock (``s3_bucket`` set the credentials up)."""
    name = f"lock-{uuid.uuid4().hex[:12]}"
    _client(s3_endpoint).create_bucket(Bucket=name, ObjectLockEnabledForBucket=True)
    return name


def _use_remote(project: Project, bucket: str, endpoint: str, lock: dict[str, str]) -> None:
    project.add_remote("s3", f"s3://{bucket}/{PREFIX.rstrip('/')}")
    project.config_set("remote.s3.endpoint_url", endpoint)
    project.config_set("gc.grace", "0s")  # what was pushed can go at once: Object Lock decides
    for key, value in lock.items():
        project.config_set(f"remote.s3.{key}", value)


def _keys(endpoint: str, bucket: str) -> list[str]:
    out = _client(endpoint).list_objects_v2(Bucket=bucket, Prefix=PREFIX)
    return sorted(o["Key"] for o in out.get("Contents", []))


def _versions(endpoint: str, bucket: str, under: str) -> set[str]:
    """Keys with any version or delete marker left under ``under``."""
    out = _client(endpoint).list_object_versions(Bucket=bucket, Prefix=PREFIX + under)
    return {v["Key"] for v in out.get("Versions", []) + out.get("DeleteMarkers", [])}


def _key(oid: str) -> str:
    return PREFIX + Remote.object_path(oid)


def _commit(repo: Path) -> None:
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "c")


def _data(repo: Path, tag: str) -> dict[str, bytes]:
    """Small files (they travel in a pack) and one large one (alone)."""
    files = {f"data/s{i}.txt": f"{tag} small {i}\n".encode() for i in range(5)}
    files["data/big.bin"] = tag.encode() + os.urandom(100_000)
    write_files(repo, dict(files))
    return files


@pytest.mark.parametrize("mode", ["governance", "compliance"])
def test_a_push_locks_objects_and_packs_for_the_configured_days_but_not_refs(
    repo: Path,
    project: Project,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    s3_endpoint: str,
    lock_bucket: str,
    mode: str,
) -> None:
    files = _data(repo, "v1")
    project.add(["data"])
    record = project.ws.store.put_bytes(b"a record a ref keeps alive")
    project.ws.refs.set("runs/r1", [record])
    _use_remote(project, lock_bucket, s3_endpoint, {"object_lock_mode": mode})
    project.config_set("remote.s3.object_lock_days", "3")
    before = datetime.now(UTC)
    pushed = project.push()
    after = datetime.now(UTC)
    assert pushed.objects.objects == 8 and pushed.refs.refs == 1  # 6 files, manifest, record

    s3 = _client(s3_endpoint)
    keys = _keys(s3_endpoint, lock_bucket)
    content = [k for k in keys if k.startswith((PREFIX + "objects/", PREFIX + "packs/"))]
    assert _key(hash_bytes(files["data/big.bin"])) in content
    assert any(k.endswith(".pack") for k in content) and any(k.endswith(".idx") for k in content)
    for key in content:
        head = s3.head_object(Bucket=lock_bucket, Key=key)
        assert head["ObjectLockMode"] == mode.upper(), key
        until = head["ObjectLockRetainUntilDate"]
        low, high = before + timedelta(days=3), after + timedelta(days=3)
        assert low - timedelta(seconds=2) <= until <= high + timedelta(seconds=2), key
    mutable = [k for k in keys if k not in content]
    assert PREFIX + "refs/runs/r1" in mutable and PREFIX + "FORMAT" in mutable
    for key in mutable:
        assert "ObjectLockMode" not in s3.head_object(Bucket=lock_bucket, Key=key), key

    # a clone pulls from the locked remote as from any other
    _commit(repo)
    git(repo.parent, "clone", "-q", str(repo), str(tmp_path / "clone"))
    make_repo(tmp_path / "clone")
    monkeypatch.chdir(tmp_path / "clone")
    clone = Project.open(tmp_path / "clone")
    fetched, _ = clone.pull()
    assert fetched.objects == 8 and clone.ws.store.has(record)  # the data, and the run's record
    assert snapshot(tmp_path / "clone/data") == snapshot(repo / "data")


def test_remote_gc_refuses_locked_objects_collects_the_rest_and_pull_still_works(
    repo: Path, project: Project, tether: Tether, s3_endpoint: str, lock_bucket: str
) -> None:
    # v1 goes up before the remote asks for Object Lock: nothing holds it
    _data(repo, "v1")
    project.add(["data"])
    _use_remote(project, lock_bucket, s3_endpoint, {})
    first = project.push().objects.objects
    v1_keys = set(_keys(s3_endpoint, lock_bucket))
    project.config_set("remote.s3.object_lock_mode", "governance")
    project.config_set("remote.s3.object_lock_days", "1")
    v2 = _data(repo, "v2")
    project.add(["data"])
    days = {f"{datetime.now(UTC) + timedelta(days=1):%Y-%m-%d}"}
    second = project.push().objects.objects
    days.add(f"{datetime.now(UTC) + timedelta(days=1):%Y-%m-%d}")
    v2_content = {
        k
        for k in _keys(s3_endpoint, lock_bucket)
        if k not in v1_keys and k.startswith((PREFIX + "objects/", PREFIX + "packs/"))
    }
    pointer = (repo / "data.tether").read_text()
    (repo / "data.tether").unlink()  # nothing needs v1 or v2 any more
    shutil.rmtree(repo / "data")
    project.ws.forget_pointers()

    dry = tether("gc", "--remote", "s3", "--dry-run", expect=3)
    assert (
        f"would quarantine {first} object(s); {second} more are under S3 Object Lock" in dry.output
    )
    assert v1_keys <= set(_keys(s3_endpoint, lock_bucket))  # a dry run removes nothing

    done = tether("gc", "--remote", "s3", expect=3)
    assert f"quarantined {first} object(s); {second} more are under S3 Object Lock" in done.output
    assert any(f"stay on the remote, readable: retained until {d}" in done.output for d in days)
    assert "tether gc --remote s3` again" in done.output

    left = set(_keys(s3_endpoint, lock_bucket))
    assert v2_content <= left  # every locked file stays, listed and readable
    gone = {k for k in v1_keys if k.startswith((PREFIX + "objects/", PREFIX + "packs/"))}
    assert gone and not gone & left
    # collected means every version deleted, not hidden behind a delete marker
    assert not gone & (
        _versions(s3_endpoint, lock_bucket, "objects/")
        | _versions(s3_endpoint, lock_bucket, "packs/")
    )
    assert PREFIX + "locks/gc" not in left

    with pytest.raises(RetainedObjectsError) as caught:
        project.gc(remote="s3")  # again: v1's quarantine (no grace) is deleted, v2 still held
    result = caught.value.result
    assert isinstance(result, GcResult)
    assert (result.removed, result.retained, result.legal_holds) == (first, second, 0)
    assert not _versions(s3_endpoint, lock_bucket, "quarantine/")
    assert result.retained_bytes > 0 and result.retention_ends is not None

    (repo / "data.tether").write_text(pointer)
    project.ws.forget_pointers()
    project.ws.store.drop(set(project.ws.store.iter_ids()))
    tether("pull")
    assert {p: (repo / p).read_bytes() for p in v2} == v2


def test_runs_purge_on_a_locked_remote_refuses_the_locked_objects(
    repo: Path, project: Project, tether: Tether, s3_endpoint: str, lock_bucket: str
) -> None:
    leak = os.urandom(100_000)
    write_files(repo, {"leak.bin": leak, ".gitignore": "leak.bin\n"})
    _use_remote(
        project,
        lock_bucket,
        s3_endpoint,
        {"object_lock_mode": "compliance", "object_lock_days": "2"},
    )
    with project.start_run(name="leaky") as run:
        run.log_artifact("leak.bin")
    project.push()
    run_id = project.resolve_run("leaky")
    project.delete_run("leaky")

    out = tether("runs", "purge", "--remote", expect=3)
    assert "more are under S3 Object Lock and stay on the remote, readable" in out.output
    s3 = _client(s3_endpoint)
    kept = s3.get_object(Bucket=lock_bucket, Key=_key(hash_bytes(leak)))
    assert kept["Body"].read() == leak and kept["ObjectLockMode"] == "COMPLIANCE"
    refs = [k for k in _keys(s3_endpoint, lock_bucket) if "/refs/" in k]
    assert not [k for k in refs if k.endswith(f"runs/{run_id}")]  # refs are not locked
    assert [k for k in refs if "tombstones/" in k]


def test_a_legal_hold_is_reported_as_such(
    repo: Path, project: Project, s3_endpoint: str, lock_bucket: str
) -> None:
    big = os.urandom(100_000)
    write_files(repo, {"big.bin": big})
    project.add(["big.bin"])
    _use_remote(project, lock_bucket, s3_endpoint, {})
    project.push()
    key = _key(hash_bytes(big))
    _client(s3_endpoint).put_object_legal_hold(
        Bucket=lock_bucket, Key=key, LegalHold={"Status": "ON"}
    )
    (repo / "big.bin.tether").unlink()
    project.ws.forget_pointers()
    with pytest.raises(RetainedObjectsError, match=r"1 file\(s\) are under a legal hold") as caught:
        project.gc(remote="s3")
    assert isinstance(caught.value.result, GcResult) and caught.value.result.retained == 1
    assert key in _keys(s3_endpoint, lock_bucket)


def test_a_versioned_bucket_loses_every_version_not_just_a_delete_marker(
    repo: Path, project: Project, s3_endpoint: str, s3_bucket: str
) -> None:
    _client(s3_endpoint).put_bucket_versioning(
        Bucket=s3_bucket, VersioningConfiguration={"Status": "Enabled"}
    )
    _data(repo, "v1")
    project.add(["data"])
    _use_remote(project, s3_bucket, s3_endpoint, {})
    pushed = project.push().objects.objects
    (repo / "data.tether").unlink()
    project.ws.forget_pointers()
    assert project.gc(remote="s3").quarantined == pushed
    assert not _versions(s3_endpoint, s3_bucket, "objects/")
    assert not _versions(s3_endpoint, s3_bucket, "packs/")
    assert project.gc(remote="s3").removed == pushed  # the grace period (none) has ended
    assert not _versions(s3_endpoint, s3_bucket, "quarantine/")


def test_a_bucket_without_object_lock_is_refused_before_anything_is_written(
    repo: Path, project: Project, tether: Tether, s3_endpoint: str, s3_bucket: str
) -> None:
    _data(repo, "v1")
    project.add(["data"])
    _use_remote(
        project, s3_bucket, s3_endpoint, {"object_lock_mode": "governance", "object_lock_days": "7"}
    )
    with pytest.raises(RemoteError, match=f"bucket {s3_bucket} does not have Object Lock enabled"):
        project.push()
    assert _keys(s3_endpoint, s3_bucket) == []
    out = tether("push", expect=4)
    assert "put-object-lock-configuration" in out.output


def test_a_locked_pack_with_live_objects_is_not_rewritten_at_every_gc(
    repo: Path, project: Project, s3_endpoint: str, lock_bucket: str
) -> None:
    write_files(repo, {f"data/f{i}": f"v1 {i}" for i in range(20)})
    project.add(["data"])
    _use_remote(
        project,
        lock_bucket,
        s3_endpoint,
        {"object_lock_mode": "governance", "object_lock_days": "1"},
    )
    project.push()
    write_files(repo, {"data/f0": "v2"})
    project.add(["data"])
    project.push()
    packs = [k for k in _keys(s3_endpoint, lock_bucket) if k.endswith(".pack")]
    for _ in range(2):
        with pytest.raises(RetainedObjectsError) as caught:
            project.gc(remote="s3")
        result = caught.value.result
        assert isinstance(result, GcResult)
        assert (result.retained, result.repacked) == (2, 0)  # the old file and old manifest
    assert [k for k in _keys(s3_endpoint, lock_bucket) if k.endswith(".pack")] == packs


def test_a_missing_bucket_is_named(
    repo: Path, project: Project, s3_endpoint: str, s3_bucket: str
) -> None:
    _use_remote(
        project,
        "no-such-bucket",
        s3_endpoint,
        {"object_lock_mode": "governance", "object_lock_days": "7"},
    )
    with pytest.raises(RemoteError, match="bucket no-such-bucket of remote s3 does not exist"):
        project.push()


def test_object_lock_on_a_folder_remote_is_refused(
    repo: Path, project: Project, tether: Tether, tmp_path: Path
) -> None:
    project.add_remote("origin", str(tmp_path / "remote"))
    project.config_set("remote.origin.object_lock_mode", "governance")
    project.config_set("remote.origin.object_lock_days", "7")
    with pytest.raises(ConfigError, match="S3 Object Lock needs an s3:// remote"):
        project.push()
    out = tether("gc", "--remote", "origin", expect=4)
    assert "remove them from [remote.origin]" in out.output


@pytest.mark.parametrize(
    ("mode", "days", "message"),
    [
        ("forever", "3", "is not an Object Lock mode"),
        ("governance", "0", "is not a number of days"),
        ("governance", "-2", "is not a number of days"),
        ("governance", "2.5", "is not a number of days"),
        ("governance", "true", "is not a number of days"),
        ("governance", "soon", "is not a number of days"),
        ("governance", None, "needs both remote.s3.object_lock_mode and"),
        (None, "3", "needs both remote.s3.object_lock_mode and"),
    ],
)
def test_bad_object_lock_settings_are_refused_with_a_fix(
    repo: Path, project: Project, mode: str | None, days: str | None, message: str
) -> None:
    project.add_remote("s3", "s3://some-bucket/store")
    if mode is not None:
        project.config_set("remote.s3.object_lock_mode", mode)
    if days is not None:
        project.config_set("remote.s3.object_lock_days", days)
    with pytest.raises(ConfigError, match=message):
        project.push()


def test_settings_from_the_environment_are_read_and_taken_out_of_fsspec_options() -> None:
    options = storage_options(
        {"url": "s3://b/p", "object_lock_mode": "Compliance", "object_lock_days": "30"}
    )
    assert take_object_lock("s3", options) == ObjectLock("compliance", 30)
    assert options == {}
    now = datetime(2030, 1, 1, tzinfo=UTC)
    assert ObjectLock("governance", 2).put_args(now) == {
        "ObjectLockMode": "GOVERNANCE",
        "ObjectLockRetainUntilDate": datetime(2030, 1, 3, tzinfo=UTC),
    }


@pytest.mark.slow
def test_a_file_sent_in_parts_is_locked_too(
    tmp_path: Path, s3_endpoint: str, lock_bucket: str
) -> None:
    big = tmp_path / "big.bin"
    with open(big, "wb") as f:
        f.truncate(MULTIPART_FROM + 1)
    options = storage_options(
        {"endpoint_url": s3_endpoint, "object_lock_mode": "governance", "object_lock_days": 1}
    )
    remote = Remote("s3", f"s3://{lock_bucket}/{PREFIX.rstrip('/')}", options)
    remote.upload(big, "objects/ab/cdef")
    head = _client(s3_endpoint).head_object(Bucket=lock_bucket, Key=PREFIX + "objects/ab/cdef")
    assert head["ContentLength"] == MULTIPART_FROM + 1
    assert head["ObjectLockMode"] == "GOVERNANCE"
