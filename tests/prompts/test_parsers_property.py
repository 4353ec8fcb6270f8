"""Property tests for the parsers of prompt content a pull request can change: an eval suite (and
its case files), a prompt's ``prompt.yaml``, ``messages.yaml`` and template. Whatever the
document, each parses into something usable or raises a TetherError with a message: never
another exception, never a hang (the "ci" profile's deadline)."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import yaml
from hypothesis import event, example, given
from hypothesis import strategies as st

from tether.errors import TetherError
from tether.prompts import sandbox
from tether.prompts.suite import KEYS, Suite, load_suite
from tether.prompts.templates import Prompt, from_files

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**20), max_value=10**20)
    | st.floats(allow_nan=True)
    | st.text(max_size=20)
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(max_size=8) | st.integers(), inner, max_size=4)
    ),
    max_leaves=20,
)


def mapping_with(keys: tuple[str, ...] | list[str]) -> st.SearchStrategy[dict[Any, Any]]:
    """A mapping whose keys are mostly the ones a reader knows, with any values."""
    return st.dictionaries(st.sampled_from(list(keys)) | st.text(max_size=6), values, max_size=6)


names = st.text(alphabet="abcxyz_.-/ :", min_size=1, max_size=8)
assertion = st.sampled_from(
    [{"equals": "ok"}, {"contains": {"any": ["a"]}}, {"regex": "^a"}, {"label-match": True},
     {"latency": {"max_s": 2}}, {"python": "checks:score"}, {"cost": 0.1}]
)  # fmt: skip
good_case = st.fixed_dictionaries(
    {"id": names | st.integers(), "vars": st.dictionaries(names, values, max_size=3)},
    optional={"expected": values, "assert": st.lists(assertion, max_size=2)},
)
cases = st.lists(
    good_case
    | st.fixed_dictionaries({"file": st.sampled_from(["cases.csv", "cases.jsonl", "x.txt"])})
    | st.fixed_dictionaries({"file": values | names})
    | mapping_with(["id", "vars", "expected", "assert", "file"])
    | values,
    max_size=4,
)
assertion_specs = st.lists(
    assertion
    | st.dictionaries(
        st.sampled_from(["equals", "contains", "regex", "label-match", "python", "latency"])
        | st.text(max_size=6),
        values,
        min_size=1,
        max_size=2,
    )
    | values,
    max_size=3,
)
structured = st.fixed_dictionaries(
    {"cases": cases},
    optional={
        "description": st.text(max_size=20) | values,
        "assert": assertion_specs,
        "thresholds": st.dictionaries(
            st.sampled_from(["pass_rate", "latency_p95_s", "cost", "errors"]),
            st.floats(0, 10) | values,
        )
        | values,
        "providers": st.lists(names, max_size=3) | values,
        "scripted": st.lists(mapping_with(["when", "answer", "default"]), max_size=3) | values,
    },
)
suites = st.integers(0, 3).flatmap(lambda i: mapping_with(list(KEYS)) if i == 0 else structured)
raw_text = st.text(alphabet=st.sampled_from(list("{}[]:-,'\"&*!|>#\n abc12")), max_size=80)
csv_text = st.lists(st.lists(st.text(max_size=6), min_size=1, max_size=4), max_size=4).map(
    lambda rows: "\n".join(",".join(r) for r in [["id", "review", "expected"], *rows])
)
jsonl_text = st.lists(
    st.dictionaries(st.sampled_from(["id", "vars", "expected", "assert", "review", "vars.x"]),
                    values, max_size=4) | values,
    max_size=3,
).map(lambda rows: "\n".join(json.dumps(r) for r in rows))  # fmt: skip
case_files = csv_text | jsonl_text | st.text(max_size=120)


def _load_suite(text: str | bytes, cases_text: str) -> Suite | TetherError:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        suite = folder / "suite.yaml"
        suite.write_bytes(text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text)
        for name in ("cases.csv", "cases.jsonl", "x.txt"):
            (folder / name).write_text(cases_text, encoding="utf-8", errors="surrogatepass")
        try:
            loaded = load_suite(suite)
        except TetherError as exc:
            assert str(exc), "an error without a message"
            event("refused")
            return exc
        event(f"parsed ({'with' if loaded.cases else 'no'} cases)")
        return loaded


@given(doc=suites, cases_text=case_files)
@example(doc={"cases": [{"file": "cases.csv"}]}, cases_text="id,review\nc1,a,extra,fields\n")
@example(doc={"cases": [{"file": "cases.jsonl"}]}, cases_text='{"vars": [1]}\n')
@example(doc={"cases": [{"vars": {"x": 1}, "assert": [7]}]}, cases_text="")
@example(doc={"cases": [], "thresholds": {"pass_rate": "high"}}, cases_text="")
def test_any_suite_document_parses_or_is_refused_clearly(doc: Any, cases_text: str) -> None:
    text = yaml.safe_dump(doc, allow_unicode=True, sort_keys=False)
    result = _load_suite(text, cases_text)
    if isinstance(result, Suite):
        assert all(isinstance(c.id, str) and isinstance(c.vars, dict) for c in result.cases)
        assert all(isinstance(v, float) for v in result.thresholds.values())
        assert all(isinstance(p, str) for p in result.providers)


@given(
    text=raw_text
    | raw_text.map(lambda t: "cases:\n" + t)
    | st.text(max_size=80)
    | st.binary(max_size=80)
)
@example(text="cases: []\nwhen: 2024-13-45\n")
@example(text="cases: [&a [*a]]\n")
@example(text="cases:\n- &a [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]\n" + "".join(
    f"- &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n"
    for p, c in zip("abcdefgh", "bcdefghi", strict=True)
))  # fmt: skip
@example(text="[" * 5000)
def test_any_suite_text_parses_or_is_refused_clearly(text: str | bytes) -> None:
    _load_suite(text, "")


templates = st.lists(
    st.sampled_from(
        ["{{", "}}", "{%", "%}", "{#", "#}", " for ", " in ", " if ", "endfor", "endif", "x",
         "review", "range(", ")", "|", "join", "*", "9", "'", '"', "~", ".", "set ", "=", "\n"]
    ),
    max_size=30,
).map("".join)  # fmt: skip
metas = (
    st.fixed_dictionaries(
        {},
        optional={
            "description": values,
            "variables": st.dictionaries(
                st.text(max_size=6) | st.integers(),
                st.sampled_from(["string", "integer", "list", "nope"])
                | mapping_with(["type", "required", "default", "description"])
                | values,
                max_size=3,
            )
            | values,
            "model": values,
            "params": mapping_with(["temperature", "max_tokens", "base_url"]) | values,
            "output": mapping_with(["format", "labels"]) | values,
        },
    )
    | mapping_with(["description", "variables", "model", "params", "output"])
    | values
)


@given(meta=metas, template=templates | st.text(max_size=40), chat=st.booleans(), data=st.data())
def test_any_prompt_version_loads_and_renders_or_is_refused_clearly(
    meta: Any, template: str, chat: bool, data: st.DataObject
) -> None:
    files = {"prompt.yaml": yaml.safe_dump(meta, allow_unicode=True).encode()}
    if chat:
        messages = data.draw(
            st.lists(mapping_with(["role", "content"]), max_size=2)
            | st.just([{"role": "user", "content": template}])
            | values
        )
        files["messages.yaml"] = yaml.safe_dump(messages, allow_unicode=True).encode()
    else:
        files["template.jinja2"] = template.encode("utf-8", "surrogatepass")
    try:
        prompt = from_files("p", "v1.0.0", files, Path("prompts/p/v1.0.0"))
    except TetherError as exc:
        assert str(exc)
        event("refused on load")
        return
    assert isinstance(prompt, Prompt)
    given_values = data.draw(st.dictionaries(st.sampled_from(["review", "x", "n"]), values))
    try:
        with sandbox.limits(sandbox.Limits(timeout_s=0.5)):  # well inside the profile's deadline
            out = prompt.render(**given_values)
    except TetherError as exc:
        assert str(exc)
        event("refused on render")
        return
    event("rendered")
    assert isinstance(out, str)


PF_KEYS = st.sampled_from(
    ["prompts", "providers", "tests", "defaultTest", "assert", "vars", "id", "config", "type",
     "value", "threshold", "weight"]
) | st.integers(0, 3) | st.text(max_size=3)  # fmt: skip
PF_LEAF = st.none() | st.booleans() | st.integers(-2, 5) | st.text(max_size=5)
PF_VALUES = st.recursive(
    PF_LEAF,
    lambda c: st.lists(c, max_size=3) | st.dictionaries(PF_KEYS, c, max_size=3),
    max_leaves=10,
)


@given(
    doc=st.dictionaries(
        st.sampled_from(["prompts", "providers", "tests", "defaultTest", "description"]),
        PF_VALUES,
        min_size=1,
        max_size=4,
    )
)
@example(doc={"prompts": None, "providers": None, "tests": [{"assert": True}]})
@example(doc={"providers": {"": None, 0: None}})
def test_any_promptfoo_configuration_parses_or_is_refused_clearly(doc: Any) -> None:
    _load_suite(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False), "")
