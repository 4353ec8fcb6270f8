"""promptfoo configurations read as Tether suites: the subset whose pass/fail per case is the one
promptfoo 0.123.1 gives on the same answers.

Read: ``description``; ``providers`` as ids (``openai:MODEL``, ``openai:chat:MODEL``, or
``{id: ...}`` without ``config``: where requests go and with which key is never a suite's to
say, it comes from ``OPENAI_BASE_URL``/``OPENAI_API_KEY`` or tether.toml); ``tests`` inline, or
``file://`` CSV (promptfoo's columns: variables, ``__expected[N]``, ``__description``,
``__threshold``), YAML, JSON or JSONL files inside the repository, each test with
``description``, ``vars`` (or ``vars: file://...``; a value ``file://x.txt`` is the file's text),
``assert`` and ``threshold``; ``defaultTest`` (its vars under each test's, its assertions
first). Assertion values are rendered with the test's variables in Tether's Jinja2 sandbox.

Assertions (``type``, ``value``, ``threshold``, ``weight``; ``metric`` is ignored), mapped:

==================================  =====================================================
equals                              ``equals: {value, trim: false}`` (exact; scalars only)
contains / icontains                ``contains: {any: [v], case_sensitive: true|false}``
contains-any/-all, icontains-any/   ``contains: {any|all: [...]}`` (a text value is split at
-all                                commas, with promptfoo's quoting)
regex                               ``regex`` (Python ``re`` with ASCII classes; ``$`` is the
                                    end of the text, as in JavaScript)
starts-with                         ``regex: '\\A...'``
is-json (value: a schema)           ``is-json: {strict: true, schema}`` (JSON.parse's rules)
not-X for each of the above         ``not: {...}``
similar (threshold, default 0.75)   ``similar: {reference, min}`` ([prompts] embeddings)
llm-rubric (threshold)              ``judge: {rubric, min}`` ([prompts] judge); promptfoo also
                                    trusts the grader's own pass flag, Tether its score, min
                                    0.5 unless a threshold is set
latency (threshold ms) / cost       ``latency: {max_s}`` / ``cost: {max}``
==================================  =====================================================

A test passes when every assertion of non-zero weight passes or, with ``threshold``, when the
weighted mean score reaches it (promptfoo's rule). Everything else (javascript, python and the
other types, ``transform``, ``options``, ``provider`` on a test or an assertion, ``scenarios``,
``env``, list variables, variables that are templates, unknown keys) is refused before the first
call, naming the file and the key. ``prompts`` are not read: Tether evaluates the version named
on the command line (``tether prompt eval NAME@VERSION --suite promptfooconfig.yaml``).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from tether.prompts.promptfoo_text import Refused, csv_tests, js_string, python_regex, split_commas
from tether.prompts.suite import Case, case_path
from tether.prompts.templates import PromptError, inside, read_yaml

KEYS = ("description", "prompts", "providers", "tests", "defaultTest")
IGNORED = ("$schema", "sharing", "outputPath", "tags", "metadata", "evaluateOptions")
TEST_KEYS = ("description", "vars", "assert", "threshold", "metadata")
ASSERT_KEYS = ("type", "value", "threshold", "weight", "metric")
TEST_FILES = (".csv", ".yaml", ".yml", ".json", ".jsonl")
VAR_FILES = (".txt", ".md", ".json", ".csv", ".html", ".xml")
NEGATABLE = (
    "equals", "contains", "icontains", "contains-any", "contains-all", "icontains-any",
    "icontains-all", "regex", "starts-with", "is-json",
)  # fmt: skip
SUPPORTED = (*NEGATABLE, "similar", "llm-rubric", "latency", "cost")


@dataclass
class Converted:
    """A promptfoo configuration as Tether reads it, and what it could not take."""

    path: Path
    description: str = ""
    providers: list[str] = field(default_factory=list)
    prompts: list[Any] = field(default_factory=list)
    asserts: list[dict[str, Any]] = field(default_factory=list)
    cases: list[Case] = field(default_factory=list)
    files: list[bytes] = field(default_factory=list)  # the test files read: the suite's content
    paths: list[Path] = field(default_factory=list)  # and where they are
    refused: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def check(self) -> None:
        """Refuse (PromptError naming every part) a configuration not wholly in the subset."""
        if self.refused:
            shown = self.refused[:20] + [f"... and {len(self.refused) - 20} more"] * (
                len(self.refused) > 20
            )
            raise PromptError(
                f"{self.path} is a promptfoo configuration with {len(self.refused)} part(s) "
                "outside what Tether runs as promptfoo does (nothing was called):\n  "
                + "\n  ".join(shown)
                + "\n(`tether prompt import promptfoo` converts the rest to Tether's form)"
            )


def is_promptfoo(doc: Any) -> bool:
    """A document in promptfoo's form rather than Tether's (``cases:``)."""
    return isinstance(doc, dict) and "cases" not in doc and bool(set(doc) & {*KEYS, "scenarios"})


def convert(doc: dict[str, Any], path: Path, root: Path) -> Converted:
    """``doc`` (the configuration at ``path``, inside ``root``) in Tether's terms."""
    out = Converted(path=path)
    for key in doc:
        if key in IGNORED:
            if key == "evaluateOptions" and set(doc[key] or {}) - {"maxConcurrency"}:
                out.refused.append(f"{path} evaluateOptions: only maxConcurrency is read (-j)")
            else:
                out.notes.append(f"{path} {key}: ignored")
        elif key not in KEYS:
            out.refused.append(
                f"{path} {key}: not in the supported subset (known: {', '.join(KEYS)})"
            )
    if doc.get("description") is not None:
        out.description = str(doc["description"])
    prompts = doc.get("prompts")
    out.prompts = prompts if isinstance(prompts, list) else [prompts] if prompts else []
    if out.prompts:
        out.notes.append(
            f"{path} prompts: not read; Tether evaluates the prompt version named on the command "
            "line (tether prompt eval NAME@VERSION --suite ...)"
        )
    _providers(doc.get("providers"), out)
    defaults = doc.get("defaultTest") or {}
    if not isinstance(defaults, dict):
        out.refused.append(f"{path} defaultTest: a mapping (vars, assert, threshold)")
        defaults = {}
    for key in defaults:
        if key not in TEST_KEYS or key == "description":
            out.refused.append(f"{path} defaultTest.{key}: not in the supported subset")
    base_vars = _vars(defaults.get("vars"), path, root, f"{path} defaultTest.vars", out)
    raw_tests = _test_list(doc.get("tests"), path, root, out)
    seen: dict[str, int] = {}
    for i, (where, raw, folder) in enumerate(raw_tests):
        case = _case(raw, defaults, base_vars, where, folder, root, i, out)
        if case is None:
            continue
        n = seen[case.id] = seen.get(case.id, 0) + 1
        out.cases.append(replace(case, id=f"{case.id} ({n})") if n > 1 else case)
    return out


def _providers(raw: Any, out: Converted) -> None:
    entries = raw if isinstance(raw, list) else [raw] if raw else []
    for i, entry in enumerate(entries):
        at = f"{out.path} providers[{i}]"
        if isinstance(entry, dict) and "id" not in entry and len(entry) == 1:
            ((pid, options),) = entry.items()
            entry = {"id": pid, **(options if isinstance(options, dict) else {})}
        if isinstance(entry, dict):
            extra = sorted(set(entry) - {"id", "label"}, key=str)
            if "config" in extra:
                config = entry["config"]
                keys = ", ".join(sorted(map(str, config if isinstance(config, dict) else {})))
                out.refused.append(
                    f"{at}.config ({keys}): a suite does not choose where requests go, with "
                    "which key, or how the model samples; set OPENAI_BASE_URL / OPENAI_API_KEY "
                    "where the eval runs or [prompts.providers.NAME] in tether.toml, and "
                    "sampling in the prompt version's prompt.yaml"
                )
            elif extra:
                out.refused.append(
                    f"{at}: {', '.join(map(str, extra))} not in the supported subset"
                )
            entry = entry.get("id")
        name = _provider_id(entry)
        if name is None:
            out.refused.append(
                f"{at}: {entry!r} is not an OpenAI-compatible model id (openai:MODEL or "
                "openai:chat:MODEL); name another provider with -p NAME ([prompts.providers])"
            )
        else:
            out.providers.append(name)


def _provider_id(pid: Any) -> str | None:
    if not isinstance(pid, str):
        return None
    parts = pid.split(":")
    if len(parts) == 3 and parts[:2] == ["openai", "chat"] and parts[2]:
        return f"openai:{parts[2]}"
    if len(parts) == 2 and parts[0] == "openai" and parts[1] and parts[1] != "chat":
        return pid
    return None


def _file(root: Path, base: Path, ref: Any, where: str, suffixes: tuple[str, ...]) -> Path:
    name = ref[len("file://") :]
    return case_path(root, base / "_", name, where, suffixes)


def _read(path: Path, where: str, out: Converted) -> bytes:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise Refused(f"{where}: {path} cannot be read ({exc.strerror})") from None
    out.files.append(data)
    out.paths.append(path)
    return data


def _test_list(raw: Any, path: Path, root: Path, out: Converted) -> list[tuple[str, Any, Path]]:
    """(where, test mapping or CSV row, the folder its file:// paths are relative to)."""
    entries = [raw] if isinstance(raw, str) else raw if isinstance(raw, list) else []
    if raw is not None and not isinstance(raw, str | list):
        out.refused.append(f"{path} tests: a list of tests or a file://tests.csv")
    found: list[tuple[str, Any, Path]] = []
    for i, entry in enumerate(entries):
        at = f"{path} tests[{i}]" if isinstance(raw, list) else f"{path} tests"
        if isinstance(entry, dict):
            found.append((at, entry, path.parent))
            continue
        if not isinstance(entry, str) or not entry.startswith("file://"):
            out.refused.append(f"{at}: a test mapping or a file:// path inside the repository")
            continue
        try:
            file = _file(root, path.parent, entry, at, TEST_FILES)
            data = _read(file, at, out)
            label = f"{at} ({entry})"
            if file.suffix == ".csv":
                found += [
                    (f"{label} row {n + 1}", row, file.parent) for n, row in csv_tests(data, label)
                ]
            else:
                tests = _structured(data, file, label)
                found += [(f"{label} test {n + 1}", t, file.parent) for n, t in enumerate(tests)]
        except (PromptError, Refused) as exc:
            out.refused.append(str(exc))
    return found


def _structured(data: bytes, file: Path, label: str) -> list[Any]:
    tests: Any
    if file.suffix == ".jsonl":
        try:
            tests = [json.loads(line) for line in data.decode("utf-8").splitlines() if line.strip()]
        except (UnicodeDecodeError, ValueError) as exc:
            raise Refused(f"{label} is not JSON lines ({exc})") from None
    else:
        tests = read_yaml(data, label)
    tests = [tests] if isinstance(tests, dict) else tests
    if not isinstance(tests, list):
        raise Refused(f"{label}: a list of tests")
    return tests


def _vars(raw: Any, path: Path, root: Path, where: str, out: Converted) -> dict[str, Any]:
    if raw is None:
        return {}
    try:
        if isinstance(raw, str) and raw.startswith("file://"):
            file = _file(root, path.parent, raw, where, (".yaml", ".yml", ".json"))
            raw = read_yaml(_read(file, where, out), f"{where} ({raw})")
        if not isinstance(raw, dict) or not all(isinstance(k, str) for k in raw):
            raise Refused(f"{where}: a mapping of variable names to values")
        return {
            name: _var(value, path, root, f"{where}.{name}", out) for name, value in raw.items()
        }
    except (PromptError, Refused) as exc:
        out.refused.append(str(exc))
        return {}


def _var(value: Any, path: Path, root: Path, where: str, out: Converted) -> Any:
    if isinstance(value, list | dict):
        raise Refused(
            f"{where}: a {type(value).__name__} (promptfoo runs one test per value of a list); "
            "write one test per value"
        )
    if not isinstance(value, str):
        return value
    if value.startswith("file://"):
        file = _file(root, path.parent, value, where, VAR_FILES)
        try:
            return _read(file, where, out).decode("utf-8").strip()
        except UnicodeDecodeError:
            raise Refused(f"{where}: {value} is not UTF-8 text") from None
    if "{{" in value or "{%" in value:
        raise Refused(
            f"{where}: a variable that is itself a template (promptfoo renders it with the "
            "others; Tether does not): put the text in the prompt"
        )
    return value[:-1] if value.endswith("\n") else value  # as promptfoo strips it


def _case(
    raw: Any,
    defaults: dict[str, Any],
    base_vars: dict[str, Any],
    where: str,
    folder: Path,
    root: Path,
    index: int,
    out: Converted,
) -> Case | None:
    if not isinstance(raw, dict):
        out.refused.append(f"{where}: a test is a mapping (description, vars, assert)")
        return None
    text = bool(raw.pop("__csv", False))  # a CSV row: its values are text, typed by the prompt
    bad = [f"{where}.{k}: not in the supported subset" for k in raw if k not in TEST_KEYS]
    out.refused += bad
    values = {**base_vars, **_vars(raw.get("vars"), folder / "_", root, f"{where}.vars", out)}
    specs = []
    given = [*(defaults.get("assert") or []), *(raw.get("assert") or [])]
    for n, one in enumerate(given):
        try:
            specs.append(assertion(one, values, f"{where} assert[{n}]"))
        except Refused as exc:
            out.refused.append(str(exc))
    threshold = yaml12_number(raw.get("threshold", defaults.get("threshold")))
    if threshold is not None and (
        isinstance(threshold, bool) or not isinstance(threshold, int | float)
    ):
        out.refused.append(f"{where}.threshold: a number")
        threshold = None
    description = raw.get("description")
    return Case(
        id=str(description) if description not in (None, "") else f"test-{index + 1}",
        vars=values,
        asserts=tuple(specs),
        threshold=None if threshold is None else float(threshold),
        text_vars=frozenset(values) - frozenset(base_vars) if text else frozenset(),
    )


def assertion(raw: Any, values: dict[str, Any], where: str) -> dict[str, Any]:
    """One promptfoo assertion as a Tether assertion entry (with its ``weight``)."""
    if not isinstance(raw, dict) or not isinstance(raw.get("type"), str):
        raise Refused(f"{where}: an assertion is a mapping with `type`")
    kind = raw["type"]
    where = f"{where} ({kind})"
    extra = sorted(set(raw) - set(ASSERT_KEYS), key=str)
    if extra:
        raise Refused(f"{where}: {', '.join(map(str, extra))} not in the supported subset")
    base = kind.removeprefix("not-")
    negated = base != kind
    if base not in SUPPORTED or (negated and base not in NEGATABLE):
        raise Refused(
            f"{where}: {kind} is not in the supported subset ({', '.join(SUPPORTED)}, and not- "
            f"of {', '.join(NEGATABLE)})"
        )
    threshold = yaml12_number(raw.get("threshold"))
    if threshold is not None and (
        isinstance(threshold, bool) or not isinstance(threshold, int | float)
    ):
        raise Refused(f"{where}: `threshold` is a number")
    value = _rendered(raw.get("value"), values, where)
    spec = _mapped(base, value, threshold, where)
    spec = {"not": spec} if negated else spec
    weight = yaml12_number(raw.get("weight", 1))
    if isinstance(weight, bool) or not isinstance(weight, int | float) or not weight >= 0:
        raise Refused(f"{where}: `weight` is a number, 0 or more")
    return {**spec, "weight": weight} if weight != 1 else spec


def _mapped(base: str, value: Any, threshold: float | None, where: str) -> dict[str, Any]:
    if base in ("contains", "icontains"):
        if not (isinstance(value, str) and value) and not _number(value):
            raise Refused(f"{where}: `value` is a non-empty text or a number")
        return {"contains": {"any": [js_string(value)], "case_sensitive": base == "contains"}}
    if base.endswith(("-any", "-all")):
        items = split_commas(value) if isinstance(value, str) and value else value
        if not isinstance(items, list) or not items:
            raise Refused(f"{where}: `value` is a non-empty list (or a comma-separated text)")
        key = "any" if base.endswith("-any") else "all"
        return {"contains": {key: [js_string(v) for v in items], "case_sensitive": base[0] != "i"}}
    if base == "equals":
        if not isinstance(value, str) and not _number(value):
            raise Refused(f"{where}: `value` is a text or a number (JSON comparisons are not)")
        return {"equals": {"value": js_string(value), "trim": False}}
    if base in ("regex", "starts-with"):
        if not isinstance(value, str) or not value:
            raise Refused(f"{where}: `value` is a non-empty text")
        return {
            "regex": python_regex(value, where) if base == "regex" else r"\A" + re.escape(value)
        }
    if base == "is-json":
        if isinstance(value, str) and value:
            value = read_yaml(value.encode(), f"{where} value")
        if value in (None, "") or value == {}:  # an empty schema accepts any JSON
            return {"is-json": {"strict": True}}
        if not isinstance(value, dict):
            raise Refused(f"{where}: `value` is a JSON schema")
        return {"is-json": {"strict": True, "schema": value}}
    if base in ("similar", "llm-rubric"):
        if not isinstance(value, str) or not value:
            raise Refused(f"{where}: `value` is a text (lists are not in the subset)")
        if base == "similar":
            return {
                "similar": {"reference": value, "min": 0.75 if threshold is None else threshold}
            }
        return {"judge": {"rubric": value, "min": 0.5 if threshold is None else threshold}}
    if threshold is None:
        raise Refused(f"{where}: needs a `threshold`")
    if base == "latency":
        return {"latency": {"max_s": threshold / 1000}}
    return {"cost": {"max": threshold}}


def yaml12_number(value: Any) -> Any:
    """``1e-12`` is a number to promptfoo (YAML 1.2) and a text to PyYAML (YAML 1.1)."""
    if isinstance(value, str) and re.fullmatch(
        r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?", value
    ):
        return float(value)
    return value


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value == value


def _rendered(value: Any, values: dict[str, Any], where: str) -> Any:
    if isinstance(value, list):
        return [_rendered(v, values, where) if isinstance(v, str) else v for v in value]
    if not isinstance(value, str) or not re.search(r"{{|{%|{#", value):
        return value
    if value.startswith("file://"):
        raise Refused(f"{where}: a file:// value (script or file) is not in the subset")
    from tether.prompts import sandbox, templates

    try:
        return sandbox.render(templates._compiled(value), values)
    except Exception as exc:  # a Nunjucks-only filter or tag, an undefined variable
        raise Refused(
            f"{where}: `value` {value[:60]!r} cannot be rendered by Tether's Jinja2 sandbox "
            f"({type(exc).__name__}: {exc}); Nunjucks-only syntax is not in the subset"
        ) from None


def read(path: Path, root: Path | None = None) -> Converted:
    """The promptfoo configuration at ``path`` (inside ``root``, default: its repository),
    converted; what is outside the subset is listed in ``refused``, not raised."""
    from tether.prompts.suite import _root_of

    root = _root_of(path) if root is None else root
    where = f"promptfoo configuration {path}"
    if not path.exists():
        raise PromptError(f"no {where}")
    resolved = inside(root, path, where)
    try:
        doc = read_yaml(resolved.read_bytes(), where)
    except OSError as exc:
        raise PromptError(f"{where} cannot be read ({exc.strerror})") from None
    if not is_promptfoo(doc):
        raise PromptError(f"{where} has none of {', '.join(KEYS)}: not a promptfoo configuration")
    return convert_checked(doc, path, root, where)


def convert_checked(doc: Any, path: Path, root: Path, where: str) -> Converted:
    """:func:`convert`, with a shape it did not expect named, not raised as a traceback."""
    try:
        return convert(doc, path, root)
    except (TypeError, AttributeError, KeyError, ValueError, IndexError) as exc:
        raise PromptError(
            f"{where} is not a promptfoo configuration Tether can read ({type(exc).__name__}: "
            f"{exc}); `tether prompt import promptfoo --help` names the subset"
        ) from None


def as_yaml(conv: Converted) -> str:
    """The converted configuration as a Tether suite file, headed by what was left out."""
    from tether._documents import dump_yaml

    head = [f"# converted from the promptfoo configuration {conv.path.name}"]
    head += [f"# not converted: {line}" for line in conv.refused]
    head += [f"# note: {line}" for line in conv.notes]
    return "\n".join(head) + "\n" + dump_yaml(short_form(conv), sort_keys=False)


def short_form(conv: Converted) -> dict[str, Any]:
    """The converted configuration as a Tether suite document (``evals/NAME.yaml``)."""
    doc: dict[str, Any] = {}
    if conv.description:
        doc["description"] = conv.description
    cases = []
    for case in conv.cases:
        one: dict[str, Any] = {"id": case.id, "vars": dict(case.vars)}
        if case.asserts:
            one["assert"] = [dict(a) for a in case.asserts]
        if case.threshold is not None:
            one["threshold"] = case.threshold
        cases.append(one)
    doc["cases"] = cases
    if conv.providers:
        doc["providers"] = list(conv.providers)
    return doc
