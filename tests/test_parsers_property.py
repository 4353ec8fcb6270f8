"""Parsers of outside content, fed what a hostile teammate or a damaged remote could send.

Each parser either returns something its callers can use safely, or raises a TetherError whose
message names the file or object at fault: never another exception, never a hang. Inputs are
arbitrary bytes, valid documents cut short or with bytes flipped, and, to reach the checks deep
inside, valid documents with one to three fields deleted, wrapped or replaced by a hostile value.
Hypothesis's "ci" profile (tests/conftest.py) fixes the number of examples and a 2 s deadline.
"""

from __future__ import annotations

import copy
import json
import math
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import event, example, given
from hypothesis import strategies as st
from sqlalchemy import Engine

from tether._documents import dump_yaml, load_yaml, read_document
from tether.errors import QueryError, TetherError, UsageError
from tether.hashing import hash_bytes, is_object_id
from tether.meta.query import build_search
from tether.meta.store import SqlMetaStore
from tether.objects.graph import children
from tether.objects.packs import PackIndex, make_pack
from tether.objects.refs import check_ref_name
from tether.pipelines.lock import LOCK_FILE, StageLock, lock_text, read_lock, write_lock
from tether.pipelines.plan import _ParamFiles
from tether.pipelines.spec import PIPELINE_FILE, load_pipeline
from tether.pipelines.uptodate import Seen
from tether.runs.ledger import entry
from tether.runs.record import dump_record, load_record, load_series, run_links, to_indexed
from tether.runs.search import translate

OID = "blake3:" + "ab" * 32
IDS = [hash_bytes(str(i).encode()) for i in range(6)]

# -- hostile values and mutations ---------------------------------------------------------------

HOSTILE_TEXT = st.sampled_from(
    [
        "",
        " ",
        "\ud800",  # a lone surrogate: no file, database or process can take it
        "a\x00b",
        "../../outside",
        "/etc/passwd",
        ".git/hooks/pre-commit",
        "NaN",
        "Infinity",
        "blake3:" + "0" * 63,
        IDS[0] + "\n",
        IDS[1].upper(),
        "x" * 5000,
        "${item.nope}",
        "'; drop table runs; --",
    ]
)
HOSTILE_NUMBERS = st.sampled_from(
    [0, -1, 1, 2**63, -(2**63) - 1, 10**400, 1e308, -1e308, math.inf, -math.inf, math.nan, 0.5]
)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    HOSTILE_TEXT,
    HOSTILE_NUMBERS,
    st.sampled_from(IDS),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=6,
)


def _places(doc: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every place in ``doc``, as the keys and indexes that lead there (the root is ``()``)."""
    yield path
    items = (
        doc.items() if isinstance(doc, dict) else enumerate(doc) if isinstance(doc, list) else ()
    )
    for key, value in items:
        yield from _places(value, (*path, key))


@st.composite
def mutated(draw: st.DrawFn, valid: Any, values: st.SearchStrategy[Any] = VALUES) -> Any:
    """``valid`` with one to three places deleted, emptied, wrapped in a list, given an extra
    key, or replaced by a hostile value: near enough to valid to get past the first checks."""
    doc = copy.deepcopy(valid)
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(list(_places(doc))))
        how = draw(st.sampled_from(["replace", "replace", "delete", "wrap", "empty", "add"]))
        if not path:
            doc = draw(values) if how == "replace" else [doc] if how == "wrap" else doc
            continue
        *above, last = path
        parent = doc
        for key in above:
            parent = parent[key]
        if how == "delete":
            del parent[last]
        elif how == "wrap":
            parent[last] = [parent[last]]
        elif how == "empty":
            parent[last] = (
                type(parent[last])() if isinstance(parent[last], dict | list | str) else None
            )
        elif how == "add" and isinstance(parent[last], dict):
            parent[last][draw(st.text(max_size=6) | HOSTILE_TEXT)] = draw(values)
        else:
            parent[last] = draw(values)
    return doc


@st.composite
def damaged(draw: st.DrawFn, data: bytes) -> bytes:
    """``data`` cut short, or with a few bytes flipped, dropped or inserted."""
    how = draw(st.sampled_from(["cut", "flip", "drop", "insert"]))
    at = draw(st.integers(0, max(len(data) - 1, 0)))
    if how == "cut":
        return data[:at]
    if how == "flip":
        return data[:at] + bytes([data[at] ^ draw(st.integers(1, 255))]) + data[at + 1 :]
    if how == "drop":
        return data[:at] + data[at + draw(st.integers(1, 8)) :]
    return data[:at] + draw(st.binary(min_size=1, max_size=8)) + data[at:]


def as_json(doc: Any) -> bytes:
    return json.dumps(doc, allow_nan=True).encode()


def outside(valid: bytes, doc: Any, encode: Callable[[Any], bytes] = as_json) -> Any:
    """Arbitrary bytes, ``valid`` damaged, or ``doc`` mutated and encoded."""
    return st.one_of(
        st.binary(max_size=64), damaged(valid), mutated(doc).map(encode), mutated(doc).map(encode)
    )


def refused_or(parse: Callable[[], Any], names: str) -> Any:
    """What ``parse`` returns, or None when it raised a TetherError that names ``names``."""
    try:
        parsed = parse()
    except TetherError as exc:
        assert names in str(exc), f"the message does not name {names}: {exc}"
        str(exc).encode()  # a message the terminal can show
        event(f"refused: {str(exc).split('(')[0][-40:]}")
        return None
    event("parsed")
    return parsed


# -- YAML and JSON: what every document reader is built on -----------------------------------


def billion_laughs(levels: int) -> str:
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for i in range(1, levels):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize(
    "text",
    [
        billion_laughs(9),  # 9**9 strings once expanded
        billion_laughs(30),  # a walk of it would never end
        "a: &a [*a]\n",  # refers to itself: a walk of it never ends
        "a: &a {b: *a}\n",
        "[" * 500 + "]" * 500,
        "- " * 500 + "x\n",
        "a: " + "1" * 5000 + "\n",  # an integer Python refuses to read
        "a: 2024-13-45\n",
        "a: !!timestamp never\n",
        "a: !!int nine\n",
        "a: !!python/object/apply:os.system [echo owned]\n",
        'a: "\\ud800"\n',  # a lone surrogate, spelled as YAML's escape
    ],
    ids=lambda t: t[:24],
)
def test_yaml_no_tether_document_holds_is_refused_before_anything_walks_it(text: str) -> None:
    with pytest.raises(yaml.YAMLError):
        load_yaml(text)


def test_yaml_aliases_a_person_would_write_still_load() -> None:
    text = "base: &base {cmd: x, deps: [a, b]}\nstages: {one: *base, two: *base}\n"
    assert load_yaml(text)["stages"]["two"] == {"cmd": "x", "deps": ["a", "b"]}
    assert load_yaml("a: [" + ", ".join(["x"] * 50_000) + "]")["a"][-1] == "x"


YAML_PIECES = st.sampled_from(
    [
        *("a", "1", ": ", "- ", "\n", "  ", "[", "]", "{", "}", ", ", "&x ", "*x", "? ", "'", '"'),
        *("!!int ", "!!float ", "!!timestamp ", "!!binary ", "!!set ", "2024-13-45", "12:99:99"),
        "\\u",
    ]
)


@given(data=st.binary(max_size=100) | st.lists(YAML_PIECES, max_size=30).map("".join))
def test_any_text_is_yaml_or_a_yaml_error(data: bytes | str) -> None:
    try:
        load_yaml(data)
    except yaml.YAMLError:
        pass


VALID_DOCUMENT = {"tether": "thing", "format": 1, "items": [1, "two", {"three": None}]}


@given(data=outside(as_json(VALID_DOCUMENT), VALID_DOCUMENT))
@example(data=b"[" * 100_000)
@example(data=b'{"tether": "thing", "format": 1, "x": "\\ud800"}')
@example(data=b'{"tether": "thing", "format": 1, "x": ' + b"1" * 5000 + b"}")
@example(data="{}".encode("utf-16"))
def test_a_hostile_versioned_document_is_refused_naming_it(data: bytes) -> None:
    doc = refused_or(lambda: read_document(data, "thing", 1, "the thing x.json"), "x.json")
    if doc is not None:
        assert doc["tether"] == "thing" and doc["format"] == 1
        json.dumps(doc, ensure_ascii=False).encode()  # text that can go anywhere


# -- pack indexes: fetched from a remote by push, pull and gc --------------------------------

PACK, INDEX = make_pack([(hash_bytes(d), d) for d in (b"one", b"two", b"three")])
VALID_INDEX = json.loads(INDEX.to_bytes())


SPANS = st.fixed_dictionaries(  # well-formed indexes whose spans may fall outside their pack
    {
        "tether": st.just("pack-index"),
        "format": st.just(1),
        "pack": st.just(INDEX.name),
        "size": st.integers(-1, 40),
        "objects": st.lists(
            st.tuples(st.sampled_from(IDS), st.integers(-1, 40), st.integers(-1, 40)).map(list),
            max_size=4,
        ),
    }
).map(as_json)


@given(data=outside(INDEX.to_bytes(), VALID_INDEX) | SPANS)
@example(data=INDEX.to_bytes().replace(INDEX.name.encode(), b"../../../outside"))
@example(data=as_json({**VALID_INDEX, "objects": [[IDS[0] + "\n", 13, 3]]}))
@example(data=as_json({**VALID_INDEX, "objects": [[IDS[0], True, 3]]}))
@example(data=as_json({**VALID_INDEX, "objects": [[IDS[0], 13, 2**70]]}))
def test_a_hostile_pack_index_is_refused_with_a_clear_error(data: bytes) -> None:
    index = refused_or(lambda: PackIndex.from_bytes(data, "packs/cafe.idx"), "packs/cafe.idx")
    if index is None:
        return
    assert re.fullmatch("[0-9a-f]{64}", index.name)  # a file name, never a path
    assert type(index.size) is int and index.size >= 0
    for oid, (off, n) in index.entries.items():
        assert is_object_id(oid) and type(off) is int and type(n) is int
        assert 0 <= off <= off + n <= index.size
    assert PackIndex.from_bytes(index.to_bytes()) == index


# -- run records: sealed objects that push, pull and gc carry between clones -----------------

RUN = {
    "id": "01a2366c-c4f4-709f-a084-7d17013870c4",
    "name": "train-13870c4",
    "experiment": "default",
    "status": "finished",
    "started": 1796209427.79,
    "ended": 1796209428.21,
    "user": "alice",
    "host": "vm",
    "command": ["python", "train.py", "--lr", "0.1"],
    "exit_code": 0,
    "parent": None,
    "code": {
        "commit": "f50766d88f1e10c9441acae294249b1e15b0a388",
        "branch": "main",
        "remote": None,
        "dirty": True,
        "changed": ["train.py"],
        "diff": IDS[0],
        "entry_point": "train.py",
        "skipped": {"big.csv": {"size": 2_000_000, "id": None}},
        "submodules": [{"path": "vendor/lib", "commit": "ab" * 20, "present": True, "diff": None}],
    },
    "env": IDS[1],
    "data": {
        "inputs": {"data/train.csv": IDS[2]},
        "outputs": {"model.bin": IDS[3]},
        "modified": [],
        "missing": ["data/old.csv"],
        "pointers_start": {"data": IDS[2]},
        "pointers_end": {"data": IDS[2]},
    },
    "params": {"lr": "0.1", "epochs": "10"},
    "seeds": [42],
    "tags": {"team": "vision"},
    "notes": ["first try"],
    "metrics": {
        "acc": {"last": 0.9, "min": 0.5, "max": 0.95, "step": 10, "count": 11},
        "loss": {"last": "NaN", "min": "NaN", "max": "NaN", "step": 3, "count": 4},
    },
    "series": IDS[4],
    "artifacts": {"model": IDS[3]},
    "log": IDS[5],
    "notebook": None,
    "cwd": ".",
    "declared": {"deps": ["data"], "outs": []},
}
AMENDMENT = {
    "run": RUN["id"],
    "time": 1796209500.0,
    "user": "bob",
    "tags": {"ok": "yes"},
    "untag": ["team"],
    "note": "checked",
}
TOMBSTONE = {"run": RUN["id"], "time": 1796209600.0, "user": "bob", "reason": "a typo"}
RUNCACHE = {
    "stage": "train",
    "cmd": "python train.py",
    "outs": {"model.bin": IDS[3]},
    "metrics_files": {},
    "run": RUN["id"],
    "time": 1.0,
}
RECORDS = [
    json.loads(dump_record(kind, body))
    for kind, body in (
        ("run", RUN),
        ("amendment", AMENDMENT),
        ("tombstone", TOMBSTONE),
        ("runcache", RUNCACHE),
    )
]


def record_bytes(doc: Any) -> bytes:
    """As Tether writes a record: the header first, so gc's walk takes it for one."""
    if isinstance(doc, dict):
        rest = {k: v for k, v in doc.items() if k != "tether"}
        if doc.get("tether") == "record":
            return b'{"tether":"record",' + as_json(rest)[1:]
    return as_json(doc)


ANY_RECORD = st.one_of(
    *(outside(record_bytes(doc), doc, record_bytes) for doc in RECORDS),
)


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SqlMetaStore]:
    store = SqlMetaStore(f"sqlite:///{tmp_path_factory.mktemp('index') / 'index.db'}")
    yield store
    store.close()


@given(data=ANY_RECORD)
@example(data=record_bytes({**RECORDS[0], "name": "\ud800"}))
@example(data=record_bytes({**RECORDS[0], "started": 1e300}))
@example(data=record_bytes({**RECORDS[0], "exit_code": 2**64}))
@example(data=record_bytes({**RECORDS[0], "links": ["../../etc/passwd"]}))
@example(data=record_bytes({**RECORDS[0], "params": {"lr": None}}))
@example(data=record_bytes({**RECORDS[0], "id": "x' or 1=1 or id='"}))
@example(data=record_bytes({**RECORDS[0], "notes": [[[[[]]]]] * 2, "deep": [[[[[[[[]]]]]]]] * 20}))
def test_a_hostile_run_record_is_refused_with_a_clear_error(
    data: bytes, index: SqlMetaStore
) -> None:
    record = refused_or(lambda: load_record(data, OID), OID)
    links = refused_or(lambda: children(data, OID), OID)  # gc's and push's walk
    if links is not None:
        assert all(is_object_id(i) for i in links)
    if record is None:
        return
    assert all(is_object_id(i) for i in run_links(record))
    if record["kind"] == "run":
        index.put_runs([to_indexed(record, OID, [load_record(record_bytes(RECORDS[1]))])])
        json.dumps(record, ensure_ascii=False).encode()  # `runs show --json`
        dump_yaml(entry(record))  # `runs export --yaml`, the experiment ledger


SERIES = {
    "tether": "metrics",
    "format": 1,
    "series": {"acc": {"step": [0, 1], "ts": [1.0, 2.0], "value": [0.5, "NaN"]}},
}


@given(data=outside(as_json(SERIES), SERIES))
def test_a_hostile_metric_history_is_refused_with_a_clear_error(data: bytes) -> None:
    series = refused_or(lambda: load_series(data, OID), OID)
    for points in (series or {}).values():
        assert all(type(s) is int and isinstance(v, float) for s, _t, v in points)


# -- pipeline.yaml and pipeline.lock: committed, so a pull request can hold anything ------------

PIPELINE = {
    "stages": {
        "prepare": {
            "cmd": "python prepare.py",
            "deps": ["prepare.py", "data/raw"],
            "params": ["prepare.split", {"other.yaml": ["a.b"]}],
            "outs": ["data/prepared", {"path": "model.pkl", "compare": "metrics"}],
            "metrics": ["metrics.json"],
            "env": {"SEED": 1, "MODE": "fast"},
            "resources": {"cpu": 2},
        },
        "train": {
            "matrix": {"lr": [0.1, 0.01], "depth": [2, 3]},
            "cmd": "python train.py --lr ${item.lr}",
            "deps": ["data/prepared", "src/${item.depth}"],
            "outs": ["models/${item.lr}-${item.depth}"],
        },
        "evaluate": {
            "foreach": ["a", "b"],
            "cmd": "echo ${item}",
            "deps": ["models"],
            "outs": ["eval/${item}"],
        },
    },
    "executor": "local",
}
YAML_SNIPPETS = st.sampled_from(
    [
        "2024-13-45",
        "2024-01-01",
        "!!binary aGk=",
        "!!set {a: null}",
        "*nope",
        "&x [*x]",
        "!!float x",
        "1" * 5000,
        "[" * 70 + "]" * 70,
        "{[1]: 2}",
        "!!python/name:os.system",
        ".nan",
        "-.inf",
        "0x1F",
        "~",
        "yes",
        "'${item}'",
        "${item.lr}",
        "'../${item}'",
    ]
)
_SCALAR_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|-?\d+(?:\.\d+)?|null|true|false')


@st.composite
def yaml_text(draw: st.DrawFn, doc: Any) -> bytes:
    """``doc`` as YAML (JSON is YAML), sometimes with one value spelled in YAML's own ways:
    tags, dates, aliases, a flow mapping with a list for a key."""
    text = json.dumps(doc)
    places = list(_SCALAR_TOKEN.finditer(text))
    if places and draw(st.booleans()):
        at = draw(st.sampled_from(places))
        text = text[: at.start()] + draw(YAML_SNIPPETS) + text[at.end() :]
    return text.encode()


PIPELINE_INPUTS = st.one_of(
    st.binary(max_size=64),
    damaged(json.dumps(PIPELINE).encode()),
    mutated(PIPELINE).flatmap(yaml_text),
    mutated(PIPELINE).flatmap(yaml_text),
    mutated(PIPELINE).flatmap(yaml_text),
)
NOWHERE = Path("/nonexistent")


def _matrix(keys: int, values: int) -> bytes:
    grid = {f"k{i}": list(range(values)) for i in range(keys)}
    doc = {"stages": {"s": {"cmd": "echo", "matrix": grid, "outs": ["o/${item.k0}"]}}}
    return json.dumps(doc).encode()


def _foreach(n: int) -> bytes:
    items = ", ".join(str(i) for i in range(n))
    return (
        f"stages:\n  s:\n    foreach: [{items}]\n    cmd: echo ${{item}}\n"
        "    deps: ['in/${item}']\n    outs: ['out/${item}']\n"
    ).encode()


@given(data=PIPELINE_INPUTS)
@example(data=b"stages:\n  s:\n    cmd: echo\n    outs: [{compare: exact}]\n")
@example(data=b"stages:\n  s:\n    cmd: echo\n    matrix: {a: 3}\n")
@example(data=b"stages:\n  s:\n    cmd: echo\n    foreach: 3\n")
@example(data=b"stages:\n  s:\n    cmd: echo\n    resources: {cpu: lots}\n")
@example(data=b"stages:\n  s:\n    cmd: echo\n    resources: [cpu]\n")
@example(data=b"stages:\n  s:\n    cmd: echo\n    params: [{p.yaml: 3}]\n")
@example(data=b"stages:\n  s:\n    cmd: echo\n    deps: [[a]]\n")
@example(data=b"stages:\n  s:\n    cmd: echo ${item.x}\n    foreach: [1]\n")
@example(data=b'stages:\n  s:\n    cmd: "echo \\ud800"\n')
@example(data=_matrix(12, 10))  # 10**12 stages
@example(data=_foreach(20_000))  # 20,000 stages: their outs must not be compared pairwise
def test_a_hostile_pipeline_yaml_is_refused_with_a_clear_error(data: bytes) -> None:
    pipeline = refused_or(lambda: load_pipeline(NOWHERE, data), PIPELINE_FILE)
    if pipeline is None:
        return
    assert set(pipeline.order()) == set(pipeline.stages)
    for name, stage in pipeline.stages.items():
        assert name == stage.name and type(stage.cmd) is str
        paths = [*stage.deps, *stage.out_paths, *stage.metrics, *(f for f, _ in stage.params)]
        for path in paths:
            assert type(path) is str and path and not path.startswith("/")
            assert ".." not in path.split("/") and path.split("/")[0] not in (".git", ".tether")
        assert all(o.compare in ("exact", "metrics", "none") for o in stage.outs)
        assert all(type(k) is str for _, k in stage.params)
        assert all(type(k) is str and type(v) is str for k, v in stage.env)
        assert all(type(k) is str and math.isfinite(v) and v >= 0 for k, v in stage.resources)
        json.dumps([name, stage.cmd, paths, stage.env], ensure_ascii=False).encode()


LOCK_STAGES = {
    "prepare": StageLock(
        "python prepare.py",
        {"prepare.py": IDS[0], "data/raw": IDS[1]},
        {"params.yaml": {"prepare.split": 0.2, "prepare.names": ["a", "b"]}},
        {"data/prepared": IDS[2]},
        RUN["id"],
        {"SEED": "1"},
        {"metrics.json": IDS[3]},
    ),
    "train@0": StageLock("python train.py --lr 0.1", {"data/prepared": IDS[2]}),
}


@pytest.fixture(scope="module")
def lock_bytes(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    folder = tmp_path_factory.mktemp("lock")
    write_lock(folder, LOCK_STAGES)
    return (folder / LOCK_FILE).read_bytes()


@given(data=st.data())
def test_a_hostile_pipeline_lock_is_refused_with_a_clear_error(
    data: st.DataObject, lock_bytes: bytes
) -> None:
    valid = load_yaml(lock_bytes)
    hostile = data.draw(
        st.one_of(
            st.binary(max_size=64),
            damaged(lock_bytes),
            mutated(valid).flatmap(yaml_text),
            mutated(valid).flatmap(yaml_text),
        )
    )
    stages = refused_or(lambda: read_lock(NOWHERE, hostile), LOCK_FILE)
    if stages is None:
        return
    for name, stage in stages.items():
        assert type(name) is str and type(stage.cmd) is str
        for ids in (stage.deps, stage.outs, stage.metrics):
            assert all(type(p) is str and is_object_id(i) for p, i in ids.items())
        assert all(type(f) is str and isinstance(v, dict) for f, v in stage.params.items())
        assert all(type(k) is str and type(v) is str for k, v in stage.env.items())
        assert stage.run is None or type(stage.run) is str
    assert read_lock(NOWHERE, lock_text(stages).encode()) == stages  # what repro writes next


def test_the_lock_a_repro_writes_reads_back(lock_bytes: bytes) -> None:
    assert read_lock(NOWHERE, lock_bytes) == LOCK_STAGES


# -- the run query language: `tether runs --where`, `--sort`, and MLflow's search_runs -----------

QUERY_WORDS = st.sampled_from(
    [
        "metrics.acc",
        "params.lr",
        "params.`my key`",
        "tags.team",
        "data.data/train.csv",
        "metrics.",
        "params.``",
        "status",
        "started",
        "dirty",
        "exit_code",
        "duration",
        "nonsense",
        "attributes.start_time",
        "tags.mlflow.runName",
        'metrics."val-loss"',
        "=",
        "==",
        "!=",
        "<>",
        "<",
        ">=",
        "like",
        "not",
        "in",
        "is",
        "null",
        "and",
        "or",
        "ILIKE",
        "(",
        ")",
        ",",
        "-",
        "asc",
        "desc",
        "true",
        "false",
        "0.9",
        "-2",
        "1e999",
        "99999999999999999999",
        "1e-3",
        "'adam'",
        "'it\\'s'",
        '"x"',
        "'%_\\\\'",
        "'\ud800'",
        "'a\x00b'",
        "'unterminated",
        "`",
    ]
)
QUERIES = st.one_of(
    st.text(max_size=40),
    st.lists(QUERY_WORDS, max_size=14).map(" ".join),
    st.lists(QUERY_WORDS, max_size=14).map("".join),
)


@pytest.fixture(scope="module")
def runs_index(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    store = SqlMetaStore(f"sqlite:///{tmp_path_factory.mktemp('runs') / 'index.db'}")
    store.put_runs([to_indexed(load_record(record_bytes(RECORDS[0])), OID)])
    yield store.engine  # queries run on it directly: an SQL error is not hidden as IndexStoreError
    store.close()


def run_query(engine: Engine, where: str | None, sort: str | None) -> None:
    with engine.connect() as conn:
        conn.execute(build_search(where, sort, 10)).all()


@given(where=QUERIES, sort=st.none() | QUERIES)
@example(where="metrics.acc > 0.5 and " * 400 + "status = 'finished'", sort=None)
@example(where="(" * 100 + "status = 'x'" + ")" * 100, sort=None)
@example(where="not " * 100 + "status = 'x'", sort=None)
@example(where="params.lr in (" + ", ".join(["1"] * 990) + ")", sort=None)
@example(where="name = '\ud800'", sort=None)
@example(where="tags.`\ud800` is null", sort="tags.\ud800 desc")
@example(where="started > 1e999", sort="-metrics.acc, params.lr asc")
@example(where="exit_code = 99999999999999999999", sort=None)
def test_a_hostile_run_query_is_refused_with_a_clear_error(
    where: str, sort: str | None, runs_index: Engine
) -> None:
    try:
        run_query(runs_index, where, sort)
    except QueryError as exc:  # the query, a caret under the place, and what to write
        assert len(exc.query) in (len(where), len(sort or "")) and exc.position <= len(exc.query)
        str(exc).encode()  # a message the terminal can show


@given(mlflow=QUERIES)
@example(mlflow="attributes.start_time > 1e999")
@example(mlflow='tags."mlflow.runName" = "\ud800"')
@example(mlflow="metrics.")
def test_a_hostile_mlflow_filter_is_refused_with_a_clear_error(
    mlflow: str, runs_index: Engine
) -> None:
    try:
        run_query(runs_index, translate(mlflow), translate(mlflow))
    except UsageError as exc:
        str(exc).encode()


PARAMS = {"prepare": {"split": 0.2, "names": ["a", "b"]}, "train": {"lr": 0.1}}


@given(data=outside(json.dumps(PARAMS).encode(), PARAMS, lambda d: json.dumps(d).encode()))
@example(data=b"train: {lr: 2024-13-45}\n")
@example(data=billion_laughs(9).encode())
def test_a_hostile_params_file_is_refused_with_a_clear_error(data: bytes, tmp_path: Path) -> None:
    (tmp_path / "params.yaml").write_bytes(data)
    params = _ParamFiles(tmp_path, Seen(tmp_path))
    value = refused_or(lambda: params.get("params.yaml", "train.lr", "train"), "params.yaml")
    if value is not None:
        json.dumps(value, default=str, ensure_ascii=False).encode()  # what the lock and run keep


# -- refs: names a remote lists ------------------------------------------------


@given(name=st.text(max_size=20) | st.sampled_from(["runs/a\n", "runs/../x", "a//b", "/a", "."]))
def test_a_hostile_ref_name_is_refused_before_it_names_a_file(name: str) -> None:
    checked = refused_or(lambda: check_ref_name(name), repr(name))
    if checked is not None:
        assert re.fullmatch(r"[A-Za-z0-9._@#+-]+(/[A-Za-z0-9._@#+-]+)*", checked)
        assert ".." not in checked.split("/")
