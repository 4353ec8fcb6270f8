"""S3 Object Lock on a remote: objects written under retention, and deletes that never pretend.

An ``s3://`` remote whose ``[remote.NAME]`` sets ``object_lock_mode`` (``governance`` or
``compliance``) and ``object_lock_days`` (a whole number above 0) writes every content-addressed
file (``objects/…``, ``packs/…``: written once, never changed) with that retention mode and a
retain-until date that many days after its upload. Refs, ``FORMAT`` and ``locks/gc`` are
rewritten, so they are never locked. The bucket must have Object Lock enabled: a push checks it
before it writes anything.

Object Lock implies a versioned bucket, where a DeleteObject without a version id only adds a
delete marker: the key vanishes from listings while every byte stays, still stored and still
locked. So on a versioned bucket, *collecting* a file means deleting every version of it by
version id. S3 refuses that for a version under retention or a legal hold: such a file is
*retained*. gc leaves it whole and readable, reports it, and collects it in a run after its
retention ends.

Only :class:`~tether.objects.remote.Remote` calls these functions; ``fs`` is its s3fs filesystem.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from tether.errors import ConfigError

MODES = ("governance", "compliance")
# content-addressed: written once under their final name, so retention never blocks a rewrite
LOCKED_DIRS = ("objects/", "packs/")
# s3fs sends a file this size and up in parts (twice its 50 MiB chunk): retention is then set
# again afterwards, as not every S3-compatible store applies it from CreateMultipartUpload
MULTIPART_FROM = 100 * 2**20
HEAD_JOBS = 16
DELETE_BATCH = 1000  # S3's limit for one DeleteObjects


@dataclass(frozen=True)
class ObjectLock:
    """What ``[remote.NAME]`` asks for: ``mode`` (governance|compliance) for ``days`` days."""

    mode: str
    days: int

    def put_args(self, now: datetime | None = None) -> dict[str, Any]:
        """PutObject / CreateMultipartUpload parameters for an upload starting ``now``."""
        until = (now or datetime.now(UTC)) + timedelta(days=self.days)
        return {"ObjectLockMode": self.mode.upper(), "ObjectLockRetainUntilDate": until}


@dataclass(frozen=True)
class Retention:
    """Why S3 keeps a file: a retention date still ahead, a legal hold, or both."""

    until: datetime | None
    mode: str | None
    legal_hold: bool = False

    def merged(self, other: Retention | None) -> Retention:
        if other is None:
            return self
        later = max((self, other), key=lambda r: r.until or datetime.min.replace(tzinfo=UTC))
        return Retention(later.until, later.mode, self.legal_hold or other.legal_hold)


@dataclass(frozen=True)
class Version:
    id: str
    delete_marker: bool


def take_object_lock(remote: str, options: dict[str, Any]) -> ObjectLock | None:
    """Remove the Object Lock settings from a remote's fsspec ``options``: the lock they ask
    for, checked, or None."""
    mode = options.pop("object_lock_mode", None)
    days = options.pop("object_lock_days", None)
    if mode is None and days is None:
        return None
    key = f"remote.{remote}"
    if mode is None or days is None:
        raise ConfigError(
            f"S3 Object Lock needs both {key}.object_lock_mode and {key}.object_lock_days: "
            f"set the missing one (`tether config set {key}.object_lock_days 30`)"
        )
    if not isinstance(mode, str) or mode.lower() not in MODES:
        raise ConfigError(
            f"{key}.object_lock_mode = {mode!r} is not an Object Lock mode: use governance "
            "(users allowed s3:BypassGovernanceRetention may still delete) or compliance "
            "(nobody can delete until the date)"
        )
    n = _whole_number(days)
    if n is None or n <= 0:
        raise ConfigError(
            f"{key}.object_lock_days = {days!r} is not a number of days: use a whole number "
            "above 0, e.g. 30"
        )
    return ObjectLock(mode.lower(), n)


def _whole_number(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():  # from a TETHER_* variable
        return int(value)
    return None


def error_code(exc: BaseException) -> str | None:
    """The S3 error code behind an exception s3fs translated (kept as its ``__cause__``)."""
    for err in (exc, exc.__cause__, exc.__context__):
        response = getattr(err, "response", None)
        if isinstance(response, dict):
            code = response.get("Error", {}).get("Code")
            return str(code) if code else None
    return None


def bucket_lock_enabled(fs: Any, bucket: str) -> bool:
    try:
        out = fs.call_s3("get_object_lock_configuration", Bucket=bucket)
    except OSError as exc:
        if error_code(exc) == "ObjectLockConfigurationNotFoundError":
            return False
        raise
    return bool(out.get("ObjectLockConfiguration", {}).get("ObjectLockEnabled") == "Enabled")


def bucket_versioned(fs: Any, bucket: str) -> bool | None:
    """Whether the bucket keeps versions; None when these credentials may not ask."""
    try:
        out = fs.call_s3("get_bucket_versioning", Bucket=bucket)
    except PermissionError:
        return None
    return out.get("Status") in ("Enabled", "Suspended")


def set_retention(fs: Any, bucket: str, key: str, args: dict[str, Any]) -> None:
    """Retention on a file already written, as ``args`` from :meth:`ObjectLock.put_args`."""
    until = args["ObjectLockRetainUntilDate"]
    retention = {"Mode": args["ObjectLockMode"], "RetainUntilDate": until}
    fs.call_s3("put_object_retention", Bucket=bucket, Key=key, Retention=retention)


def list_versions(
    fs: Any, bucket: str, keys: Iterable[str], count: Callable[[int], None]
) -> dict[str, list[Version]]:
    """Every version (and delete marker) of these keys, listing each of their folders once."""
    wanted = set(keys)
    out: dict[str, list[Version]] = {}
    for prefix in sorted({k.rsplit("/", 1)[0] + "/" for k in wanted}):
        more: dict[str, str] = {}
        while True:
            count(1)
            page = fs.call_s3("list_object_versions", Bucket=bucket, Prefix=prefix, **more)
            for kind, marker in (("Versions", False), ("DeleteMarkers", True)):
                for v in page.get(kind, []):
                    if v["Key"] in wanted:
                        out.setdefault(v["Key"], []).append(Version(v["VersionId"], marker))
            if not page.get("IsTruncated"):
                break
            more = {
                "KeyMarker": page["NextKeyMarker"],
                "VersionIdMarker": page["NextVersionIdMarker"],
            }
    return out


def retention_of(
    fs: Any, bucket: str, versions: dict[str, list[Version]], count: Callable[[int], None]
) -> dict[str, Retention]:
    """What holds each key (one HeadObject per version, in parallel); keys nothing holds now
    are left out."""
    now = datetime.now(UTC)
    todo = [(key, v.id) for key, vs in versions.items() for v in vs if not v.delete_marker]
    count(len(todo))

    def head(item: tuple[str, str]) -> tuple[str, Retention | None]:
        key, vid = item
        try:
            meta = fs.call_s3("head_object", Bucket=bucket, Key=key, VersionId=vid)
        except FileNotFoundError:  # deleted since the listing
            return key, None
        return key, _holding(meta, now)

    out: dict[str, Retention] = {}
    with ThreadPoolExecutor(max_workers=HEAD_JOBS) as pool:
        for key, held in pool.map(head, todo):
            if held is not None:
                out[key] = held.merged(out.get(key))
    return out


def _holding(meta: dict[str, Any], now: datetime) -> Retention | None:
    until = meta.get("ObjectLockRetainUntilDate")
    hold = meta.get("ObjectLockLegalHoldStatus") == "ON"
    if isinstance(until, datetime) and until > now:
        mode = meta.get("ObjectLockMode")
        return Retention(until.astimezone(UTC), str(mode).lower() if mode else None, hold)
    return Retention(None, None, True) if hold else None


def delete_versions(
    fs: Any, bucket: str, versions: dict[str, list[Version]], count: Callable[[int], None]
) -> dict[str, str]:
    """Delete every listed version by id, 1,000 per request: the keys S3 refused, with the
    error code it gave (``AccessDenied`` for one under retention)."""
    items = [(key, v.id) for key, vs in versions.items() for v in vs]
    refused: dict[str, str] = {}
    for start in range(0, len(items), DELETE_BATCH):
        batch = items[start : start + DELETE_BATCH]
        count(1)
        out = fs.call_s3(
            "delete_objects",
            Bucket=bucket,
            Delete={"Objects": [{"Key": k, "VersionId": v} for k, v in batch], "Quiet": True},
        )
        for err in out.get("Errors", []):
            refused[err["Key"]] = str(err.get("Code") or "an error")
    return refused
