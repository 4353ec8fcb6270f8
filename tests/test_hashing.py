from pathlib import Path

from blake3 import blake3

from tether.hashing import BIG_FILE, hash_bytes, hash_file, is_object_id


def test_ids_are_prefixed_blake3_hex() -> None:
    oid = hash_bytes(b"hello")
    assert oid == "blake3:" + blake3(b"hello").hexdigest()
    assert is_object_id(oid)
    assert not is_object_id("sha256:" + "0" * 64)
    assert not is_object_id("blake3:" + "0" * 63)


def test_big_and_small_files_hash_the_same_way_as_their_bytes(tmp_path: Path) -> None:
    small = tmp_path / "small"
    small.write_bytes(b"x" * 1000)
    big = tmp_path / "big"
    data = bytes(range(256)) * (BIG_FILE // 256 + 7)
    big.write_bytes(data)
    assert hash_file(small) == hash_bytes(b"x" * 1000)
    assert hash_file(big) == hash_bytes(data)  # the multi-threaded mmap path agrees
