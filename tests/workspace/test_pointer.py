"""Pointer files come from anyone's commit: the parser either returns a pointer that governs
exactly its sibling, with fields of the right types, or raises a TetherError naming the file."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from tether.errors import PointerError, TetherError
from tether.hashing import hash_bytes, is_object_id
from tether.workspace.pointer import KINDS, PointerFile, read_pointer, target_of

OID = hash_bytes(b"data")
VALID = {"format": 1, "path": "data", "kind": "dir", "id": OID, "size": 10, "files": 2}
WHERE = "sub/data.tether"


def _parse(data: bytes) -> PointerFile | None:
    """The pointer, or None after a TetherError that names the file; anything else fails."""
    try:
        ptr = PointerFile.parse(data, WHERE, name="data.tether")
    except TetherError as exc:
        assert WHERE in str(exc)
        return None
    assert ptr.path == "data" and ptr.kind in KINDS and is_object_id(ptr.id)
    assert type(ptr.size) is int and type(ptr.files) is int and ptr.size >= 0 <= ptr.files
    return ptr


def test_a_pointer_written_by_add_reads_back() -> None:
    ptr = PointerFile(**VALID)  # type: ignore[arg-type]
    assert _parse(ptr.to_bytes()) == ptr
    assert target_of(WHERE) == "sub/data"


@pytest.mark.parametrize(
    ("field", "value", "says"),
    [
        ("path", ".git/hooks", "says path '.git/hooks', but a pointer governs only the 'data'"),
        ("path", "../../etc", "says path '../../etc'"),
        ("path", "other", "says path 'other'"),
        ("path", ["data"], "bad 'path'"),
        ("size", "10", "bad 'size'"),
        ("size", -1, "bad 'size'"),
        ("files", True, "bad 'files'"),
        ("id", OID + "\n", "not blake3: and 64 hex digits"),
        ("kind", "link", "kind 'link'"),
        ("format", "1", "format '1'"),
    ],
)
def test_a_pointer_that_names_anything_but_its_sibling_or_has_a_bad_field_is_refused(
    field: str, value: Any, says: str
) -> None:
    data = yaml.safe_dump({**VALID, field: value}).encode()
    with pytest.raises(PointerError, match=WHERE) as info:
        PointerFile.parse(data, WHERE, name="data.tether")
    assert says in str(info.value)


def test_a_pointer_whose_sibling_is_reserved_is_refused(tmp_path: Any) -> None:
    for name in (".git.tether", "sub/.GIT.tether", "GIT~1.tether", "a\\b.tether"):
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(yaml.safe_dump({**VALID, "path": name.split("/")[-1][:-7]}).encode())
        with pytest.raises(PointerError, match="which Tether refuses"):
            read_pointer(tmp_path, name)


_BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{c}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n"
    for p, c in zip("abcdefgh", "bcdefghi", strict=True)
)


@given(
    st.sampled_from(
        [
            f"{_BOMB}format: 1\npath: *i\n".encode(),  # a billion 'x', if anything expanded it
            f"{_BOMB}format: *i\n".encode(),
            b"format: 1\npath: " + b"[" * 50_000 + b"]" * 50_000,
            b"format: 1\nsize: 1" + b"0" * 5000,  # an int with no repr
            b"x" * 70_000,  # too big to be a pointer
        ]
    )
)
def test_a_pointer_built_to_exhaust_the_reader_is_refused_within_the_deadline(
    data: bytes,
) -> None:
    assert _parse(data) is None


# -- property tests ----------------------------------------------------------------------------
yaml_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner),
    max_leaves=6,
)
plausible = st.sampled_from(
    ["data", ".git/hooks", "../data", "data/", "file", "dir", OID, OID.upper(), 0, -1, 1, 2**70]
)


@given(st.binary(max_size=400))
def test_any_bytes_parse_into_a_pointer_or_a_clear_error(data: bytes) -> None:
    _parse(data)


@given(
    st.dictionaries(
        st.sampled_from([*VALID, "extra"]), yaml_values | plausible, max_size=len(VALID) + 1
    ),
    st.sets(st.sampled_from(list(VALID))),
)
def test_a_mutated_pointer_parses_into_a_safe_pointer_or_a_clear_error(
    changes: dict[str, Any], dropped: set[str]
) -> None:
    doc = {k: v for k, v in {**VALID, **changes}.items() if k not in dropped}
    _parse(yaml.safe_dump(doc).encode())


@given(st.data())
def test_edited_pointer_text_parses_into_a_safe_pointer_or_a_clear_error(
    data: st.DataObject,
) -> None:
    raw = bytearray(PointerFile(**VALID).to_bytes())  # type: ignore[arg-type]
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, len(raw) - 1))
        raw[at : at + data.draw(st.integers(0, 3))] = data.draw(
            st.binary(max_size=4) | st.sampled_from([b"../", b".git/", b"\n", b": ", b"&a *a"])
        )
    _parse(bytes(raw))
