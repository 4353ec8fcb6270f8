"""Assertions on one model answer. Each is a one-key mapping in a suite::

    - equals: positive                      # whitespace-trimmed; {value: x, trim: false}: exact
    - contains: good                        # a list is any of: [good, great]
    - contains-any: [good, great]           # promptfoo's names; {case_sensitive: true} mapping
    - contains-all: [good, great]           # form: {any|all: [...], case_sensitive: false}
    - regex: '^(positive|negative)$'
    - is-json: true                         # a fenced block is read; {strict: true}: the whole
                                            # answer, as JSON.parse; {schema: {...}} (draft 7)
    - json-schema: {type: object, required: [label]}
    - label-match: true                     # the first declared label in the answer == expected
    - similar: {reference: "...", min: 0.8} # cosine similarity through an embeddings endpoint
    - judge: {rubric: "Is it polite?", min: 0.5}   # an LLM judge scores 0..10, read as 0..1
    - python: {function: "checks:score", min: 0.5}  # module:function(answer, case) -> bool | float
    - latency: {max_s: 2}
    - cost: {max: 0.001}
    - not: {contains: sorry}                # passes when the assertion inside fails

Any assertion may carry a ``weight`` (default 1) beside its kind. Each gives (passed, score,
reason); a case passes when every assertion of non-zero weight does and the call did not fail,
or, when the case sets a ``threshold``, when the weighted mean of the scores (a score-less check
counts 1 when it passed, else 0) reaches it: promptfoo's rule. Provider errors are never
passes, and neither is a judge reply that is not a score in the form asked for
(:class:`Unscorable`: the case is an error).
"""

from __future__ import annotations

import importlib
import json
import math
import os
import re
import string
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tether.prompts.templates import PromptError

KINDS = (
    "equals", "contains", "contains-any", "contains-all", "regex", "is-json", "json-schema",
    "label-match", "similar", "judge", "python", "latency", "cost", "not",
)  # fmt: skip
NEGATABLE = (
    "equals",
    "contains",
    "contains-any",
    "contains-all",
    "regex",
    "is-json",
    "json-schema",
)
JUDGE_PROMPT = """You grade an answer against a rubric. Reply with a JSON object and nothing
else: {{"score": N, "reason": "one sentence"}}, where N is an integer from 0 (does not meet the
rubric at all) to 10 (fully meets it).

Rubric: {rubric}

Input: {input}

Answer: {answer}
"""


JUDGE_SCALE = 10
# a `Score: N/M` line, the other answer a judge model is commonly asked for
_SCORE_LINE = re.compile(r"^\s*score\s*:\s*(\d+(?:\.\d+)?)\s*/\s*(\d+(?:\.\d+)?)\s*$", re.I | re.M)
_FENCE = re.compile(r"^```(?:json)?\s*\n(.*)\n```$", re.S)


class Unscorable(Exception):
    """A judge reply that is not a score in the form asked for: the case is an error."""


@dataclass(frozen=True)
class Check:
    kind: str
    passed: bool
    score: float | None = None
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "passed": self.passed,
            "score": self.score,
            "why": self.reason,
        }


@dataclass
class Context:
    """What some assertions need besides the answer: the case, the prompt's labels, the call's
    latency and cost, and (when configured) a judge and an embedder."""

    expected: Any = None
    labels: Sequence[str] = ()
    rendered: str = ""
    latency_s: float | None = None
    cost: float | None = None
    root: Path | None = None
    judge: Callable[[str], str] | None = None
    embed: Callable[[list[str]], list[list[float]]] | None = None
    case_vars: dict[str, Any] | None = None


def check_spec(spec: Any, where: str) -> tuple[str, Any]:
    """A suite's assertion entry as (kind, argument); a clear error for anything else."""
    kind, arg, _weight = split_spec(spec, where)
    return kind, arg


def split_spec(spec: Any, where: str) -> tuple[str, Any, float]:
    """A suite's assertion entry as (kind, argument, weight)."""
    rest = {k: v for k, v in spec.items() if k != "weight"} if isinstance(spec, dict) else None
    if not isinstance(spec, dict) or rest is None or len(rest) != 1:
        raise PromptError(
            f"{where}: an assertion is a one-key mapping (and an optional `weight`), like "
            "`- regex: '^yes$'`"
        )
    ((kind, arg),) = rest.items()
    if kind not in KINDS:
        raise PromptError(f"{where}: unknown assertion {kind!r} (known: {', '.join(KINDS)})")
    weight = spec.get("weight", 1)
    if isinstance(weight, bool) or not isinstance(weight, int | float) or not weight >= 0:
        raise PromptError(f"{where}: {kind} `weight` is a number, 0 or more")
    if kind == "not":
        inner, _arg, _w = split_spec(arg, f"{where} not")
        if inner not in NEGATABLE or "weight" in arg:
            raise PromptError(
                f"{where}: `not` takes one of {', '.join(NEGATABLE)} (without a weight)"
            )
    return str(kind), arg, float(weight)


def case_passed(checks: Sequence[Check], weights: Sequence[float], threshold: float | None) -> bool:
    """promptfoo's rule: every check of non-zero weight passed or, with a ``threshold``, the
    weighted mean score (1 or 0 for a score-less check) reaches it. No checks: passed."""
    if not checks:
        return True
    if threshold is None:
        return all(c.passed or w == 0 for c, w in zip(checks, weights, strict=True))
    total = sum(weights)
    scores = [c.score if c.score is not None else float(c.passed) for c in checks]
    mean = sum(s * w for s, w in zip(scores, weights, strict=True)) / total if total else 0.0
    return mean >= threshold


def evaluate(spec: dict[str, Any], answer: str, ctx: Context) -> Check:
    kind, arg = check_spec(spec, "suite")
    try:
        return _CHECKS[kind](kind, arg, answer, ctx)
    except (PromptError, Unscorable):
        raise
    except Exception as exc:  # a user's function or a judge that failed: a failed check
        return Check(kind, False, None, f"{type(exc).__name__}: {exc}")


def _equals(kind: str, arg: Any, answer: str, ctx: Context) -> Check:
    if isinstance(arg, dict):
        want = str(arg["value"])
        ok = answer == want if arg.get("trim") is False else answer.strip() == want.strip()
        return Check(kind, ok, None, "" if ok else f"expected {want!r}")
    ok = answer.strip() == str(arg).strip()
    return Check(kind, ok, None, "" if ok else f"expected {str(arg)!r}")


def _not(kind: str, arg: Any, answer: str, ctx: Context) -> Check:
    inner = evaluate(arg, answer, ctx)
    ok = not inner.passed
    return Check(kind, ok, None, "" if ok else f"{inner.kind} passed and must not")


def _contains(kind: str, arg: Any, answer: str, ctx: Context) -> Check:
    """``contains: word`` or a list (any of them); ``contains-any`` / ``contains-all`` as promptfoo
    names them; a mapping ``{any|all: [...], case_sensitive: false}``."""
    if isinstance(arg, dict):
        opts = arg
    else:
        words = arg if isinstance(arg, list) else [arg]
        opts = {"all" if kind == "contains-all" else "any": words}
    sensitive = bool(opts.get("case_sensitive", False))
    text = answer if sensitive else answer.lower()

    def norm(s: Any) -> str:
        return str(s) if sensitive else str(s).lower()

    if "all" in opts:
        missing = [w for w in opts["all"] if norm(w) not in text]
        return Check(kind, not missing, None, f"missing {missing}" if missing else "")
    words = list(opts.get("any") or [])
    ok = any(norm(w) in text for w in words)
    return Check(kind, ok, None, "" if ok else f"none of {words}")


def _regex(kind: str, arg: Any, answer: str, ctx: Context) -> Check:
    ok = re.search(str(arg), answer) is not None
    return Check(kind, ok, None, "" if ok else f"no match for {arg!r}")


def _parse_json(answer: str) -> Any:
    text = answer.strip()
    if text.startswith("```"):  # a fenced block, as chat models like to answer
        text = text.strip("`").removeprefix("json").strip()
    return json.loads(text)


def _strict_json(answer: str) -> Any:
    """The answer as JSON.parse reads it: the whole text, no NaN or Infinity."""

    def refuse(name: str) -> Any:
        raise ValueError(f"{name} is not JSON")

    return json.loads(answer, parse_constant=refuse)


def _is_json(kind: str, arg: Any, answer: str, ctx: Context) -> Check:
    opts = arg if isinstance(arg, dict) else {}
    try:
        doc = _strict_json(answer) if opts.get("strict") else _parse_json(answer)
    except ValueError as exc:
        return Check(kind, False, None, f"not JSON: {exc}")
    if "schema" in opts:
        import jsonschema

        errors = sorted(jsonschema.Draft7Validator(opts["schema"]).iter_errors(doc), key=str)
        if errors:
            return Check(kind, False, None, errors[0].message)
    return Check(kind, True)


def _json_schema(kind: str, arg: Any, answer: str, ctx: Context) -> Check:
    import jsonschema

    try:
        doc = _parse_json(answer)
    except ValueError as exc:
        return Check(kind, False, None, f"not JSON: {exc}")
    errors = sorted(jsonschema.Draft202012Validator(arg).iter_errors(doc), key=str)
    if errors:
        return Check(kind, False, None, errors[0].message)
    return Check(kind, True)


_PUNCT = str.maketrans("", "", string.punctuation)


def _label_match(kind: str, arg: Any, answer: str, ctx: Context) -> Check:
    """The first declared label that appears as a word in the answer is the model's label."""
    if ctx.expected is None:
        raise PromptError("label-match needs each case's `expected` label")
    words = answer.lower().translate(_PUNCT).split()
    labels = [str(label).lower() for label in ctx.labels] or [str(ctx.expected).lower()]
    found = next((w for w in words if w in labels), None)
    ok = found == str(ctx.expected).lower()
    return Check(kind, ok, None, "" if ok else f"label {found!r}, expected {ctx.expected!r}")


def _similar(kind: str, arg: Any, answer: str, ctx: Context) -> Check:
    if ctx.embed is None:
        raise PromptError("`similar` needs an embeddings provider: set [prompts] embeddings")
    opts = arg if isinstance(arg, dict) else {"reference": arg}
    ref = str(opts.get("reference", ctx.expected))
    a, b = ctx.embed([answer, ref])
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    norm = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    score = dot / norm if norm else 0.0
    least = float(opts.get("min", 0.8))
    return Check(kind, score >= least, score, f"similarity {score:.3f} (min {least})")


def _judge(kind: str, arg: Any, answer: str, ctx: Context) -> Check:
    if ctx.judge is None:
        raise PromptError("`judge` needs a judge provider: set [prompts] judge in tether.toml")
    opts = arg if isinstance(arg, dict) else {"rubric": arg}
    reply = ctx.judge(JUDGE_PROMPT.format(rubric=opts["rubric"], input=ctx.rendered, answer=answer))
    score = judge_score(reply)
    least = float(opts.get("min", 0.5))
    return Check(kind, score >= least, score, f"judge score {score:.2f} (min {least})")


def judge_score(reply: str) -> float:
    """A judge's reply as a score in 0..1: a JSON object ``{"score": N}`` with N in 0..10 (alone,
    or alone in a fenced block), or a ``Score: N/M`` line. Anything else, a number in a sentence
    included, is :class:`Unscorable`: "I would rate it 2 out of 10" is not read as 2."""
    text = reply.strip()
    fenced = _FENCE.match(text)
    body = fenced[1].strip() if fenced else text
    if body.startswith("{"):
        try:
            doc = json.loads(body)
        except ValueError:
            raise Unscorable(f"the judge's reply is not valid JSON: {reply[:80]!r}") from None
        value = doc.get("score") if isinstance(doc, dict) else None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise Unscorable(f"the judge's JSON has no numeric score: {reply[:80]!r}")
        return _scaled(float(value), JUDGE_SCALE, reply)
    lines = _SCORE_LINE.findall(text)
    if len(lines) == 1:
        return _scaled(float(lines[0][0]), float(lines[0][1]), reply)
    raise Unscorable(
        f'the judge did not answer {{"score": N}} or one `Score: N/M` line: {reply[:80]!r}'
    )


def _scaled(value: float, out_of: float, reply: str) -> float:
    if not math.isfinite(value) or out_of <= 0 or not 0 <= value <= out_of:
        raise Unscorable(
            f"the judge's score {value:g} is not between 0 and {out_of:g}: {reply[:80]!r}"
        )
    return value / out_of


def _python(kind: str, arg: Any, answer: str, ctx: Context) -> Check:
    opts = arg if isinstance(arg, dict) else {"function": arg}
    module, _, name = str(opts["function"]).partition(":")
    if not name:
        raise PromptError(f"python assertion {opts['function']!r}: use module:function")
    if ctx.root is not None:
        own_function(ctx.root, str(opts["function"]))
    func = getattr(importlib.import_module(module), name)
    value = func(answer, {"vars": ctx.case_vars or {}, "expected": ctx.expected})
    if isinstance(value, bool):
        return Check(kind, value, 1.0 if value else 0.0)
    score = float(value)
    least = float(opts.get("min", 0.5))
    return Check(kind, score >= least, score, f"score {score:.3f} (min {least})")


def own_function(root: Path, function: str) -> None:
    """Refuse a ``python`` assertion's ``module:function`` from outside the project
    (``builtins:exec`` would run whatever the answer says): a suite calls only check functions
    the repository itself holds."""
    import importlib.util

    module = function.partition(":")[0]
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))  # the project's own modules

    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError) as exc:
        raise PromptError(f"python assertion {function!r}: {exc}") from None
    origin = spec.origin if spec is not None else None
    top = root.resolve()
    path = Path(origin).resolve() if origin and os.path.isabs(origin) else None
    installed = path is not None and bool({"site-packages", "dist-packages"} & set(path.parts))
    if path is None or top not in path.parents or installed:
        raise PromptError(
            f"python assertion {function!r}: {module} is not a module of this repository "
            f"({origin or 'not found'}): a suite calls only check functions the project holds"
        )


def _latency(kind: str, arg: Any, answer: str, ctx: Context) -> Check:
    most = float(arg["max_s"] if isinstance(arg, dict) else arg)
    ok = ctx.latency_s is not None and ctx.latency_s <= most
    return Check(kind, ok, None, f"{ctx.latency_s if ctx.latency_s is not None else '?'} s")


def _cost(kind: str, arg: Any, answer: str, ctx: Context) -> Check:
    most = float(arg["max"] if isinstance(arg, dict) else arg)
    ok = ctx.cost is not None and ctx.cost <= most
    return Check(kind, ok, None, f"cost {ctx.cost}")


_CHECKS: dict[str, Callable[[str, Any, str, Context], Check]] = {
    "equals": _equals,
    "contains": _contains,
    "contains-any": _contains,
    "contains-all": _contains,
    "regex": _regex,
    "is-json": _is_json,
    "json-schema": _json_schema,
    "label-match": _label_match,
    "similar": _similar,
    "judge": _judge,
    "python": _python,
    "latency": _latency,
    "cost": _cost,
    "not": _not,
}
