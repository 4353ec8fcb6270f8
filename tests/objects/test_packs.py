from tests.conftest import corrupt_object
from tether.hashing import hash_bytes
from tether.objects.store import ObjectStore


def test_small_objects_are_packed_and_big_ones_loose(store: ObjectStore) -> None:
    small = [f"small {i}".encode() for i in range(500)]
    big = b"B" * 100_000
    with store.pack_writer(threshold=65536) as writer:
        for data in [*small, big, small[0]]:
            writer.add(hash_bytes(data), data)
    assert len(writer.written) == 1 and len(writer.written[0].entries) == 500
    assert store.loose_path(hash_bytes(big)) is not None
    assert store.loose_path(hash_bytes(small[3])) is None
    assert store.read_bytes(hash_bytes(small[3])) == small[3]
    assert store.has(hash_bytes(small[499])) and store.verify(hash_bytes(small[499]))
    assert len(set(store.iter_ids())) == 501
    assert store.missing([hash_bytes(b"never"), hash_bytes(small[1])]) == {hash_bytes(b"never")}
    # a second process sees the same objects through the pack index on disk
    again = ObjectStore(store.root)
    assert again.read_bytes(hash_bytes(small[42])) == small[42]


def test_packs_roll_over_at_their_size_limit(store: ObjectStore) -> None:
    with store.pack_writer(threshold=65536, max_size=10_000) as writer:
        for i in range(100):
            data = bytes([i]) * 1000
            writer.add(hash_bytes(data), data)
    assert len(writer.written) >= 9
    assert all(idx.size <= 11_100 for idx in writer.written)


def test_drop_rewrites_a_pack_without_the_dropped_objects(store: ObjectStore) -> None:
    datas = [f"obj {i}".encode() for i in range(10)]
    with store.pack_writer(threshold=65536) as writer:
        for data in datas:
            writer.add(hash_bytes(data), data)
    gone = {hash_bytes(datas[0]), hash_bytes(datas[5])}
    assert store.drop(gone) == 2
    assert store.missing(hash_bytes(d) for d in datas) == gone
    assert [store.read_bytes(hash_bytes(d)) for d in datas[6:]] == datas[6:]
    assert len(list(store.packs.folder.glob("*.pack"))) == 1


def test_a_pack_never_indexed_is_invisible_and_cleaned(store: ObjectStore) -> None:
    from tether.objects.packs import make_pack

    data, index = make_pack([(hash_bytes(b"orphan"), b"orphan")])
    store.packs.write_pack(data, index)  # killed before publish
    assert not store.has(hash_bytes(b"orphan"))
    assert store.packs.unindexed() == [index.name]
    assert store.clean_tmp() == 1
    assert not list(store.packs.folder.iterdir())


def test_corruption_inside_a_pack_is_detected(store: ObjectStore) -> None:
    with store.pack_writer(threshold=65536) as writer:
        for data in (b"one", b"two", b"three"):
            writer.add(hash_bytes(data), data)
    corrupt_object(store, hash_bytes(b"two"))
    fresh = ObjectStore(store.root)
    assert not fresh.verify(hash_bytes(b"two"))
    assert fresh.verify(hash_bytes(b"one")) and fresh.verify(hash_bytes(b"three"))
