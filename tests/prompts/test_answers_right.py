"""Answers a user would ship: a judge's reply read strictly, cost kept when the endpoint names a
dated snapshot, `contains` lists, and typed variables from CSV cells and `--var`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import Tether, write_files
from tether.api import Project
from tether.prompts.assertions import Unscorable, judge_score
from tether.prompts.fakeserver import Behaviour, serve

META = """variables:
  review: {type: string}
model: gpt-4o-mini
"""


def provider(repo: Path, base_url: str, extra: str = "") -> None:
    with (repo / "tether.toml").open("a") as f:
        f.write(
            f'\n[prompts]\njudge = "local"\n'
            f'\n[prompts.providers.local]\ntype = "openai"\nbase_url = "{base_url}"\n'
            f'model = "gpt-4o-mini"\n{extra}'
        )


def run_id(out: str) -> str:
    return out.split("recorded as run ")[1].split()[0]


@pytest.mark.parametrize(
    ("reply", "score"),
    [
        ('{"score": 8, "reason": "polite"}', 0.8),
        ('```json\n{"score": 10}\n```', 1.0),
        ("The answer is polite.\nScore: 3/4", 0.75),
    ],
)
def test_a_judge_reply_in_the_form_asked_for_is_read(reply: str, score: float) -> None:
    assert judge_score(reply) == score


@pytest.mark.parametrize(
    "reply",
    [
        "I would rate it 2 out of 10",  # the first number, clamped, used to give 1.0
        "0.9",
        '{"score": 11}',
        '{"score": "high"}',
        "Score: 2/10\nScore: 9/10",
        "Score: 12/10",
    ],
)
def test_a_reply_that_is_not_a_score_is_refused(reply: str) -> None:
    with pytest.raises(Unscorable):
        judge_score(reply)


def test_an_unparsable_judge_reply_is_an_error_not_a_pass(
    project: Project, repo: Path, tether: Tether
) -> None:
    def answer(text: str) -> str:
        if text.startswith("You grade an answer"):
            said = text.split("Answer:")[-1]
            return "I would rate it 2 out of 10" if "rude" in said else '{"score": 9}'
        return "rude reply" if "bad" in text else "kind reply"

    write_files(
        repo,
        {
            "prompts/r/v1.0.0/prompt.yaml": META,
            "prompts/r/v1.0.0/template.jinja2": "Reply to: {{ review }}",
            "evals/j.yaml": "assert:\n  - judge: {rubric: polite?, min: 0.5}\ncases:\n"
            "  - {id: good, vars: {review: fine}}\n  - {id: bad, vars: {review: bad}}\n",
        },
    )
    with serve(latency_s=0.0, behaviour=Behaviour(answer=answer)) as server:
        provider(repo, server.base_url)
        out = tether(
            "prompt", "eval", "r", "--suite", "evals/j.yaml", "-p", "local", expect=1
        ).output
    assert "pass rate 50.0%" in out and "1 error" in out
    assert "2 out of 10" in out  # the reply is quoted in the failure
    run = project.get_run(run_id(out))
    data = project.ws.store.read_bytes(run["artifacts"]["results.jsonl"])
    rows = [json.loads(r) for r in data.decode().splitlines()]
    bad = next(r for r in rows if r["case"] == "bad")
    assert bad["passed"] is False and "did not answer" in bad["error"]


def test_cost_is_kept_when_the_endpoint_answers_with_a_dated_snapshot(
    project: Project, repo: Path, tether: Tether
) -> None:
    write_files(
        repo,
        {
            "prompts/r/v1.0.0/prompt.yaml": META,
            "prompts/r/v1.0.0/template.jinja2": "{{ review }}",
            "evals/c.yaml": "cases:\n  - {id: a, vars: {review: good}}\n",
        },
    )
    prices = (
        '\n[prompts.prices."gpt-4o-mini"]\ninput_per_million = 1000.0\n'
        "output_per_million = 1000.0\n"
    )
    with serve(latency_s=0.0, behaviour=Behaviour(snapshot="-2024-07-18")) as server:
        provider(repo, server.base_url, prices)
        out = tether("prompt", "eval", "r", "--suite", "evals/c.yaml", "-p", "local").output
        assert server.seen[0].body["model"] == "gpt-4o-mini"
    run = project.get_run(run_id(out))
    assert run["metrics"]["cost"]["last"] > 0


def test_cost_is_found_through_an_alias(project: Project, repo: Path, tether: Tether) -> None:
    write_files(
        repo,
        {
            "prompts/r/v1.0.0/prompt.yaml": META,
            "prompts/r/v1.0.0/template.jinja2": "{{ review }}",
            "evals/c.yaml": "cases:\n  - {id: a, vars: {review: good}}\n",
        },
    )
    prices = (
        '\n[prompts.prices.mini]\naliases = ["gpt-4o-mini"]\ninput_per_million = 1000.0\n'
        "output_per_million = 0.0\n"
    )
    with serve(latency_s=0.0) as server:
        provider(repo, server.base_url, prices)
        out = tether("prompt", "eval", "r", "--suite", "evals/c.yaml", "-p", "local").output
    assert project.get_run(run_id(out))["metrics"]["cost"]["last"] > 0


def test_contains_a_list_means_any_and_promptfoo_names_work(repo: Path, tether: Tether) -> None:
    suite = """scripted:
  - default: "a great film"
cases:
  - {id: list, vars: {review: x}, assert: [{contains: [good, great]}]}
  - {id: any, vars: {review: x}, assert: [{contains-any: [awful, film]}]}
  - {id: all, vars: {review: x}, assert: [{contains-all: [great, film]}]}
  - {id: all-missing, vars: {review: x}, assert: [{contains-all: [great, plot]}]}
  - {id: none, vars: {review: x}, assert: [{contains: [bad, dull]}]}
"""
    write_files(
        repo,
        {
            "prompts/r/v1.0.0/prompt.yaml": META,
            "prompts/r/v1.0.0/template.jinja2": "{{ review }}",
            "evals/s.yaml": suite,
        },
    )
    out = tether("prompt", "eval", "r", "--suite", "evals/s.yaml", "-p", "scripted").output
    assert "pass rate 60.0%" in out
    assert "failed all-missing#0: missing ['plot']" in out
    assert "failed none#0: none of ['bad', 'dull']" in out


TYPED = """variables:
  review: {type: string}
  n: {type: integer}
  temp: {type: number, required: false, default: 0.5}
model: gpt-4o-mini
"""


def test_csv_cells_become_the_declared_types(repo: Path, tether: Tether) -> None:
    write_files(
        repo,
        {
            "prompts/t/v1.0.0/prompt.yaml": TYPED,
            "prompts/t/v1.0.0/template.jinja2": "{{ review }} x{{ n + 1 }} at {{ temp * 2 }}",
            "evals/t.yaml": "scripted:\n  - default: ok\ncases:\n  - file: rows.csv\n",
            "evals/rows.csv": "id,review,n,temp\na,one,1,1e3\nb,two,41,\n",
        },
    )
    assert "no problems" in tether("prompt", "lint", "t", "--suite", "evals/t.yaml").output
    out = tether("prompt", "eval", "t", "--suite", "evals/t.yaml", "-p", "scripted").output
    assert "pass rate 100.0%" in out and "error" not in out.replace("0 errors", "")
    (repo / "evals/rows.csv").write_text("id,review,n\na,one,1\nb,two,many\n")
    linted = tether("prompt", "lint", "t", "--suite", "evals/t.yaml", expect=1).output
    assert "suite case 2" in linted and "'many' is not an integer" in linted


def test_a_number_variable_takes_scientific_notation_on_the_command_line(
    repo: Path, tether: Tether
) -> None:
    write_files(
        repo,
        {
            "prompts/t/v1.0.0/prompt.yaml": TYPED,
            "prompts/t/v1.0.0/template.jinja2": "{{ review }} {{ n + 1 }} {{ temp * 2 }}",
        },
    )
    args = ("prompt", "render", "t", "--var", "review=hi", "--var", "n=2")
    assert tether(*args, "--var", "temp=1e3").output.strip() == "hi 3 2000.0"
    refused = tether(*args, "--var", "temp=lots", expect=4).output
    assert "variable temp" in refused and "not a number" in refused


def test_an_eval_without_thresholds_gives_figures_and_no_verdict(
    project: Project, repo: Path, tether: Tether
) -> None:
    write_files(
        repo,
        {
            "prompts/r/v1.0.0/prompt.yaml": META,
            "prompts/r/v1.0.0/template.jinja2": "{{ review }}",
            "evals/zero.yaml": "scripted:\n  - default: no\ncases:\n"
            "  - {id: a, vars: {review: x}, expected: yes, assert: [{equals: yes}]}\n",
        },
    )
    args = ("prompt", "eval", "r", "--suite", "evals/zero.yaml", "-p", "scripted")
    out = tether(*args, "--html", "report.html").output
    assert "pass rate 0.0%" in out and "no verdict: the suite sets no thresholds" in out
    page = (repo / "report.html").read_text()
    assert "none (no thresholds)" in page and '<td class="pass">pass</td>' not in page
    assert project.get_run(run_id(out))["tags"]["verdict"] == "none"
    (repo / "evals/zero.yaml").write_text(
        (repo / "evals/zero.yaml").read_text() + "thresholds: {pass_rate: 0.5}\n"
    )
    failed = tether(*args, expect=1).output
    assert "threshold pass_rate: 0 vs 0.5 NOT MET" in failed
    assert project.get_run(run_id(failed))["tags"]["verdict"] == "fail"


def test_the_versions_model_is_sent_and_the_providers_is_the_default(
    repo: Path, tether: Tether
) -> None:
    write_files(
        repo,
        {
            "prompts/r/v1.0.0/prompt.yaml": META,  # model: gpt-4o-mini
            "prompts/r/v1.0.0/template.jinja2": "{{ review }}",
            "prompts/plain/v1.0.0/prompt.yaml": "variables:\n  review: {type: string}\n",
            "prompts/plain/v1.0.0/template.jinja2": "{{ review }}",
            "evals/c.yaml": "cases:\n  - {id: a, vars: {review: good}}\n",
        },
    )
    with serve(latency_s=0.0) as server:
        with (repo / "tether.toml").open("a") as f:
            f.write(
                f'\n[prompts.providers.local]\ntype = "openai"\nbase_url = "{server.base_url}"\n'
                'model = "provider-model"\n'
            )
        for name in ("r", "plain"):
            tether("prompt", "eval", name, "--suite", "evals/c.yaml", "-p", "local", "--no-record")
        sent = [s.body["model"] for s in server.seen]
    assert sent == ["gpt-4o-mini", "provider-model"]


def test_prompt_new_names_no_model_so_the_providers_is_used(repo: Path, tether: Tether) -> None:
    tether("prompt", "new", "fresh")
    meta = (repo / "prompts/fresh/v1.0.0/prompt.yaml").read_text()
    assert "\nmodel:" not in meta and "# model:" in meta


def test_bump_from_a_version_makes_its_hotfix(repo: Path, tether: Tether) -> None:
    for v in ("v1.0.0", "v1.1.0"):
        write_files(
            repo,
            {
                f"prompts/r/{v}/prompt.yaml": META,
                f"prompts/r/{v}/template.jinja2": f"{v} {{{{ review }}}}",
            },
        )
    out = tether("prompt", "bump", "r", "--from", "v1.0.0", "--patch").output
    assert "r@v1.0.1" in out
    assert (repo / "prompts/r/v1.0.1/template.jinja2").read_text() == "v1.0.0 {{ review }}"
    clash = tether("prompt", "bump", "r", "--from", "v1.0.0", expect=4).output
    assert "r@v1.1.0 exists already" in clash and "--patch" in clash


def test_a_chat_message_without_content_is_named(repo: Path, tether: Tether) -> None:
    write_files(
        repo,
        {
            "prompts/c/v1.0.0/prompt.yaml": "variables: {}\n",
            "prompts/c/v1.0.0/messages.yaml": "- role: system\n- role: user\n  content: hi\n",
        },
    )
    out = tether("prompt", "render", "c", expect=4).output
    assert "message 1 in messages.yaml needs a `content` text" in out


def test_a_version_without_its_v_is_pointed_at_the_right_spelling(
    repo: Path, tether: Tether
) -> None:
    write_files(
        repo,
        {"prompts/r/v1.0.0/prompt.yaml": META, "prompts/r/v1.0.0/template.jinja2": "x"},
    )
    out = tether("prompt", "show", "r@1.0.0", expect=4).output
    assert "r@v1.0.0" in out and "is not a version or a label" in out


def test_audit_log_of_an_unknown_model_says_so(repo: Path, tether: Tether) -> None:
    out = tether("audit", "log", "--model", "nosuch", expect=2).output
    assert "no model 'nosuch'" in out


def test_a_suite_is_checked_whole_before_the_first_call(repo: Path, tether: Tether) -> None:
    suite = """assert:
  - similar: {reference: hello, min: high}
cases:
  - {id: a, vars: {review: x}, assert: [{judge: {rubric: polite?}}]}
  - {id: b, vars: {reviews: x}, assert: [{regex: "(unclosed"}]}
  - {id: c, vars: {review: x}, assert: [{contains: {any: []}}, {json-schema: {type: 12}}]}
"""
    write_files(
        repo,
        {
            "prompts/r/v1.0.0/prompt.yaml": META,
            "prompts/r/v1.0.0/template.jinja2": "{{ review }}",
            "evals/bad.yaml": suite,
        },
    )
    with serve(latency_s=0.0) as server:
        with (repo / "tether.toml").open("a") as f:
            f.write(
                f'\n[prompts.providers.local]\ntype = "openai"\nbase_url = "{server.base_url}"\n'
            )
        out = tether("prompt", "eval", "r", "--suite", "evals/bad.yaml", "-p", "local", expect=4)
        assert server.requests == 0  # nothing was paid for
    text = out.output
    assert "before any call was made" in text
    assert "evals/bad.yaml assert similar: `min` must be a number" in text
    assert "similar: needs an embeddings endpoint" in text
    assert "case a assert judge: needs a judge" in text
    assert "case b vars: r@v1.0.0 has no variable reviews" in text
    assert "case b assert regex: not a regular expression" in text
    assert "case c assert contains: takes a non-empty list of texts" in text
    assert "case c assert json-schema: not a valid JSON schema" in text


def test_openai_provider_ids_work_without_configuration(
    repo: Path, tether: Tether, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_files(
        repo,
        {
            "prompts/r/v1.0.0/prompt.yaml": META.replace("gpt-4o-mini", "pinned-model"),
            "prompts/r/v1.0.0/template.jinja2": "{{ review }}",
            "evals/c.yaml": "cases:\n  - {id: a, vars: {review: good}}\n",
        },
    )
    with serve(latency_s=0.0) as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test-convention")
        out = tether(
            "prompt", "eval", "r", "--suite", "evals/c.yaml", "-p", "openai:gpt-4o-mini"
        ).output
        (seen,) = server.seen
    assert "r@v1.0.0 on openai:gpt-4o-mini (gpt-4o-mini)" in out
    assert seen.body["model"] == "gpt-4o-mini"  # named in the id: asked for explicitly
    assert seen.authorization == "Bearer sk-test-convention"


@pytest.mark.parametrize(
    ("spec", "why"),
    [
        ("{regex: null}", "takes a regular expression"),
        ("{equals: null}", "compares with a value"),
        ("{contains: {any: [a], all: [b]}}", "takes one of `any:` or `all:`"),
        ("{contains-all: {any: [a]}}", "the one its name says"),
        ("{judge: {rubric: polite?, min: 5}}", "must be between 0 and 1"),
        ("{latency: {max_s: -1}}", "must be above 0"),
        ("{is-json: banana}", "takes true"),
    ],
)
def test_assertions_that_cannot_mean_what_they_say_are_refused_first(
    repo: Path, tether: Tether, spec: str, why: str
) -> None:
    write_files(
        repo,
        {
            "prompts/r/v1.0.0/prompt.yaml": META,
            "prompts/r/v1.0.0/template.jinja2": "{{ review }}",
            "evals/s.yaml": f"scripted:\n  - default: x\ncases:\n"
            f"  - {{id: a, vars: {{review: x}}, assert: [{spec}]}}\n",
        },
    )
    with (repo / "tether.toml").open("a") as f:
        f.write('\n[prompts]\njudge = "scripted"\n')
    out = tether("prompt", "eval", "r", "--suite", "evals/s.yaml", "-p", "scripted", expect=4)
    assert why in out.output


@pytest.mark.parametrize("thresholds", ["{pass_rate: -1}", "{pass_rate: 2}", "{errors: -1}", "[]"])
def test_thresholds_that_cannot_be_met_or_missed_are_refused(
    repo: Path, tether: Tether, thresholds: str
) -> None:
    write_files(
        repo,
        {
            "prompts/r/v1.0.0/prompt.yaml": META,
            "prompts/r/v1.0.0/template.jinja2": "{{ review }}",
            "evals/s.yaml": f"thresholds: {thresholds}\nscripted:\n  - default: x\ncases:\n"
            "  - {id: a, vars: {review: x}}\n",
        },
    )
    out = tether("prompt", "eval", "r", "--suite", "evals/s.yaml", "-p", "scripted", expect=4)
    assert "threshold" in out.output
