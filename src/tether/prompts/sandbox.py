"""The Jinja2 sandbox prompts render in, with a size and a time limit.

A template comes from a pull request as often as from its author, so rendering one must not reach
Python internals (Jinja2's ``ImmutableSandboxedEnvironment``), must not run for ever and must not
build an answer of any size. Each render gets a ``Budget``: ``max_chars`` (the most characters
the output, or any one value built on the way, may hold; default 1,000,000) and ``timeout_s``
(default 2 s). What could exceed them is stopped before it is built, where its size can be told
in advance (``"x" * 10**9``, ``2 ** 10**9``, ``"%999999999s"``, ``"{:>999999999}"``,
``s|center(10**9)``, ``s.replace("", long)``, ``long|join(list)``), and checked after it is built
otherwise; every loop iteration, call, attribute lookup and operator counts against the time
limit (each ``{% for %}`` iterates through a guard the template cannot rename or shadow), and the
output is measured as it streams. Ranges are capped by the sandbox (``range`` above 100,000 items
is refused). An exceeded budget raises ``RenderLimitError``, which the caller turns into a
``PromptError`` naming the prompt and its file.
"""

from __future__ import annotations

import functools
import os
import re
import string
import time
from collections.abc import Callable, Iterable, Iterator, Sized
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from jinja2 import StrictUndefined, nodes
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.visitor import NodeTransformer

from tether.errors import ConfigError

MAX_CHARS = 1_000_000
TIMEOUT_S = 2.0
MAX_JSON_INDENT = 32
_SIZED = (str, bytes, list, tuple, dict, set, frozenset)
_PERCENT = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\d+|\*)?(?:\.(\d+|\*))?")
_PADDING = frozenset({"ljust", "rjust", "center", "zfill", "expandtabs"})


class RenderLimitError(Exception):
    """A render went over its budget (size or time)."""


@dataclass(frozen=True)
class Limits:
    """How big a rendered prompt may be (characters) and how long rendering it may take."""

    max_chars: int = MAX_CHARS
    timeout_s: float = TIMEOUT_S

    @classmethod
    def from_settings(cls, max_chars: Any = None, timeout_s: Any = None) -> Limits:
        """From ``prompts.render_max_chars`` and ``prompts.render_timeout_s`` (None: default)."""
        try:
            return cls(
                MAX_CHARS if max_chars in (None, "") else int(max_chars),
                TIMEOUT_S if timeout_s in (None, "") else float(timeout_s),
            )
        except (TypeError, ValueError):
            raise ConfigError(
                f"prompts.render_max_chars = {max_chars!r} and prompts.render_timeout_s = "
                f"{timeout_s!r}: each takes a number (characters, seconds)"
            ) from None


_LIMITS: ContextVar[Limits | None] = ContextVar("tether_render_limits", default=None)


def current_limits() -> Limits:
    """The limits set by ``limits()``, else those of ``$TETHER_PROMPTS__RENDER_MAX_CHARS`` and
    ``$TETHER_PROMPTS__RENDER_TIMEOUT_S``, else the defaults."""
    given = _LIMITS.get()
    if given is not None:
        return given
    env = os.environ
    return Limits.from_settings(
        env.get("TETHER_PROMPTS__RENDER_MAX_CHARS"), env.get("TETHER_PROMPTS__RENDER_TIMEOUT_S")
    )


@contextmanager
def limits(given: Limits) -> Iterator[None]:
    """Render within ``given`` inside the ``with`` block."""
    token = _LIMITS.set(given)
    try:
        yield
    finally:
        _LIMITS.reset(token)


@dataclass
class Budget:
    limits: Limits
    deadline: float = field(default=0.0)

    def __post_init__(self) -> None:
        self.deadline = time.monotonic() + self.limits.timeout_s

    def tick(self) -> None:
        if time.monotonic() > self.deadline:
            raise RenderLimitError(
                f"rendering took longer than {self.limits.timeout_s:g} s "
                "(prompts.render_timeout_s): simplify the template's loops"
            )

    def allow(self, size: int, what: str) -> None:
        """Refuse to build ``what`` when it would hold ``size`` characters (or items)."""
        if size > self.limits.max_chars:
            raise RenderLimitError(
                f"{what} would hold {size:,} characters, over the limit of "
                f"{self.limits.max_chars:,} (prompts.render_max_chars)"
            )

    def check(self, value: Any, what: str = "a value") -> Any:
        self.tick()
        if isinstance(value, _SIZED):
            self.allow(len(value), what)
        elif isinstance(value, int) and not isinstance(value, bool):
            self.allow(value.bit_length() // 3, what)  # about its decimal digits
        return value


_BUDGET: ContextVar[Budget | None] = ContextVar("tether_render_budget", default=None)


def budget() -> Budget:
    """The budget of the render under way (a fresh default one outside any render, as when
    Jinja2 folds a constant while compiling)."""
    return _BUDGET.get() or Budget(current_limits())


def render(template: Any, values: dict[str, Any]) -> str:
    """``template`` rendered within the current limits: the output is measured as it streams."""
    given = current_limits()
    token = _BUDGET.set(Budget(given))
    try:
        size, parts = 0, []
        for chunk in template.generate(**values):
            size += len(chunk)
            if size > given.max_chars:
                raise RenderLimitError(
                    f"the rendered prompt is over the limit of {given.max_chars:,} characters "
                    "(prompts.render_max_chars)"
                )
            parts.append(chunk)
        return "".join(parts)
    finally:
        _BUDGET.reset(token)


# -- what an operation would build, told before it is built ----------------------------------
def _predict_binop(operator: str, left: Any, right: Any) -> int:
    if operator == "*":
        for seq, n in ((left, right), (right, left)):
            if isinstance(seq, _SIZED) and _is_int(n):
                return len(seq) * max(int(n), 0)
        if _is_int(left) and _is_int(right):
            return (int(left).bit_length() + int(right).bit_length()) // 3
    if operator == "**" and _is_int(left) and _is_int(right) and abs(left) > 1 and right > 0:
        return int(left).bit_length() * int(right) // 3
    if operator == "%" and isinstance(left, str):
        _percent_widths(left, right)
    if operator == "+" and isinstance(left, _SIZED) and isinstance(right, _SIZED):
        return len(left) + len(right)
    return 0


def _percent_widths(text: str, args: Any) -> None:
    """Refuse a ``%`` format whose field widths or precisions exceed the budget."""
    b = budget()
    for match in _PERCENT.finditer(text):
        for group in match.groups():
            if group and group != "*":
                b.allow(int(group), f"the %-format field {match.group(0)!r}")
    if "*" in text:
        _refuse_big_ints(args if isinstance(args, tuple) else (args,), "a %-format width")


def _format_widths(text: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    """Refuse a ``str.format`` whose field widths or precisions exceed the budget."""
    b = budget()
    try:
        fields = list(string.Formatter().parse(text))
    except ValueError:
        return  # str.format raises it again, with its own message
    for _literal, _name, spec, _conversion in fields:
        for number in re.findall(r"\d+", spec or ""):
            b.allow(int(number), f"the format field {{:{spec}}}")
        if spec and "{" in spec:  # a nested width comes from the arguments
            _refuse_big_ints((*args, *kwargs.values()), "a format width")


def _refuse_big_ints(values: Iterable[Any], what: str) -> None:
    b = budget()
    for value in values:
        if _is_int(value):
            b.allow(int(value), what)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _predict_call(obj: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, ...]:
    """Refuse a ``str`` method call that would build more than the budget allows; the
    arguments to call it with (an iterator to join is listed first, to be measured)."""
    owner = getattr(obj, "__self__", None)
    if not isinstance(owner, str):
        return args
    name = getattr(obj, "__name__", "")
    b = budget()
    if name in _PADDING:
        _refuse_big_ints((*args, *kwargs.values()), f"str.{name}'s width")
        if name == "expandtabs" and args and _is_int(args[0]):
            b.allow(owner.count("\t") * int(args[0]) + len(owner), "str.expandtabs")
    elif name == "replace" and len(args) >= 2:
        b.allow(_replaced_size(owner, args[0], args[1]), "str.replace")
    elif name == "join" and args:
        items = _listed(args[0])
        b.allow(len(owner) * max(len(items) - 1, 0), "str.join")
        return (items,)
    return args


def _listed(value: Any) -> Any:
    """``value`` as a list when it has no length (an iterator), read no further than the
    budget allows; as it is otherwise."""
    if isinstance(value, Sized) or not isinstance(value, Iterable):
        return value
    b = budget()
    items = []
    for item in value:
        b.tick()
        items.append(item)
        b.allow(len(items), "an iterator to join")
    return items


def _replaced_size(text: Any, old: Any, new: Any) -> int:
    if not isinstance(text, str):
        return 0
    old, new = str(old), str(new)
    count = len(text) + 1 if not old else text.count(old)
    return len(text) + count * max(len(new) - len(old), 0)


def _filter_guard(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    """A filter that refuses what would exceed the budget (a width, a count above the limit),
    then checks what it built."""
    passes = getattr(func, "jinja_pass_arg", None) is not None  # context or environment first
    skip = 2 if passes else 1  # (context,) value, then the filter's own arguments

    @functools.wraps(func)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        b = budget()
        b.tick()
        value, rest = (args[skip - 1] if len(args) >= skip else None), args[skip:]
        _refuse_big_ints((*rest, *kwargs.values()), f"the {name} filter's argument")
        if name == "replace" and len(rest) >= 2:
            b.allow(_replaced_size(value, rest[0], rest[1]), "the replace filter")
        elif name == "join":
            value = _listed(value)
            args = (*args[: skip - 1], value, *rest)
            sep = rest[0] if rest else kwargs.get("d", "")
            b.allow(len(str(sep)) * max(len(value) - 1, 0), "the join filter")
        elif name == "tojson":
            indent: Any = rest[0] if rest else kwargs.get("indent")
            if _is_int(indent) and indent > MAX_JSON_INDENT:
                raise RenderLimitError(f"tojson's indent is at most {MAX_JSON_INDENT}")
        elif name == "indent" and isinstance(value, str):
            width = rest[0] if rest else kwargs.get("width", 4)
            size = len(width) if isinstance(width, str) else int(width)
            b.allow(size * (value.count("\n") + 1) + len(value), "the indent filter")
        elif name == "wordwrap" and isinstance(value, str):
            width = int(rest[0] if rest else kwargs.get("width", 79))
            wrap = rest[2] if len(rest) > 2 else kwargs.get("wrapstring") or "\n"
            b.allow(len(value) + len(str(wrap)) * (len(value) // max(width, 1) + 1), "wordwrap")
        elif name == "format" and isinstance(value, str):
            _percent_widths(value, rest or kwargs)
        return b.check(func(*args, **kwargs), f"the {name} filter's result")

    return guarded


class _Loops(NodeTransformer):
    """Every ``{% for %}`` iterates through the environment's guard, and every ``~`` is measured:
    as ``environment.<attribute>``, which a template can neither name nor shadow."""

    def visit_For(self, node: nodes.For) -> nodes.Node:
        self.generic_visit(node)
        node.iter = _guard_call("tether_loop", node.iter, node.lineno)
        return node

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:
        self.generic_visit(node)
        return _guard_call("tether_sized", node, node.lineno)


def _guard_call(attribute: str, arg: Any, lineno: int) -> nodes.Call:
    guard = nodes.EnvironmentAttribute(attribute, lineno=lineno)
    return nodes.Call(guard, [arg], [], None, None, lineno=lineno)


class PromptSandbox(ImmutableSandboxedEnvironment):
    """Jinja2's immutable sandbox with every operation counted against the render's budget."""

    intercepted_binops = frozenset({"*", "**", "%", "+"})

    def __init__(self) -> None:
        super().__init__(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)
        self.globals.pop("lipsum", None)  # n paragraphs of filler: nothing a prompt needs
        self.filters = {name: _filter_guard(name, f) for name, f in self.filters.items()}

    def tether_loop(self, iterable: Any) -> Iterator[Any]:
        b = budget()
        for item in iterable:
            b.tick()
            yield item

    def tether_sized(self, value: Any) -> Any:
        return budget().check(value, "a ~ concatenation")

    @staticmethod
    def file_reference(tree: nodes.Template) -> nodes.Node | None:
        """The first ``include``, ``import`` or ``extends`` in ``tree``: a prompt's template is
        the whole of it, and reads no other file."""
        return next(
            tree.find_all((nodes.Include, nodes.Import, nodes.FromImport, nodes.Extends)), None
        )

    def parse_guarded(self, source: str) -> nodes.Template:
        """``source`` parsed, its loops and concatenations routed through the guards."""
        tree = self.parse(source)
        found = self.file_reference(tree)
        if found is not None:
            raise SecurityError(f"line {found.lineno}: a prompt template cannot read other files")
        guarded = _Loops().visit(tree)
        assert isinstance(guarded, nodes.Template)
        return guarded

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        b = budget()
        b.tick()
        b.allow(_predict_binop(operator, left, right), f"`{operator}`")
        return b.check(super().call_binop(context, operator, left, right), f"`{operator}`")

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        b = budget()
        b.tick()
        args = _predict_call(__obj, args, kwargs)
        result = super().call(__context, __obj, *args, **kwargs)
        return result if isinstance(result, Iterator) else b.check(result, "a call's result")

    def getattr(self, obj: Any, attribute: str) -> Any:
        budget().tick()
        return super().getattr(obj, attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        budget().tick()
        return super().getitem(obj, argument)

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        wrapped = super().wrap_str_format(value)
        if wrapped is None:
            return None
        text, is_map = value.__self__, value.__name__ == "format_map"

        def checked(*args: Any, **kwargs: Any) -> str:
            mapping = args[0] if is_map and args and isinstance(args[0], dict) else kwargs
            _format_widths(text, () if is_map else args, mapping)
            return str(budget().check(wrapped(*args, **kwargs), "str.format's result"))

        return checked
