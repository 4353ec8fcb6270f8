"""Folder manifests come from anyone's clone: the parser either returns a manifest of the right
shape or raises a FormatError naming it, and a manifest whose paths pass the check can only be
written inside its folder."""

from __future__ import annotations

import json
import os
import posixpath
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tether._paths import WriteGuard, is_reserved
from tether.errors import FormatError, TetherError, UnsafePathError
from tether.hashing import PREFIX, hash_bytes, is_object_id
from tether.objects.tree import MODES, SYMLINK_MODE, Tree, TreeEntry

OID = hash_bytes(b"x")
WHERE = "folder manifest blake3:m"


def _doc(entries: Any) -> bytes:
    return json.dumps({"tether": "tree", "format": 1, "entries": entries}).encode()


def _parse(data: bytes) -> Tree | None:
    """The manifest, or None after a FormatError that names it; anything else fails."""
    try:
        tree = Tree.from_bytes(data, "blake3:m")
    except FormatError as exc:
        assert WHERE in str(exc)
        return None
    for e in tree.entries:
        assert type(e.path) is str and type(e.size) is int and e.size >= 0
        assert type(e.id) is str and is_object_id(e.id)
        assert type(e.mode) is int and e.mode in MODES
        assert (e.mode == SYMLINK_MODE) == (type(e.target) is str)
    return tree


@pytest.mark.parametrize(
    ("rows", "says"),
    [
        ({"a": 1}, "entries are not a list of rows"),
        ([["a", OID, 1]], "a row has 3 fields"),
        ([[["a"], OID, 1, 420]], "a row's path is a list, not a string"),
        ([["a", OID, 1 << 63, 420]], "'a' has size a number too large"),
        ([["a", OID, -1, 420]], "'a' has size -1"),
        ([["a", OID, True, 420]], "'a' has size True"),
        ([["a", OID, 1.5, 420]], "'a' has size 1.5"),
        ([["a", OID, 1, 0o4755]], "'a' has mode 2541"),
        ([["a", OID, 1, 420.0]], "'a' has mode 420.0"),
        ([["a", OID.upper(), 1, 420]], "'a' has id 'BLAKE3:"),
        ([["a", OID + "\n", 1, 420]], "'a' has id"),
        ([["a", None, 1, 420]], "'a' has id None"),
        ([["a", OID, 1, 420, "b"]], "'a' has mode 644 and target 'b'"),
        ([["a", OID, 1, SYMLINK_MODE]], "'a' has mode 120777 and target None"),
        ([["a", OID, 1, SYMLINK_MODE, 7]], "'a' has mode 120777 and target 7"),
    ],
)
def test_a_malformed_row_is_a_format_error_naming_the_manifest(rows: Any, says: str) -> None:
    with pytest.raises(FormatError, match=WHERE) as info:
        Tree.from_bytes(_doc(rows), "blake3:m")
    assert says in str(info.value)


def test_a_manifest_reads_back_as_written() -> None:
    tree = Tree.build(
        [
            TreeEntry("a/b.csv", OID, 1),
            TreeEntry("run.sh", OID, 1, 0o755),
            TreeEntry("latest", hash_bytes(b"a/b.csv"), 7, SYMLINK_MODE, "a/b.csv"),
        ]
    )
    assert Tree.from_bytes(tree.data, tree.id) == tree
    assert Tree.from_bytes(Tree(()).data) == Tree(())
    tree.check_paths("m")


def test_a_deeply_nested_document_is_a_format_error() -> None:
    data = b'{"tether":"tree","format":1,"entries":' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    with pytest.raises(FormatError, match=WHERE):
        Tree.from_bytes(data, "blake3:m")


# -- property tests ----------------------------------------------------------------------------
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner),
    max_leaves=8,
)
paths = st.sampled_from(
    ["a", "A", "a/b", "b/../..", "../x", ".git/config", "a/.GIT/x", "/etc/x", "a//b", ""]
) | st.text(alphabet="aA./\\~:é\u0301\u200c gitGIT", max_size=12)
targets = st.sampled_from(["a", "..", "../..", "a/..", "/etc", "b/../../x", ".git", ""]) | st.text(
    alphabet="ab./~", max_size=10
)
rows = (
    st.tuples(paths, st.just(OID), st.integers(0, 9), st.sampled_from([0o644, 0o755])).map(list)
    | st.tuples(paths, st.just(OID), st.integers(0, 9), st.just(SYMLINK_MODE), targets).map(list)
    | st.lists(json_values | paths | st.just(OID) | st.sampled_from(sorted(MODES)), max_size=6)
)


@given(st.binary(max_size=300))
def test_any_bytes_parse_into_a_manifest_or_a_clear_error(data: bytes) -> None:
    _parse(data)
    _parse(b'{"tether":"tree","format":1,"entries":' + data + b"}")


@given(st.lists(rows, max_size=6) | json_values)
def test_any_rows_parse_into_a_manifest_or_a_clear_error(entries: Any) -> None:
    _parse(_doc(entries))


@given(st.data())
def test_a_mutated_manifest_parses_into_a_manifest_or_a_clear_error(data: st.DataObject) -> None:
    tree = Tree.build(
        [TreeEntry("a/b", OID, 1), TreeEntry("l", hash_bytes(b"a"), 1, SYMLINK_MODE, "a")]
    )
    raw = bytearray(tree.data)
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, len(raw) - 1))
        raw[at : at + data.draw(st.integers(0, 3))] = data.draw(st.binary(max_size=3))
    _parse(bytes(raw))


@given(st.lists(rows, max_size=6))
def test_a_manifest_that_passes_the_check_is_written_only_inside_its_folder(
    entries: list[Any],
) -> None:
    """Write what the check accepts, as a checkout does (folders through a WriteGuard, links as
    they are), and look: everything is under the folder, links included, nothing in .git."""
    tree = _parse(_doc(entries))
    if tree is None:
        return
    try:
        tree.check_paths("m")
    except UnsafePathError as exc:
        assert str(exc).startswith("m ")
        return
    with tempfile.TemporaryDirectory() as tmp:
        top = Path(tmp) / "repo" / "data"
        top.mkdir(parents=True)
        guard = WriteGuard(top)
        for e in tree.entries:
            parts = e.path.split("/")
            assert not any(is_reserved(p) for p in parts) and ".." not in parts
            dest = guard.file(e.path)
            if e.target is not None:
                os.symlink(e.target, dest)
            else:
                Path(dest).write_bytes(b"x")
        assert sorted(os.listdir(tmp)) == ["repo"] and os.listdir(top.parent) == ["data"]
        real_top = os.path.realpath(top)
        for dirpath, dirnames, filenames in os.walk(top):
            for name in dirnames + filenames:
                here = os.path.join(dirpath, name)
                real = os.path.realpath(here)
                assert real == real_top or real.startswith(real_top + "/"), (here, real)


def test_a_link_may_not_lead_through_another_link() -> None:
    inner = TreeEntry("sub/up", hash_bytes(b".."), 2, SYMLINK_MODE, "..")
    Tree.build([inner]).check_paths("m")  # alone it points at the top: inside
    escape = TreeEntry("out", hash_bytes(b"x"), 1, SYMLINK_MODE, "sub/up/../..")
    with pytest.raises(UnsafePathError, match="leads through the symlink 'sub/up'"):
        Tree.build([inner, escape]).check_paths("m")
    to_link = TreeEntry("alias", hash_bytes(b"x"), 1, SYMLINK_MODE, "sub/up")
    Tree.build([inner, to_link]).check_paths("m")  # a link to a link, as its last step


def test_every_refusal_is_a_tether_error() -> None:
    for rows in ([["../x", OID, 1, 420]], [["a", OID, 1, 420], ["A", OID, 1, 420]]):
        tree = Tree.from_bytes(_doc(rows), "blake3:m")
        with pytest.raises(TetherError, match=r"^m "):
            tree.check_paths("m")
    assert posixpath.sep == "/"


ids = st.builds(
    lambda digest, cut, junk: (PREFIX + digest)[: cut or None] + junk,
    st.text(alphabet="0123456789abcdefABCDEF:lkz", min_size=64, max_size=64),
    st.integers(0, 71),
    st.sampled_from(["", "0", "\n", "é", "blake3:"]),
) | st.just(OID)


@given(st.lists(ids, min_size=1, max_size=5))
def test_ids_checked_all_at_once_agree_with_checking_each(oids: list[str]) -> None:
    rows = [[f"f{i}", oid, 1, 0o644] for i, oid in enumerate(oids)]
    assert (_parse(_doc(rows)) is not None) == all(is_object_id(o) for o in oids)
