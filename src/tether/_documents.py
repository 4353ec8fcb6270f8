"""Documents from outside: versioned JSON, YAML, and the shapes their readers check.

Every format Tether writes carries its kind and version (``{"tether": KIND, "format": N, ...}``); a
reader refuses a document of another kind or of a version it does not know, with a message that
says so. What arrives from other people's clones and remotes is hostile until checked, so the two
loaders refuse what no Tether document holds before anything walks it: text that is not Unicode
(a lone surrogate from a ``\\ud800`` escape cannot be written to a file, a database or a
subprocess), YAML whose aliases refer to themselves or expand it many times over (a "billion
laughs"), and nesting deeper than :data:`MAX_DEPTH`. A reader then states each field's
:class:`Shape` and checks the whole document in one call, so the code behind it can trust what it
reads.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from reprlib import Repr
from typing import Any

from tether.errors import FormatError

MAX_DEPTH = 64  # nesting deeper than any Tether document, refused before anything walks it
# YAML aliases may expand a document to ALIAS_GROWTH times its own nodes, or to ALIAS_NODES
ALIAS_GROWTH = 10
ALIAS_NODES = 100_000
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def read_document(data: bytes, kind: str, version: int, what: str) -> dict[str, Any]:
    doc = loads_json(data, what)
    if not isinstance(doc, dict) or doc.get("tether") != kind:
        raise FormatError(f"{what} is corrupt (not a {kind})")
    if doc.get("format") != version:
        raise FormatError(
            f"{what} has format {brief(doc.get('format'))}; this Tether reads format {version}: "
            "upgrade Tether"
        )
    return doc


def loads_json(data: bytes, what: str, *, max_depth: int | None = None) -> Any:
    """``data`` as UTF-8 JSON; a FormatError naming ``what`` for anything else, and for nesting
    deeper than ``max_depth`` when given."""
    try:
        text = data.decode("utf-8")
        doc = json.loads(text)
    except ValueError as exc:  # also UnicodeDecodeError, and an integer of 4300+ digits
        raise FormatError(f"{what} is corrupt ({_first_line(exc)})") from None
    except RecursionError:
        raise FormatError(f"{what} is corrupt (it nests deeper than JSON can be read)") from None
    if _SURROGATE_ESCAPE.search(text) and not _is_unicode(doc):
        raise FormatError(
            f"{what} is corrupt (it holds text that is not Unicode: a \\ud8xx escape)"
        )
    if max_depth is not None and _deeper_than(doc, max_depth):
        raise FormatError(f"{what} is corrupt (it nests deeper than {max_depth} levels)")
    return doc


def _is_unicode(doc: Any) -> bool:
    try:
        json.dumps(doc, ensure_ascii=False).encode("utf-8")
    except (UnicodeEncodeError, RecursionError):
        return False
    return True


def _deeper_than(doc: Any, limit: int) -> bool:
    stack = [(doc, 1)] if isinstance(doc, dict | list) else []
    while stack:
        value, depth = stack.pop()
        if depth > limit:
            return True
        items = value.values() if isinstance(value, dict) else value
        stack.extend((v, depth + 1) for v in items if isinstance(v, dict | list))
    return False


def shown(value: Any, limit: int = 60) -> str:
    """A value read from someone else's document, for a message: short, and never expanded
    (a YAML alias bomb is billions of items deep, a 5,000-digit number has no repr)."""
    if isinstance(value, str):
        return repr(value[:limit]) + ("..." if len(value) > limit else "")
    if (
        value is None
        or isinstance(value, bool | float)
        or (isinstance(value, int) and -(10**18) < value < 10**18)
    ):
        return repr(value)
    if isinstance(value, int):
        return "a number too large"
    return f"a {type(value).__name__}"


def load_yaml(text: str | bytes) -> Any:
    """``yaml.safe_load`` through libyaml when it is there (5-10x faster on a pipeline lock), that
    also refuses, as a ``yaml.YAMLError`` its callers already turn into their own error: aliases
    that refer to themselves or expand the document past ``ALIAS_GROWTH`` times its nodes,
    nesting deeper than :data:`MAX_DEPTH`, text that is not Unicode, and values its tags cannot
    make (``2024-13-45``, ``!!int x``, an integer of 4300+ digits)."""
    import yaml

    if isinstance(text, str) and not (text.isascii() or _encodable(text)):
        raise _refused("it holds text that is not Unicode (a lone surrogate)", None)
    loader_class = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    loader = loader_class(text)
    try:
        try:
            node = loader.get_single_node()
        except RecursionError:  # the pure-Python parser, without libyaml's own depth limit
            raise _refused(f"it nests deeper than {MAX_DEPTH} levels", None) from None
        if node is None:
            return None
        # libyaml refuses a surrogate escape (\ud800) itself; the pure-Python parser makes one
        _check_nodes(node, check_text=loader_class is yaml.SafeLoader)
        try:
            return loader.construct_document(node)
        except yaml.YAMLError:
            raise
        except Exception as exc:  # PyYAML's constructors raise whatever int(), date() raise
            raise _refused(f"a value its tag cannot make ({_first_line(exc)})", None) from None
    finally:
        loader.dispose()


def _refused(problem: str, mark: Any) -> Exception:
    from yaml.constructor import ConstructorError

    return ConstructorError(None, None, problem, mark)


def _check_nodes(root: Any, *, check_text: bool) -> None:
    """One walk over the composed collections: none nested deeper than MAX_DEPTH, only Unicode
    text when ``check_text``; when a collection is met twice (an alias), the walk of
    :func:`_check_aliases` too. Scalars are not pushed one by one: a lock has ten for each
    collection, and this walk must cost little next to libyaml's parse."""
    from yaml.nodes import ScalarNode, SequenceNode

    seen: set[int] = set()
    aliased = False
    stack: list[tuple[Any, int]] = [(root, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, ScalarNode):  # only the root: other scalars are checked below
            if check_text:
                _check_text(node)
            continue
        if id(node) in seen:
            aliased = True
            continue
        seen.add(id(node))
        if depth > MAX_DEPTH:
            raise _refused(f"it nests deeper than {MAX_DEPTH} levels", node.start_mark)
        kids = (
            node.value if isinstance(node, SequenceNode) else [n for kv in node.value for n in kv]
        )
        for kid in kids:
            if not isinstance(kid, ScalarNode):
                stack.append((kid, depth + 1))
            elif check_text:
                _check_text(kid)
    if aliased:
        _check_aliases(root)


def _check_text(node: Any) -> None:
    if not (node.value.isascii() or _encodable(node.value)):
        raise _refused("it holds text that is not Unicode (a lone surrogate)", node.start_mark)


def _check_aliases(root: Any) -> None:
    """A document with aliases (an alias is the node it names, met again): none refers to a
    collection that holds it, and they expand it to at most ALIAS_GROWTH times its nodes."""
    from yaml.nodes import ScalarNode, SequenceNode

    done: dict[int, tuple[int, int]] = {}  # id(node) -> (nodes once expanded, height)
    open_: set[int] = set()  # the nodes being walked: the path from the root
    stack: list[tuple[Any, bool]] = [(root, False)]
    while stack:
        node, finishing = stack.pop()
        key = id(node)
        if isinstance(node, ScalarNode):
            done[key] = (1, 1)
            continue
        kids = (
            node.value if isinstance(node, SequenceNode) else [n for kv in node.value for n in kv]
        )
        if finishing:
            open_.discard(key)
            size = 1 + sum(done[id(k)][0] for k in kids)
            height = 1 + max((done[id(k)][1] for k in kids), default=0)
            if height > MAX_DEPTH:
                raise _refused(f"it nests deeper than {MAX_DEPTH} levels", node.start_mark)
            done[key] = (size, height)
            continue
        if key in done:
            continue
        open_.add(key)
        stack.append((node, True))
        for kid in kids:
            if id(kid) in open_:
                raise _refused("an alias refers to a node that holds it", kid.start_mark)
            stack.append((kid, False))
    expanded = done[id(root)][0]
    if expanded > max(ALIAS_NODES, ALIAS_GROWTH * len(done)):
        raise _refused(
            f"its aliases expand it to {expanded:,} values from {len(done):,} written "
            "(a 'billion laughs'): write the values out",
            root.start_mark,
        )


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def dump_yaml(doc: Any, **options: Any) -> str:
    """``yaml.safe_dump`` through libyaml when it is there."""
    import yaml

    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    return str(yaml.dump(doc, Dumper=dumper, **options))


def _first_line(exc: BaseException) -> str:
    lines = str(exc).splitlines()
    return lines[0] if lines else type(exc).__name__


# -- shapes: what each field of a document must be -------------------------------------------

_REPR = Repr()
_REPR.maxlevel, _REPR.maxstring, _REPR.maxother, _REPR.maxlist, _REPR.maxdict = 2, 40, 40, 4, 4


def brief(value: Any) -> str:
    """``value`` for a message: short whatever it holds."""
    return _REPR.repr(value)


class Shape:
    """What a value must be; :meth:`problem` says where and how a value is not that."""

    def problem(self, value: Any, at: str) -> str | None:
        raise NotImplementedError


@dataclass(frozen=True)
class Leaf(Shape):
    test: Callable[[Any], bool]
    wants: str

    def problem(self, value: Any, at: str) -> str | None:
        return (
            None if self.test(value) else f"{at or 'it'} must be {self.wants}, not {brief(value)}"
        )


@dataclass(frozen=True)
class Maybe(Shape):
    """``shape`` or null."""

    shape: Shape

    def problem(self, value: Any, at: str) -> str | None:
        return None if value is None else self.shape.problem(value, at)


@dataclass(frozen=True)
class ListOf(Shape):
    item: Shape

    def problem(self, value: Any, at: str) -> str | None:
        if not isinstance(value, list):
            return f"{at or 'it'} must be a list, not {brief(value)}"
        for i, item in enumerate(value):
            if found := self.item.problem(item, f"{at}[{i}]"):
                return found
        return None


@dataclass(frozen=True)
class MapOf(Shape):
    """A mapping of text keys (``key`` says which) to ``value``."""

    value: Shape
    key: Shape | None = None

    def problem(self, value: Any, at: str) -> str | None:
        if not isinstance(value, dict):
            return f"{at or 'it'} must be a mapping, not {brief(value)}"
        for k, v in value.items():
            if found := (self.key or TEXT).problem(k, f"a key of {at or 'it'}"):
                return found
            if found := self.value.problem(v, f"{at}[{brief(k)}]"):
                return found
        return None


@dataclass(frozen=True)
class Fields(Shape):
    """A mapping with these fields (others are let through); ``required`` must be there."""

    fields: Mapping[str, Shape]
    required: tuple[str, ...] = field(default=())

    def problem(self, value: Any, at: str) -> str | None:
        if not isinstance(value, dict):
            return f"{at or 'it'} must be a mapping, not {brief(value)}"
        for name in self.required:
            if name not in value:
                return f"{at + '.' if at else ''}{name} is missing"
        for name, shape in self.fields.items():
            if name in value and (found := shape.problem(value[name], _join(at, name))):
                return found
        return None


def _join(at: str, name: str) -> str:
    return f"{at}.{name}" if at else name


def _is_int(value: Any) -> bool:
    return type(value) is int and -(2**63) <= value < 2**63  # what a database column holds


def _is_number(value: Any) -> bool:
    if type(value) is float:
        return math.isfinite(value)
    return _is_int(value)


TEXT = Leaf(lambda v: type(v) is str, "text")
BOOL = Leaf(lambda v: type(v) is bool, "true or false")
INT = Leaf(_is_int, "a whole number")
NUMBER = Leaf(_is_number, "a finite number")
# seconds since 1970, before the year 3000 (what datetime shows in any time zone)
TIME = Leaf(lambda v: _is_number(v) and 0 <= v < 32_503_680_000, "a time in seconds since 1970")
ANY = Leaf(lambda v: True, "anything")
