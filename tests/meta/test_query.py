"""The run query language against a real SQLite index in a temp folder."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, insert

from tether.errors import QueryError
from tether.meta import schema
from tether.meta.query import (
    And,
    Comparison,
    Field,
    Not,
    Or,
    SortKey,
    build_search,
    compile_where,
    parse_query,
    parse_sort,
)

NAN = None  # a NaN metric is stored as NULL

RUNS = [  # id, name, status, started, ended, duration, branch, dirty, exit_code, deleted
    ("r1", "baseline", "finished", 100.0, 200.0, 100.0, "main", False, 0, False),
    ("r2", "wide", "finished", 200.0, 260.0, 60.0, "dev", True, 0, False),
    ("r3", "big-lr", "failed", 300.0, 310.0, 10.0, None, False, 1, False),
    ("r4", "live", "running", 400.0, None, None, "main", None, None, False),
    ("r5", "gone", "finished", 500.0, 510.0, 10.0, "main", False, 0, True),
]
PARAMS = [  # run, key, value as logged, as a number
    ("r1", "lr", "0.01", 0.01), ("r1", "opt", "adam", None), ("r1", "epochs", "10", 10.0),
    ("r1", "amp", "True", None), ("r2", "lr", "0.1", 0.1), ("r2", "opt", "sgd", None),
    ("r2", "my key", "x", None), ("r3", "lr", "0.01", 0.01), ("r3", "opt", "Adam", None),
    ("r5", "lr", "0.01", 0.01),
]  # fmt: skip
METRICS = [  # run, key, last
    ("r1", "acc", 0.95), ("r1", "loss", 0.1), ("r1", "val.acc", 0.9), ("r2", "acc", 0.85),
    ("r2", "loss", NAN), ("r3", "acc", NAN), ("r5", "acc", 0.99),
]  # fmt: skip
TAGS = [("r1", "team", "vision"), ("r2", "team", "nlp")]
DATA = [  # run, role, path, object
    ("r1", "input", "data/train.csv", "o-train1"), ("r1", "output", "model.pt", "o-model1"),
    ("r2", "input", "data/train.csv", "o-train2"), ("r3", "input", "data/train.csv", "o-train1"),
]  # fmt: skip


def rows(columns: str, values: list[tuple[Any, ...]]) -> list[dict[str, Any]]:
    return [dict(zip(columns.split(), row, strict=True)) for row in values]


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    path: Path = tmp_path_factory.mktemp("index") / "index.sqlite"
    engine = create_engine(f"sqlite:///{path}")
    schema.metadata.create_all(engine)
    with engine.begin() as conn:
        columns = "id name status started ended duration branch dirty exit_code deleted"
        runs = [{**row, "experiment": "mnist"} for row in rows(columns, RUNS)]
        conn.execute(insert(schema.runs), runs)
        conn.execute(insert(schema.params), rows("run_id key value num", PARAMS))
        conn.execute(insert(schema.metrics), rows("run_id key last", METRICS))
        conn.execute(insert(schema.tags), rows("run_id key value", TAGS))
        conn.execute(insert(schema.data), rows("run_id role path object", DATA))
    yield engine
    engine.dispose()


def search(
    engine: Engine,
    where: str | None,
    sort: str | None = None,
    limit: int | None = None,
    include_deleted: bool = False,
) -> list[str]:
    stmt = build_search(where, sort, limit, include_deleted=include_deleted)
    with engine.connect() as conn:
        return [row.id for row in conn.execute(stmt)]


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        ("params.lr = 0.01", {"r1", "r3"}),
        ("params.lr == '0.01'", {"r1", "r3"}),
        ("params.epochs > 9", {"r1"}),  # as a number: 10 > 9
        ("params.epochs > '9'", set()),  # as logged text: '10' < '9'
        ("params.amp = true", {"r1"}),
        ('params.`my key` = "x"', {"r2"}),
        ("metrics.acc >= 0.85 and metrics.acc < 0.9", {"r2"}),
        ("metrics.acc >= 8.5e-1", {"r1", "r2"}),
        ("metrics.val.acc > -1", {"r1"}),
        ("metrics.acc != 0.95", {"r2"}),  # r3's NaN and r4's missing acc never match
        ("metrics.loss <> 0.1", set()),
        ("metrics.loss is null", {"r2", "r3", "r4"}),
        ("metrics.loss is not null", {"r1"}),
        ("not metrics.acc > 0.9", {"r2", "r3", "r4"}),  # `not` is the exact complement
        ("status = 'running' or metrics.acc > 0.9 and params.lr = 0.01", {"r1", "r4"}),
        ("(status = 'running' or metrics.acc > 0.9) and params.lr = 0.01", {"r1"}),
        ("NOT status = 'finished' AND Not status = 'running'", {"r3"}),
        ("params.opt like 'a%'", {"r1", "r3"}),  # like is case-insensitive
        ("params.opt not like 'a%'", {"r2"}),
        ("name like 'b_g-%'", {"r3"}),
        ("params.opt in ('sgd', 'adam')", {"r1", "r2"}),
        ("status not in ('finished')", {"r3", "r4"}),
        ("data.data/train.csv = 'o-train1'", {"r1", "r3"}),
        ("data.model.pt = 'o-model1'", {"r1"}),
        ("tags.team = 'nlp'", {"r2"}),
        ("tags.team != 'nlp'", {"r1"}),
        ("dirty = true", {"r2"}),
        ("exit_code = 1 or ended is null", {"r3", "r4"}),
        ("branch != 'main'", {"r2"}),  # r3 has no branch
        ("not branch = 'main'", {"r2", "r3"}),
        ("started >= 200 and duration < 100", {"r2", "r3"}),
        ("id = 'r5'", set()),  # deleted
    ],
)
def test_where_selects_runs(engine: Engine, where: str, expected: set[str]) -> None:
    assert set(search(engine, where)) == expected


def test_deleted_runs_are_hidden_unless_asked_for(engine: Engine) -> None:
    assert search(engine, "metrics.acc > 0.98") == []
    assert search(engine, "metrics.acc > 0.98", include_deleted=True) == ["r5"]


@pytest.mark.parametrize(
    ("sort", "expected"),
    [
        (None, ["r4", "r3", "r2", "r1"]),
        ("metrics.acc desc", ["r1", "r2", "r4", "r3"]),  # NULLs last, then id desc
        ("-metrics.acc", ["r1", "r2", "r4", "r3"]),
        ("metrics.acc", ["r2", "r1", "r4", "r3"]),
        ("params.lr, name desc", ["r3", "r1", "r2", "r4"]),
        ("tags.team ASC, -started", ["r2", "r1", "r4", "r3"]),
        ("ended desc", ["r3", "r2", "r1", "r4"]),
    ],
)
def test_sort_orders_runs(engine: Engine, sort: str | None, expected: list[str]) -> None:
    assert search(engine, None, sort) == expected


def test_limit_and_filter_with_sort(engine: Engine) -> None:
    assert search(engine, None, "started", limit=2) == ["r1", "r2"]
    assert search(engine, "metrics.acc > 0", "-metrics.acc", limit=1) == ["r1"]


def test_parse_query_builds_the_tree_with_and_binding_tighter() -> None:
    node = parse_query("id = 'a' or not (status = 'x') and params.lr in (1, 2.5e-1)")
    assert isinstance(node, Or) and isinstance(node.operands[1], And)
    negation, listed = node.operands[1].operands
    assert isinstance(negation, Not) and isinstance(negation.operand, Comparison)
    assert isinstance(listed, Comparison) and [c.value for c in listed.values] == [1, 0.25]
    assert parse_sort(None) == [SortKey(Field("run", "started", 0), descending=True)]


def test_strings_unescape_and_every_value_is_a_bound_parameter(engine: Engine) -> None:
    text = r"""tags.team = 'it\'s' or name = "a \"b\" \d" or name = 'x\' or 1=1 --'"""
    node = parse_query(text)
    assert isinstance(node, Or)
    assert [c.values[0].value for c in node.operands if isinstance(c, Comparison)] == [
        "it's",
        'a "b" \\d',
        "x' or 1=1 --",
    ]
    assert "1=1" not in str(compile_where(text)) and search(engine, text) == []


@pytest.mark.parametrize(
    ("query", "position"),
    [
        ("metrics.acc 0.9", 12),  # syntax: no operator
        ("status = 'a' status = 'b'", 13),  # syntax: no and/or
        ("metric.acc > 1", 0),  # unknown prefix
        ("params.lr > 1 and colour = 'red'", 18),  # unknown attribute
        ("tags.team = 'nlp", 12),  # unterminated string
        ("metrics.acc >", 13),  # missing operand, at the end
        ("metrics.acc > and status = 'x'", 14),  # missing operand
        ("(status = 'x'", 13),  # unclosed parenthesis
        ("metrics.acc = 'high'", 14),  # wrong kind of value
        ("status = finished", 9),  # unquoted text
        ("params.`my key = 1", 7),  # unterminated backtick
        ("params.opt in ('a', 1)", 20),  # mixed in-list
        ("(" * 100 + "id = 'x'" + ")" * 100, 64),  # nested too deep
    ],
)
def test_query_errors_point_at_the_offending_token(query: str, position: int) -> None:
    with pytest.raises(QueryError) as caught:
        parse_query(query)
    assert caught.value.position == position
    assert f"\n  {query}\n  {' ' * position}^" in str(caught.value)


@pytest.mark.parametrize(
    ("sort", "position"),
    [("metrics.acc sideways", 12), ("data.x", 0), ("-name desc", 6), ("name,", 5)],
)
def test_sort_errors_point_at_the_offending_token(sort: str, position: int) -> None:
    with pytest.raises(QueryError) as caught:
        parse_sort(sort)
    assert caught.value.position == position
    assert str(caught.value).endswith(" " * position + "^")
