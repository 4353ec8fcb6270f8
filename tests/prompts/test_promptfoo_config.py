"""promptfoo configurations as suites, without promptfoo: what is outside the subset is refused
before the first call (naming the file and the key), and `tether prompt import promptfoo` writes
Tether's form."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import Tether, write_files
from tether.prompts.fakeserver import serve

META = """variables:
  text: {type: string}
model: gpt-4o-mini
"""


def setup(repo: Path, config: dict[str, object], **files: str) -> None:
    write_files(
        repo,
        {
            "evals/promptfooconfig.yaml": json.dumps(config),
            "prompts/pf/v1.0.0/prompt.yaml": META,
            "prompts/pf/v1.0.0/template.jinja2": "Say exactly: {{ text }}",
            **files,
        },
    )


def test_outside_the_subset_is_refused_before_any_call(
    repo: Path, tether: Tether, tmp_path: Path, monkeypatch: object
) -> None:
    (tmp_path / "secret.csv").write_text("text\nleaked\n")
    config = {
        "providers": [
            {"id": "openai:chat:gpt-4o-mini", "config": {"apiBaseUrl": "https://evil.test/v1"}},
            "anthropic:messages:claude",
        ],
        "env": {"OPENAI_BASE_URL": "https://evil.test/v1"},
        "scenarios": [],
        "defaultTest": {"options": {"transform": "output.trim()"}},
        "tests": [
            {"vars": {"text": "a"}, "assert": [{"type": "javascript", "value": "true"}]},
            {"vars": {"text": "{{ other }}"}},
            {"vars": {"text": ["a", "b"]}},
            {"vars": {"text": "a"}, "assert": [{"type": "equals", "value": "{{ text | dump }}"}]},
            {
                "vars": {"text": "a"},
                "assert": [{"type": "contains", "value": "a", "transform": "x"}],
            },
            {"vars": {"text": "a"}, "options": {}},
            "file://../../secret.csv",
        ],
    }
    setup(repo, config)
    with serve(latency_s=0.0) as server:
        url = server.base_url
        with (repo / "tether.toml").open("a") as f:
            f.write(f'\n[prompts.providers.local]\ntype = "openai"\nbase_url = "{url}"\n')
        out = tether("prompt", "eval", "pf", "--suite", "evals/promptfooconfig.yaml", expect=4)
        assert server.requests == 0
    text = out.output
    assert "nothing was called" in text
    assert "providers[0].config (apiBaseUrl): a suite does not choose where requests go" in text
    assert "providers[1]: 'anthropic:messages:claude' is not an OpenAI-compatible" in text
    assert "promptfooconfig.yaml env: not in the supported subset" in text
    assert "promptfooconfig.yaml scenarios: not in the supported subset" in text
    assert "defaultTest.options: not in the supported subset" in text
    assert "tests[0] assert[0] (javascript): javascript is not in the supported subset" in text
    assert "tests[1].vars.text: a variable that is itself a template" in text
    assert "tests[2].vars.text: a list" in text
    assert "tests[3] assert[0] (equals): `value` '{{ text | dump }}' cannot be rendered" in text
    assert "tests[4] assert[0] (contains): transform not in the supported subset" in text
    assert "tests[5].options: not in the supported subset" in text
    assert "outside the repository" in text and "secret.csv" in text


def test_import_writes_tethers_form_and_names_what_it_left_out(repo: Path, tether: Tether) -> None:
    config = {
        "description": "imported",
        "prompts": ["file://prompt.txt"],
        "providers": ["openai:gpt-4o-mini"],
        "defaultTest": {"assert": [{"type": "icontains", "value": "a"}]},
        "tests": [
            {"description": "first", "vars": {"text": "Abc"}, "threshold": 0.5},
            {"description": "js", "vars": {"text": "x"}, "assert": [{"type": "javascript"}]},
            "file://cases.csv",
        ],
    }
    setup(repo, config, **{"evals/cases.csv": "text,__expected\nhello,starts-with: he\n"})
    out = tether(
        "prompt", "import", "promptfoo", "evals/promptfooconfig.yaml", "-o", "evals/pf.yaml",
        expect=1,
    )  # fmt: skip
    assert "wrote evals/pf.yaml: 3 cases" in out.output
    assert "not converted: " in out.output and "(javascript): javascript is not in" in out.output
    assert "note: " in out.output and "prompts: not read" in out.output
    written = (repo / "evals" / "pf.yaml").read_text()
    assert written.startswith("# converted from the promptfoo configuration promptfooconfig.yaml")
    assert "# not converted: " in written
    # the written suite is Tether's form: it loads, and evaluates with the prompt named
    with serve(latency_s=0.0) as server:
        with (repo / "tether.toml").open("a") as f:
            f.write(
                f'\n[prompts.providers.local]\ntype = "openai"\nbase_url = "{server.base_url}"\n'
            )
        done = tether(
            "prompt", "eval", "pf", "--suite", "evals/pf.yaml", "-p", "local", "--no-record"
        )
    text = done.output
    assert "3 cases" in text
    assert "failed Row #1#0" in text  # the answer, "negative", does not start with "he"
    assert "failed first" not in text and "failed js" not in text
    again = tether(
        "prompt", "import", "promptfoo", "evals/promptfooconfig.yaml", "-o", "evals/pf.yaml",
        expect=2,
    )  # fmt: skip
    assert "exists" in again.output
