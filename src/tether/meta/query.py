"""The run query language, compiled to SQLAlchemy Core with every value a bound parameter.

::

    metrics.acc > 0.9 and (params.opt = 'adam' or tags.team like 'vis%') and not status = 'failed'

A condition is ``FIELD OP VALUE``; conditions combine with ``and``, ``or``, ``not`` and parentheses
(``and`` binds tighter than ``or``; keywords are case-insensitive). Fields:

- ``metrics.KEY``: the metric's last value (a NaN is stored as NULL and never matches);
- ``params.KEY``: a number compares the parameter as a number, quoted text compares it as logged;
- ``tags.KEY``: text; ``data.PATH``: the object id of an input or output at PATH;
- a run attribute: ``id, name, experiment, status, started, ended, duration, user, host, commit,
  branch, dirty, exit_code, parent, record``.

A KEY runs to the next space or operator and may hold dots, slashes and dashes; write any other key
in backticks: ``params.`my key```. Operators: ``= == != <> < <= > >= like, not like, in (..),
not in (..), is null, is not null``. Values: numbers (``1e-3``, ``-2``), ``'quoted'`` or
``"quoted"`` text (a backslash escapes the quote), ``true``/``false``. ``like`` is case-insensitive
(``%`` any text, ``_`` one character, ``\\`` escapes them). A run without the key never matches a
comparison, not even ``!=``; ``is null`` matches it; ``not`` is the exact complement.
"""

from __future__ import annotations

import operator
import re
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import ColumnElement, FromClause, Select, Table, and_, func, not_, or_, select

from tether.errors import QueryError, UsageError
from tether.meta import schema

Scalar = bool | int | float | str

# every column of runs but the long command line and the tombstone (see include_deleted)
ATTRIBUTES = tuple(c.name for c in schema.runs.c if c.name not in ("command", "deleted"))
_KEYED: dict[str, Table] = {
    t.name: t for t in (schema.metrics, schema.params, schema.tags, schema.data)
}
_KINDS = {"metrics": ("number",), "params": ("number", "text", "bool"), "tags": ("text", "bool")}
_KEYWORDS = {"and", "or", "not", "like", "in", "is", "null", "true", "false", "asc", "desc"}
_OPERATORS = {"==": "=", "<>": "!="}
_MAX_DEPTH = 64  # and _MAX_TOKENS keeps SQL under SQLite's expression-depth and variable limits
_MAX_TOKENS = 1000
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_NUMBER = re.compile(r"-?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?")
_OPERATOR = re.compile(r"==|!=|<>|<=|>=|=|<|>")
_STRING = re.compile(r"'(?:\\.|[^'\\])*'|\"(?:\\.|[^\"\\])*\"", re.DOTALL)
_NONSPACE = re.compile(r"\S")
_SURROGATE = re.compile("[\ud800-\udfff]")
_KEY = re.compile(r"`([^`]+)`|([^\s=!<>(),'\"`]+)")  # `any key` or one up to a space or operator
_FIELD_HELP = f"use metrics.KEY, params.KEY, tags.KEY, data.PATH or one of {', '.join(ATTRIBUTES)}"


@dataclass(frozen=True)
class Field:
    """``source`` is ``run`` for a run attribute, else metrics, params, tags or data."""

    source: str
    name: str
    position: int

    def __str__(self) -> str:
        return self.name if self.source == "run" else f"{self.source}.{self.name}"


@dataclass(frozen=True)
class Constant:
    value: Scalar
    position: int


@dataclass(frozen=True)
class Comparison:
    """``op`` is one of = != < <= > >= like, not like, in, not in, is null, is not null."""

    field: Field
    op: str
    values: tuple[Constant, ...]
    position: int


@dataclass(frozen=True)
class Not:
    operand: Node


@dataclass(frozen=True)
class And:
    operands: tuple[Node, ...]


@dataclass(frozen=True)
class Or:
    operands: tuple[Node, ...]


Node = Comparison | Not | And | Or


@dataclass(frozen=True)
class SortKey:
    field: Field
    descending: bool


@dataclass(frozen=True)
class _Token:
    kind: str  # word, field, number, string, op, end, or the character itself: ( ) , -
    text: str
    position: int
    value: Scalar | Field | None = None


def _tokenize(query: str) -> list[_Token]:
    if bad := _SURROGATE.search(query):  # from a command line that is not UTF-8
        shown = _SURROGATE.sub("\ufffd", query)  # the same length: the caret stays right
        hint = "it is no character (the terminal sent bytes that are not UTF-8): retype it"
        raise QueryError(f"unexpected {bad.group()!r}: {hint}", shown, bad.start())
    tokens: list[_Token] = []
    position = 0
    while match := _NONSPACE.search(query, position):
        if len(tokens) == _MAX_TOKENS:
            hint = f"split it: a query holds at most {_MAX_TOKENS} words, values and symbols"
            raise QueryError(f"the query is too long; {hint}", query, match.start())
        token, position = _next_token(query, match.start())
        tokens.append(token)
    return [*tokens, _Token("end", "", len(query))]


def _next_token(query: str, position: int) -> tuple[_Token, int]:
    char = query[position]
    if char in "(),":
        return _Token(char, char, position), position + 1
    if match := _NUMBER.match(query, position):
        text = match.group()  # an int unless it has a point or exponent or overflows 64 bits
        number = int(text) if text.lstrip("-").isdigit() and len(text) < 19 else float(text)
        return _Token("number", text, position, number), match.end()
    if char == "-":
        return _Token("-", char, position), position + 1
    if match := _OPERATOR.match(query, position):
        return _Token("op", match.group(), position), match.end()
    if char in "'\"":
        if not (match := _STRING.match(query, position)):
            hint = f"add the closing {char} (write \\{char} for a {char} inside it)"
            raise QueryError(f"unterminated string: {hint}", query, position)
        text = match.group()
        value = re.sub(rf"\\([\\{char}])", r"\1", text[1:-1])
        return _Token("string", text, position, value), match.end()
    if match := _WORD.match(query, position):
        if query.startswith(".", match.end()):
            return _scan_field(query, position, match.group().lower())
        return _Token("word", match.group(), position, match.group().lower()), match.end()
    hint = "quote text values ('adam'); write keys with spaces in backticks (params.`my key`)"
    raise QueryError(f"unexpected character {char!r}: {hint}", query, position)


def _scan_field(query: str, start: int, prefix: str) -> tuple[_Token, int]:
    if prefix not in _KEYED:
        raise QueryError(f"unknown field prefix '{prefix}.': {_FIELD_HELP}", query, start)
    key_start = start + len(prefix) + 1
    if not (match := _KEY.match(query, key_start)):
        quoted = "a key in backticks must not be empty and must end with `"
        problem = quoted if query.startswith("`", key_start) else f"expected a key after {prefix}."
        raise QueryError(f"{problem}: write {prefix}.acc or {prefix}.`my key`", query, key_start)
    key = match.group(1) if match.group(1) is not None else match.group(2)
    return _Token("field", match.group(), start, Field(prefix, key, start)), match.end()


class _Parser:
    """Recursive descent over the tokens; every failure is a QueryError at the offending token."""

    def __init__(self, query: str) -> None:
        self.query = query
        self.tokens = _tokenize(query)
        self.index = 0
        self.depth = 0

    def peek(self) -> _Token:
        return self.tokens[self.index]

    def take(self) -> _Token:
        token = self.tokens[self.index]
        self.index += token.kind != "end"
        return token

    def accept(self, kind: str, word: str | None = None) -> _Token | None:
        token = self.peek()
        return self.take() if token.kind == kind and token.value == word else None

    def fail(self, message: str, at: _Token | int) -> QueryError:
        """A QueryError at a token (naming what was found there) or at a character position."""
        if isinstance(at, int):
            return QueryError(message, self.query, at)
        found = "the end of the query" if at.kind == "end" else f"'{at.text}'"
        return QueryError(f"{message}, found {found}", self.query, at.position)

    def expect_end(self, message: str) -> None:
        if self.peek().kind != "end":
            raise self.fail(message, self.peek())

    def disjunction(self) -> Node:
        operands = [self.conjunction()]
        while self.accept("word", "or"):
            operands.append(self.conjunction())
        return operands[0] if len(operands) == 1 else Or(tuple(operands))

    def conjunction(self) -> Node:
        operands = [self.unary()]
        while self.accept("word", "and"):
            operands.append(self.unary())
        return operands[0] if len(operands) == 1 else And(tuple(operands))

    def unary(self) -> Node:
        token = self.peek()
        if not (token.kind == "(" or _is(token, "not")):
            return self.comparison()
        self.depth += 1
        if self.depth > _MAX_DEPTH:
            raise self.fail(f"the query nests deeper than {_MAX_DEPTH} levels; simplify it", token)
        self.take()
        node: Node = Not(self.unary()) if token.kind == "word" else self.disjunction()
        if token.kind == "(" and not self.accept(")"):
            opened = f"the '(' at character {token.position + 1}"
            raise self.fail(f"expected ')' to close {opened}, or 'and'/'or'", self.peek())
        self.depth -= 1
        return node

    def field(self) -> Field:
        token = self.take()
        if isinstance(token.value, Field):
            return token.value
        if token.kind == "word" and token.value in ATTRIBUTES:
            return Field("run", str(token.value), token.position)
        if token.kind == "word" and token.value not in _KEYWORDS:
            raise self.fail(f"unknown field '{token.text}': {_FIELD_HELP}", token.position)
        raise self.fail("expected a field such as metrics.acc, params.lr or status", token)

    def comparison(self) -> Comparison:
        field = self.field()
        token = self.take()
        if token.kind == "op":
            op = _OPERATORS.get(token.text, token.text)
            return self.checked(Comparison(field, op, (self.constant(token),), token.position))
        negated = "not " if _is(token, "not") else ""
        word = self.take() if negated else token
        if _is(word, "is") and not negated:
            negated = "not " if self.accept("word", "not") else ""
            if not self.accept("word", "null"):
                raise self.fail(f"expected 'null' after '{field} is'", self.peek())
            return Comparison(field, f"is {negated}null", (), token.position)
        if _is(word, "like"):
            values: tuple[Constant, ...] = (self.constant(word),)
        elif _is(word, "in"):
            values = self.constants(word)
        else:
            ops = "=, !=, <, <=, >, >=, like, in or is null"
            raise self.fail(f"expected an operator after '{field}' ({ops})", word)
        return self.checked(Comparison(field, f"{negated}{word.value}", values, token.position))

    def constant(self, after: _Token) -> Constant:
        token = self.take()
        if _is(token, "true", "false"):
            return Constant(token.value == "true", token.position)
        if token.kind in ("number", "string") and not isinstance(token.value, Field | None):
            return Constant(token.value, token.position)
        hint = f"quote text: '{token.text}'" if token.kind == "word" else "such as 0.9 or 'adam'"
        raise self.fail(f"expected a value after '{after.text}' ({hint})", token)

    def constants(self, after: _Token) -> tuple[Constant, ...]:
        if not self.accept("("):
            raise self.fail(f"expected '(' after '{after.text}', as in in (1, 2)", self.peek())
        values = [self.constant(after)]
        while self.accept(","):
            values.append(self.constant(after))
        if not self.accept(")"):
            raise self.fail("expected ',' or ')' to close the list", self.peek())
        return tuple(values)

    def checked(self, node: Comparison) -> Comparison:
        """Reject a value of the wrong kind for the field, pointing at the value."""
        like = node.op.endswith("like")
        allowed = ("text",) if like else _allowed_kinds(node.field)
        for constant in node.values:
            kind = _kind(constant.value)
            if kind not in allowed:
                wanted = (
                    "a quoted pattern ('ad%')" if like else " or ".join(_NOUNS[k] for k in allowed)
                )
                what = f"'{node.op}' takes" if like else f"{node.field} compares with"
                raise self.fail(f"{what} {wanted}, not {_NOUNS[kind]}", constant.position)
            if kind != _kind(node.values[0].value):
                mixed = "an 'in' list mixes kinds of values; split it into conditions with 'or'"
                raise self.fail(mixed, constant.position)
        return node

    def sort_key(self) -> SortKey:
        minus = self.accept("-")
        field = self.field()
        if field.source == "data":
            hint = "sort by a metric, param, tag or attribute"
            raise self.fail(f"cannot sort by data; {hint}", field.position)
        direction = self.peek()
        if not _is(direction, "asc", "desc"):
            return SortKey(field, minus is not None)
        if minus:
            raise self.fail(f"write either -{field} or {field} asc/desc, not both", direction)
        self.take()
        return SortKey(field, direction.value == "desc")


_NOUNS = {"number": "a number (0.9)", "text": "quoted text ('adam')", "bool": "true or false"}


def _is(token: _Token, *words: str) -> bool:
    return token.kind == "word" and token.value in words


def _kind(value: Scalar) -> str:
    return "bool" if isinstance(value, bool) else "text" if isinstance(value, str) else "number"


def _allowed_kinds(field: Field) -> tuple[str, ...]:
    if field.source != "run":
        return _KINDS.get(field.source, ("text",))
    python_type = schema.runs.c[field.name].type.python_type
    return {bool: ("bool",), str: ("text",)}.get(python_type, ("number",))


def parse_query(text: str) -> Node:
    """The syntax tree of a run query; a QueryError points at the first thing that is wrong."""
    parser = _Parser(text)
    node = parser.disjunction()
    parser.expect_end("expected 'and', 'or' or the end of the query")
    return node


def parse_sort(text: str | None) -> list[SortKey]:
    """Comma-separated ``FIELD [asc|desc]`` or ``-FIELD`` (descending); None: ``started desc``."""
    if text is None or not text.strip():
        return [SortKey(Field("run", "started", 0), descending=True)]
    parser = _Parser(text)
    keys = [parser.sort_key()]
    while parser.accept(","):
        keys.append(parser.sort_key())
    parser.expect_end("expected ',' and another sort key, or the end of the sort")
    return keys


def compile_where(text: str | None) -> ColumnElement[bool] | None:
    """A where clause over ``schema.runs`` for a run query; None for no query (all runs)."""
    if text is None or not text.strip():
        return None
    return _compile(parse_query(text))


def _compile(node: Node) -> ColumnElement[bool]:
    if isinstance(node, And):
        return and_(*(_compile(operand) for operand in node.operands))
    if isinstance(node, Or):
        return or_(*(_compile(operand) for operand in node.operands))
    if isinstance(node, Not):
        return not_(_compile(node.operand))
    return _compile_comparison(node)


def _compile_comparison(node: Comparison) -> ColumnElement[bool]:
    field, op = node.field, node.op
    kind = _kind(node.values[0].value) if node.values else "null"
    column = _value_column(field, kind)
    values = [_bindable(c.value, field) for c in node.values]
    if field.source == "run":
        if op.startswith("is"):
            return column.is_(None) if op == "is null" else column.is_not(None)
        condition = _apply(column, op, values)
        # NULL = x is unknown, and so is NOT (NULL = x): make `not` the exact complement
        nullable = schema.runs.c[field.name].nullable
        return and_(column.is_not(None), condition) if nullable else condition
    table = _KEYED[field.source]
    key = table.c.path if field.source == "data" else table.c.key
    condition = column.is_not(None) if op.startswith("is") else _apply(column, op, values)
    matching = schema.runs.c.id.in_(select(table.c.run_id).where(key == field.name, condition))
    return not_(matching) if op == "is null" else matching


def _value_column(field: Field, kind: str) -> ColumnElement[Any]:
    if field.source == "run":
        return schema.runs.c[field.name]
    table = _KEYED[field.source]
    if field.source == "metrics":
        return table.c.last
    if field.source == "data":
        return table.c.object
    if kind == "number":
        return table.c.num
    return func.lower(table.c.value) if kind == "bool" else table.c.value


def _bindable(value: Scalar, field: Field) -> Scalar:
    """Booleans compare with params and tags as text: ``true`` matches 'True' and 'true'."""
    if isinstance(value, bool) and field.source != "run":
        return "true" if value else "false"
    return value


_COMPARE = {"=": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le}
_COMPARE |= {">": operator.gt, ">=": operator.ge}


def _apply(column: ColumnElement[Any], op: str, values: list[Scalar]) -> ColumnElement[bool]:
    """``like`` is case-insensitive on every database, with backslash as its escape character."""
    if op in ("in", "not in"):
        return column.in_(values) if op == "in" else column.not_in(values)
    if op in ("like", "not like"):
        like = column.ilike(values[0], escape="\\")
        return like if op == "like" else not_(like)
    return cast("ColumnElement[bool]", _COMPARE[op](column, values[0]))


def build_search(
    where: str | None, sort: str | None, limit: int | None, *, include_deleted: bool = False
) -> Select[Any]:
    """``select(runs)`` matching ``where``, ordered by ``sort`` (NULLs last; then by id, desc)."""
    if limit is not None and limit < 0:
        raise UsageError(f"the limit must be 0 or more, not {limit}")
    runs = schema.runs
    condition = compile_where(where)
    source: FromClause = runs
    order: list[ColumnElement[Any]] = []
    for index, key in enumerate(parse_sort(sort)):
        source, clauses = _sort_clauses(source, key, index)
        order += clauses
    stmt = select(runs).select_from(source).order_by(*order, runs.c.id.desc())
    if condition is not None:
        stmt = stmt.where(condition)
    if not include_deleted:
        stmt = stmt.where(not_(runs.c.deleted))
    return stmt if limit is None else stmt.limit(limit)


def _sort_clauses(
    source: FromClause, key: SortKey, index: int
) -> tuple[FromClause, list[ColumnElement[Any]]]:
    """A metric, param or tag sorts through a LEFT OUTER JOIN of its rows for that one key."""
    field = key.field
    if field.source == "run":
        column = schema.runs.c[field.name]
        return source, [_direction(column, key.descending, bool(column.nullable))]
    table = _KEYED[field.source].alias(f"sort_{index}")
    on = and_(table.c.run_id == schema.runs.c.id, table.c.key == field.name)
    names = {"metrics": ["last"], "params": ["num", "value"], "tags": ["value"]}[field.source]
    # a run without the key has NULLs here, whatever the column's own nullability
    clauses = [_direction(table.c[name], key.descending, True) for name in names]
    return source.outerjoin(table, on), clauses


def _direction(column: ColumnElement[Any], desc: bool, nulls_last: bool) -> ColumnElement[Any]:
    ordered = column.desc() if desc else column.asc()
    return ordered.nulls_last() if nulls_last else ordered
