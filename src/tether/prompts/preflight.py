"""A suite checked against a prompt before the first paid call: every assertion's arguments,
the configuration an assertion needs (a judge, an embeddings endpoint), and every case's
variables bound as the eval will bind them. Each problem names the suite file, the case and
the key, and all of them are reported at once."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from tether.prompts.assertions import check_spec, own_function
from tether.prompts.suite import Suite
from tether.prompts.templates import Prompt, PromptError


def check(prompt: Prompt, suite: Suite, *, root: Path, judge: bool, embed: bool) -> None:
    """Refuse ``suite`` for ``prompt`` (PromptError listing every problem) unless each case
    can be rendered and scored with what is configured (``judge``, ``embed``)."""
    problems: list[str] = []
    where_suite = f"{suite.path} assert"
    for spec in suite.asserts:
        problems += _spec(spec, where_suite, root, judge, embed, prompt, None)
    for case in suite.cases:
        where = f"{suite.path} case {case.id}"
        for spec in case.asserts:
            problems += _spec(spec, f"{where} assert", root, judge, embed, prompt, case.expected)
        if any("label-match" in s for s in suite.asserts) and case.expected is None:
            problems.append(f"{where}: label-match needs the case's `expected` label")
        try:
            prompt.bind(prompt.typed(case.vars, case.text_vars))
        except PromptError as exc:
            problems.append(f"{where} vars: {exc}")
    if problems:
        shown = problems[:20] + (
            [f"... and {len(problems) - 20} more"] if len(problems) > 20 else []
        )
        raise PromptError(
            f"{suite.path} cannot be run on {prompt.ref} ({len(problems)} problem(s), found "
            "before any call was made):\n  " + "\n  ".join(shown)
        )


def _spec(
    spec: Any, where: str, root: Path, judge: bool, embed: bool, prompt: Prompt, expected: Any
) -> list[str]:
    try:
        kind, arg = check_spec(spec, where)
    except PromptError as exc:
        return [str(exc)]
    at = f"{where} {kind}"
    if kind in ("contains", "contains-any", "contains-all"):
        out = _contains(arg, at)
        if isinstance(arg, dict):
            keys = {"any", "all"} & set(arg)
            wanted = {"contains-any": {"any"}, "contains-all": {"all"}}.get(kind)
            if len(keys) > 1 or (wanted is not None and keys and keys != wanted):
                out.append(f"{at}: takes one of `any:` or `all:`, the one its name says")
        return out
    if kind == "regex":
        if not isinstance(arg, str) or not arg:
            return [f"{at}: takes a regular expression (a text), not {arg!r:.40}"]
        try:
            re.compile(str(arg))
        except re.error as exc:
            return [f"{at}: not a regular expression ({exc})"]
        return []
    if kind == "json-schema":
        return _schema(arg, at)
    if kind == "label-match":
        if not prompt.output.get("labels"):
            return [f"{at}: {prompt.ref}'s prompt.yaml declares no `output: {{labels: [...]}}`"]
        return []
    if kind == "similar":
        out = _options(arg, at, {"reference": str, "min": float}, required=("reference",))
        if isinstance(arg, dict):
            out += _between(arg.get("min"), -1.0, 1.0, f"{at}: `min` (a cosine similarity)")
        if not embed:
            out.append(
                f"{at}: needs an embeddings endpoint: set [prompts] embeddings in tether.toml"
            )
        return out
    if kind == "judge":
        opts = arg if isinstance(arg, dict) else {"rubric": arg}
        out = _options(opts, at, {"rubric": str, "min": float}, required=("rubric",))
        out += _between(opts.get("min"), 0.0, 1.0, f"{at}: `min` (a judge's score is 0..1)")
        if not judge:
            out.append(f"{at}: needs a judge: set [prompts] judge in tether.toml")
        return out
    if kind == "python":
        opts = arg if isinstance(arg, dict) else {"function": arg}
        out = _options(opts, at, {"function": str, "min": float}, required=("function",))
        if not out:
            try:
                if ":" not in opts["function"]:
                    raise PromptError(f"{opts['function']!r}: use module:function")
                own_function(root, opts["function"])
            except PromptError as exc:
                out.append(f"{at}: {exc}")
        return out
    if kind in ("latency", "cost"):
        key = "max_s" if kind == "latency" else "max"
        out = _number_or(arg, at, key)
        value = arg.get(key) if isinstance(arg, dict) else arg
        if not out and float(value or 0) < (0 if kind == "cost" else 1e-9):
            out.append(f"{at}: `{key}` must be above 0, not {value}")
        return out
    if kind == "equals" and arg is None:
        return [f"{at}: compares with a value; it has none"]
    if kind == "is-json" and not isinstance(arg, dict | bool):
        return [f"{at}: takes true (or {{strict: ..., schema: ...}}), not {arg!r:.40}"]
    if kind == "is-json" and arg is False:
        return [f"{at}: is-json: false checks nothing; leave the assertion out"]
    if kind == "equals" and isinstance(arg, dict):
        out = _options(arg, at, {"value": str, "trim": bool}, required=("value",))
        return [m for m in out if "`value` must be" not in m]  # "" is a value to compare with
    if kind == "equals" and isinstance(arg, list):
        return [f"{at}: compares with one value, not a list"]
    if kind == "is-json" and isinstance(arg, dict):
        out = _options(arg, at, {"strict": bool, "schema": dict}, required=())
        return out or (_schema(arg["schema"], at) if "schema" in arg else [])
    if kind == "not":
        return _spec(arg, f"{at}", root, judge, embed, prompt, expected)
    return []


def _contains(arg: Any, at: str) -> list[str]:
    if isinstance(arg, str):
        return []
    words: Any
    if isinstance(arg, list):
        words = arg
    elif isinstance(arg, dict):
        unknown = sorted(set(arg) - {"any", "all", "case_sensitive"})
        if unknown or not ({"any", "all"} & set(arg)):
            return [f"{at}: takes `any:` or `all:` with a list (and `case_sensitive`)"]
        words = arg.get("any", arg.get("all"))
    else:
        return [f"{at}: takes a text or a list of texts"]
    if not isinstance(words, list) or not words or not all(isinstance(w, str) for w in words):
        return [f"{at}: takes a non-empty list of texts"]
    return []


def _schema(arg: Any, at: str) -> list[str]:
    import jsonschema

    if not isinstance(arg, dict):
        return [f"{at}: is a JSON schema (a mapping)"]
    try:
        jsonschema.Draft202012Validator.check_schema(arg)
    except jsonschema.SchemaError as exc:
        return [f"{at}: not a valid JSON schema ({exc.message})"]
    return []


def _options(arg: Any, at: str, kinds: dict[str, type], required: tuple[str, ...]) -> list[str]:
    if not isinstance(arg, dict):
        return [f"{at}: takes a mapping with {', '.join(kinds)}"]
    out = [f"{at}: unknown key {k!r} (known: {', '.join(kinds)})" for k in arg if k not in kinds]
    out += [f"{at}: needs `{k}`" for k in required if k not in arg]
    for key, want in kinds.items():
        if key in arg and not _is(arg[key], want):
            what = {float: "a number", bool: "true or false", dict: "a mapping"}.get(want, "a text")
            out.append(f"{at}: `{key}` must be {what}")
    return out


def _number_or(arg: Any, at: str, key: str) -> list[str]:
    value = arg.get(key) if isinstance(arg, dict) else arg
    if not _is(value, float):
        return [f"{at}: takes a number (or `{key}: N`)"]
    return []


def _is(value: Any, want: type) -> bool:
    if want is float:
        return not isinstance(value, bool) and isinstance(value, int | float)
    if want is bool:
        return isinstance(value, bool)
    return isinstance(value, want) and bool(value)


def _between(value: Any, low: float, high: float, what: str) -> list[str]:
    if value is None or not _is(value, float) or low <= float(value) <= high:
        return []
    return [f"{what} must be between {low:g} and {high:g}, not {value}"]
