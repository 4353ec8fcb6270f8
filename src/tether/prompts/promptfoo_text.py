"""promptfoo's text formats, read as promptfoo 0.123.1 reads them: CSV test rows (variables,
``__expected[N]``, ``__description``, ``__threshold``), an ``__expected`` cell
(``type[(threshold)]:value``, else an equals), comma-separated lists with quoting, JavaScript's
``String(value)`` and JavaScript regular expressions as Python ones."""

from __future__ import annotations

import csv
import io
import re
from typing import Any

# promptfoo's own assertion type names: a CSV `__expected` cell that starts with one is that type
_PF_TYPES = str.split(
    "agent-rubric answer-relevance bleu classifier contains contains-all contains-any "
    "contains-html contains-json contains-sql contains-xml context-faithfulness context-recall "
    "context-relevance conversation-relevance cost equals factuality finish-reason g-eval gleu "
    "guardrails icontains icontains-all icontains-any is-html is-json is-refusal is-sql "
    "is-valid-function-call is-valid-openai-function-call is-valid-openai-tools-call is-xml "
    "javascript latency levenshtein llm-rubric pi meteor model-graded-closedqa "
    "model-graded-factuality moderation perplexity perplexity-score python regex rouge-n ruby "
    "similar similar:cosine similar:dot similar:euclidean starts-with tool-call-f1 skill-used "
    "trajectory:goal-success trajectory:tool-args-match trajectory:step-count "
    "trajectory:tool-sequence trajectory:tool-used trace-error-spans trace-span-count "
    "trace-span-duration search-rubric webhook word-count"
)
_CELL = re.compile(
    r"^(not-)?(" + "|".join(map(re.escape, _PF_TYPES)) + r")(?:\((\d+(?:\.\d+)?)\))?(?::(.*))?$",
    re.S,
)
_CELL_THRESHOLDS = ("cost", "latency", "similar", "starts-with")


class Refused(Exception):
    """One part of the configuration outside the supported subset."""


def csv_tests(data: bytes, label: str) -> list[tuple[int, dict[str, Any]]]:
    try:
        rows = list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"), newline="")))
    except (UnicodeDecodeError, csv.Error) as exc:
        raise Refused(f"{label} is not UTF-8 CSV ({exc})") from None
    out = []
    for n, row in enumerate(rows):
        if None in row:
            raise Refused(f"{label} row {n + 1} has more fields than the header names")
        test: dict[str, Any] = {"vars": {}, "assert": [], "description": f"Row #{n + 1}"}
        test["__csv"] = True
        for key, value in ((k.strip(), v or "") for k, v in row.items()):
            if key.startswith("__expected"):
                if value.strip():
                    test["assert"].append(cell(value.strip(), f"{label} row {n + 1} {key}"))
            elif key == "__description":
                test["description"] = value or test["description"]
            elif key == "__threshold":
                if re.fullmatch(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?", value.strip()):
                    test["threshold"] = float(value)
            elif key.startswith("__"):
                raise Refused(f"{label} column {key}: not in the supported subset")
            else:
                test["vars"][key] = value
        out.append((n, test))
    return out


def cell(text: str, where: str) -> dict[str, Any]:
    """A CSV ``__expected`` cell as promptfoo reads it: ``type[(threshold)]:value`` or equals."""
    for prefix, kind in (("grade:", "llm-rubric"), ("llm-rubric:", "llm-rubric")):
        if text.startswith(prefix):
            return {"type": kind, "value": text[len(prefix) :]}
    if re.match(r"^(javascript:|fn:|eval:|python:|file://)", text):
        raise Refused(f"{where}: {text[:40]!r}: script assertions are not in the subset")
    m = _CELL.match(text)
    if m is None:
        return {"type": "equals", "value": text}
    negated, kind, threshold, value = m.groups()
    spec: dict[str, Any] = {"type": f"{negated or ''}{kind}"}
    if kind in ("contains-all", "contains-any", "icontains-all", "icontains-any"):
        spec["value"] = split_commas(value) if value else value
    elif kind == "is-json":
        spec["value"] = value
    else:
        spec["value"] = value.strip() if value is not None else None
    if kind in _CELL_THRESHOLDS:
        spec["threshold"] = float(threshold) if threshold else 0.8 if kind == "similar" else 0.75
    return {k: v for k, v in spec.items() if v is not None}


def split_commas(value: str) -> list[str]:
    """promptfoo's reading of ``a, "b, c", d``: fields split at commas, quoted ones kept whole."""
    fields: list[str] = []
    i = 0
    while i < len(value):
        while i < len(value) and (value[i].isspace() or value[i] == ","):
            i += 1
        if i >= len(value):
            break
        if value[i] == '"':
            i, text = i + 1, ""
            while i < len(value):
                if value[i] == "\\" and value[i + 1 : i + 2] in ('"', "\\"):
                    text, i = text + value[i + 1], i + 2
                elif value[i : i + 2] == '""':
                    text, i = text + '"', i + 2
                elif value[i] == '"':
                    break
                else:
                    text, i = text + value[i], i + 1
            else:
                raise Refused(f"unterminated quoted field in {value!r}")
            i += 1
            while i < len(value) and value[i].isspace():
                i += 1
            fields.append(text)
        else:
            end = value.find(",", i)
            end = len(value) if end < 0 else end
            fields.append(value[i:end].strip())
            i = end
    return fields


def js_string(value: Any) -> str:
    """``String(value)`` as JavaScript writes it: 5.0 is "5", true is "true"."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e21:
        return str(int(value))
    return str(value)


_PY_ONLY = re.compile(r"\(\?(?:P|#|>|[aiLmsux-]+[):])")


def python_regex(pattern: str, where: str) -> str:
    """A JavaScript pattern (no flags) as a Python one that matches the same texts: ASCII
    ``\\d \\w \\b``, ``$`` only at the very end; Python-only syntax is refused."""
    out, i, in_class = ["(?a)"], 0, False
    while i < len(pattern):
        c = pattern[i]
        if c == "\\":
            if pattern[i + 1 : i + 2] in ("A", "Z", "z", "G", "a", ""):
                escape = pattern[i : i + 2]
                raise Refused(f"{where}: {pattern!r}: {escape} means another thing in JavaScript")
            out.append(pattern[i : i + 2])
            i += 2
            continue
        if in_class:
            in_class = c != "]"
        elif c == "[":
            if pattern[i + 1 : i + 2] == "]" or pattern[i + 1 : i + 3] == "^]":
                raise Refused(f"{where}: {pattern!r}: an empty class [] means another thing")
            in_class = True
        elif c == "$":
            c = r"\Z"
        elif c == "(" and _PY_ONLY.match(pattern, i):
            raise Refused(f"{where}: {pattern!r}: (?...) flags and groups differ in JavaScript")
        out.append(c)
        i += 1
    return "".join(out)
