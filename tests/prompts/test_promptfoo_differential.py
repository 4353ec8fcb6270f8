"""One promptfoo configuration, one fake OpenAI-compatible server, two tools: promptfoo 0.123.1
(``promptfoo eval -c CONFIG -o out.json --no-cache``) and ``tether prompt eval`` on the same file
must give the same pass/fail for every test. The server answers "Say exactly: X" with X, so
each test chooses the answer its assertions see; it grades (promptfoo's and Tether's judge
prompts alike: a high score when the output holds the rubric's word) and embeds (bag of words).

promptfoo comes from npm (``make promptfoo``, run by ``make test``; installed on first use here
otherwise); without network the test is skipped, unless TETHER_REQUIRE_SERVICES=1.
"""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.conftest import REQUIRE_SERVICES, Tether, write_files
from tether.api import Project
from tether.prompts.fakeserver import Behaviour, serve

SETUP = Path(__file__).resolve().parents[2] / "benchmarks" / "promptfoo_setup.py"
PREFIX = "Say exactly: "


def _setup() -> ModuleType:
    spec = importlib.util.spec_from_file_location("promptfoo_setup", SETUP)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["promptfoo_setup"] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def promptfoo() -> tuple[ModuleType, Path, Path]:
    setup = _setup()
    try:
        exe, node_bin, _note = setup.ensure(say=False)
    except setup.SetupError as exc:
        if REQUIRE_SERVICES:
            pytest.fail(f"promptfoo could not be installed (`make promptfoo`): {exc}")
        pytest.skip(f"promptfoo could not be installed from npm (offline?): {exc}")
    return setup, exe, node_bin


def answer(text: str) -> str:
    """The answer to a case (the text after the prefix) or a grade, in the asker's format."""
    pf = re.search(r"<Output>\n(.*)\n</Output>\n<Rubric>\n(.*)\n</Rubric>", text, re.S)
    if pf:
        score = 0.9 if _holds(pf[1], pf[2]) else 0.1
        return json.dumps({"reason": "fake", "pass": score >= 0.5, "score": score})
    ours = re.search(r"Rubric: (.*)\n\nInput: .*\n\nAnswer: (.*)\n?$", text, re.S)
    if ours:
        return json.dumps({"score": 9 if _holds(ours[2].strip(), ours[1]) else 1, "reason": "x"})
    return text.split(PREFIX, 1)[1] if PREFIX in text else "?"


def _holds(output: str, rubric: str) -> bool:
    return rubric.removeprefix("mentions ").strip() in output


def t(description: str, text: str, *asserts: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"description": description, "vars": {"text": text}, "assert": list(asserts), **extra}


TESTS = [
    t("equals", "positive", {"type": "equals", "value": "positive"}),
    t("equals is exact", "positive ", {"type": "equals", "value": "positive"}),
    t("equals a rendered var", "blue", {"type": "equals", "value": "{{ text | upper }}"}),
    t("contains is case-sensitive", "Great film", {"type": "contains", "value": "great"}),
    t("icontains", "Great film", {"type": "icontains", "value": "GREAT"}),
    t("contains-any text", "Great film", {"type": "contains-any", "value": 'nope, "film"'}),
    t("contains-all fails", "Great film", {"type": "contains-all", "value": ["Great", "nope"]}),
    t("icontains-any", "Great film", {"type": "icontains-any", "value": ["x", "FILM"]}),
    t("icontains-all", "Great film", {"type": "icontains-all", "value": ["great", "FILM"]}),
    t("regex", "Great film", {"type": "regex", "value": "^Great\\s\\w+$"}),
    t("regex digits are ASCII", "room \u0663", {"type": "regex", "value": "\\d"}),
    t("starts-with", "Great film", {"type": "starts-with", "value": "Great"}),
    t("not-starts-with", "Great film", {"type": "not-starts-with", "value": "Great"}),
    t("not-contains", "Great film", {"type": "not-contains", "value": "bad"}),
    t("is-json", '{"a": 1}', {"type": "is-json"}),
    t("is-json NaN", "NaN", {"type": "is-json"}),
    t("is-json fenced", '```json\n{"a": 1}\n```', {"type": "is-json"}),
    t("is-json schema", '{"a": 1}', {"type": "is-json", "value": {"required": ["b"]}}),
    t("similar", "the cat sat on the mat", {"type": "similar", "value": "the cat sat on a mat"}),
    t("not similar", "the cat sat", {"type": "similar", "value": "dogs run in parks"}),
    t("llm-rubric", "Great film", {"type": "llm-rubric", "value": "mentions film"}),
    t("llm-rubric fails", "Great film", {"type": "llm-rubric", "value": "mentions banana"}),
    t("latency", "ok", {"type": "latency", "threshold": 60000}),
    t("latency fails", "ok", {"type": "latency", "threshold": 1}),
    t("cost", "ok", {"type": "cost", "threshold": 1}),
    t("cost fails", "ok", {"type": "cost", "threshold": 1e-12}),
    t(
        "weighted threshold met",
        "Great film",
        {"type": "contains", "value": "nope"},
        {"type": "icontains", "value": "great", "weight": 3},
        threshold=0.7,
    ),
    t(
        "weighted threshold missed",
        "Great film",
        {"type": "contains", "value": "nope", "weight": 2},
        {"type": "icontains", "value": "great"},
        threshold=0.5,
    ),
    t("weight 0 fails nothing", "Great film", {"type": "equals", "value": "x", "weight": 0}),
    "file://cases.csv",
]
CSV = (
    "text,__expected1,__expected2,__description\n"
    'Great film,contains: film,"icontains-all: great, FILM",csv row passes\n'
    "Great film,Great film!,not-regex: ^G,csv row fails\n"
)
CONFIG = {
    "description": "differential",
    "prompts": [PREFIX + "{{ text }}"],
    "providers": ["openai:chat:gpt-4o-mini"],
    "defaultTest": {"assert": [{"type": "not-icontains", "value": "forbidden"}]},
    "tests": TESTS,
}
META = """variables:
  text: {type: string}
model: gpt-4o-mini
"""
TOML = """
[prompts]
judge = "openai:gpt-4.1"
embeddings = "openai:text-embedding-3-large"

[prompts.prices."gpt-4o-mini"]
input_per_million = 0.15
output_per_million = 0.6
"""


def run_promptfoo(setup: ModuleType, exe: Path, node_bin: Path, folder: Path, url: str) -> Any:
    env = setup.promptfoo_env(folder / "home", node_bin)
    env["OPENAI_BASE_URL"] = url
    out = folder / "out.json"
    proc = subprocess.run(
        [str(exe), "eval", "-c", "promptfooconfig.yaml", "-o", str(out), "--no-cache"],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    rows = json.loads(out.read_text())["results"]["results"]
    return {r["testCase"]["description"]: (r["success"], r.get("error")) for r in rows}


def test_promptfoo_and_tether_agree_on_every_case(
    promptfoo: tuple[ModuleType, Path, Path],
    repo: Path,
    tether: Tether,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    setup, exe, node_bin = promptfoo
    config = json.dumps(CONFIG, indent=2)  # JSON is YAML: one file for both tools
    write_files(
        repo,
        {
            "evals/promptfooconfig.yaml": config,
            "evals/cases.csv": CSV,
            "prompts/pf/v1.0.0/prompt.yaml": META,
            "prompts/pf/v1.0.0/template.jinja2": PREFIX + "{{ text }}",
        },
    )
    with (repo / "tether.toml").open("a") as f:
        f.write(TOML)
    with serve(latency_s=0.05, behaviour=Behaviour(answer=answer)) as server:
        theirs = run_promptfoo(setup, exe, node_bin, repo / "evals", server.base_url)
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test-differential")
        lib = Project.open(repo).prompts
        suite = lib.load_suite(repo / "evals" / "promptfooconfig.yaml")
        done = lib.evaluate(
            lib.resolve("pf@v1.0.0"),
            suite,
            lib.provider(suite, suite.providers[0]),
            judge=lib.judge(suite),
            record=False,
        )
        out = tether("prompt", "eval", "pf@v1.0.0", "--suite", "evals/promptfooconfig.yaml")
        tether("prompt", "import", "promptfoo", "evals/promptfooconfig.yaml", "-o", "evals/i.yaml")
        imported = lib.load_suite(repo / "evals" / "i.yaml")
        again = lib.evaluate(
            lib.resolve("pf@v1.0.0"),
            imported,
            lib.provider(imported, imported.providers[0]),
            judge=lib.judge(imported),
            record=False,
        )
    # the suite `prompt import` wrote (Tether's form) scores every case as the config does
    assert {r.case: r.passed for r in again.results} == {r.case: r.passed for r in done.results}
    ours = {r.case: (r.passed, r.error) for r in done.results}
    assert set(ours) == set(theirs), (sorted(ours), sorted(theirs))
    assert len(ours) == len(TESTS) + 1  # the CSV file holds two
    differ = {
        name: {"promptfoo": theirs[name], "tether": ours[name]}
        for name in ours
        if ours[name][0] != theirs[name][0]
    }
    assert not differ, json.dumps(differ, indent=2)
    # both outcomes are exercised, and the answers were not errors
    assert {p for p, _e in ours.values()} == {True, False}
    assert all(e is None for _p, e in ours.values()), ours
    assert "pf@v1.0.0 on openai:gpt-4o-mini (gpt-4o-mini)" in out.output
