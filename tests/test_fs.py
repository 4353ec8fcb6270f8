"""``_fs.atomic_write``: a reader sees the old bytes or the new, never a truncated file, even when
the disk writes less than it was asked to or fills up."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from tether import _fs
from tether.errors import CacheWriteError

OLD = b"format: 1\nid: blake3:" + b"0" * 64 + b"\n"
NEW = b"format: 1\nid: blake3:" + b"f" * 64 + b"\nsize: 12345\n" + b"x" * 10_000


def test_atomic_write_writes_everything_when_the_disk_takes_a_few_bytes_at_a_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "data.tether"
    path.write_bytes(OLD)
    real_write = os.write
    calls = []

    def short_write(fd: int, data: bytes | memoryview) -> int:
        calls.append(len(data))
        return real_write(fd, bytes(data[:7]))  # at most 7 bytes a call, as a full pipe might

    monkeypatch.setattr(_fs.os, "write", short_write)
    _fs.atomic_write(path, NEW)
    monkeypatch.undo()
    assert path.read_bytes() == NEW
    assert len(calls) > 1  # the write was short, and was carried on
    assert [p.name for p in tmp_path.iterdir()] == ["data.tether"]  # no temp file left


def test_a_full_disk_leaves_the_old_file_intact_and_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "data.tether"
    path.write_bytes(OLD)
    real_write = os.write
    state = {"written": 0}

    def fills_up(fd: int, data: bytes | memoryview) -> int:
        if state["written"] >= 100:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        n = real_write(fd, bytes(data[:50]))
        state["written"] += n
        return n

    monkeypatch.setattr(_fs.os, "write", fills_up)
    with pytest.raises(CacheWriteError, match=r"no space left to write .*data\.tether"):
        _fs.atomic_write(path, NEW)
    monkeypatch.undo()
    assert path.read_bytes() == OLD
    assert [p.name for p in tmp_path.iterdir()] == ["data.tether"]


def test_a_disk_that_takes_nothing_is_a_full_disk_not_a_hang(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "key.pem"
    path.write_bytes(OLD)
    monkeypatch.setattr(_fs.os, "write", lambda fd, data: 0)
    with pytest.raises(CacheWriteError, match="no space left"):
        _fs.atomic_write(path, NEW, mode=0o600)
    monkeypatch.undo()
    assert path.read_bytes() == OLD
