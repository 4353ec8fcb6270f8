import os
import stat
from pathlib import Path

import pytest

from tether.errors import FormatError, MissingObjectError
from tether.hashing import hash_bytes
from tether.objects.store import ObjectStore


def test_objects_are_named_by_hash_and_read_only(store: ObjectStore) -> None:
    oid = store.put_bytes(b"payload")
    assert oid == hash_bytes(b"payload")
    path = store.path(oid)
    assert path.parent.name == oid[7:9] and path.name == oid[9:]
    assert stat.S_IMODE(path.stat().st_mode) == 0o444
    assert store.read_bytes(oid) == b"payload"
    assert list(store.iter_ids()) == [oid]
    assert store.verify(oid)


def test_writing_twice_keeps_one_object_and_leaves_no_temp_files(store: ObjectStore) -> None:
    a = store.put_bytes(b"same")
    b = store.put_bytes(b"same")
    assert a == b
    assert list(store.iter_ids()) == [a]
    assert list(store.tmp.iterdir()) == []


def test_missing_object_error_says_to_pull(store: ObjectStore) -> None:
    with pytest.raises(MissingObjectError, match="tether pull"):
        store.read_bytes(hash_bytes(b"never stored"))


def test_corruption_is_detected(store: ObjectStore) -> None:
    oid = store.put_bytes(b"good bytes")
    path = store.path(oid)
    os.chmod(path, 0o644)
    path.write_bytes(b"bad bytes")
    assert not store.verify(oid)


def test_hardlinked_and_copied_files(store: ObjectStore, tmp_path: Path) -> None:
    src = tmp_path / "f"
    src.write_bytes(b"linked")
    oid = hash_bytes(b"linked")
    assert store.put_file(src, oid, ("hardlink",)) == "hardlink"
    assert os.stat(src).st_ino == store.path(oid).stat().st_ino
    src2 = tmp_path / "g"
    src2.write_bytes(b"copied")
    oid2 = hash_bytes(b"copied")
    assert store.put_file(src2, oid2, ("reflink", "copy")) in ("reflink", "copy")
    assert os.stat(src2).st_ino != store.path(oid2).stat().st_ino


def test_unknown_cache_format_is_refused(store: ObjectStore) -> None:
    fmt = store.objects / "FORMAT"
    fmt.write_text("99\n")
    with pytest.raises(FormatError, match="upgrade Tether"):
        store.check_format()
