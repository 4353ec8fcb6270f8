"""`tether prompt eval` end to end: a suite against the scripted stand-in and against an
OpenAI-compatible server over HTTP, recorded as a run, cached, with thresholds and a report."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import Tether, write_files
from tether.api import Project
from tether.prompts.fakeserver import Behaviour, Fault, serve

META = """variables:
  review: {type: string}
model: fake-model
params: {temperature: 0}
output: {format: label, labels: [positive, negative]}
"""
SUITE = """description: sentiment
assert:
  - label-match: true
thresholds: {pass_rate: 0.6, errors: 0}
scripted:
  - when: {contains: bold}
    answer: "negative <i>surely</i>"
  - when: {contains: [great, good]}
    answer: positive
  - default: negative
cases:
  - {id: c1, vars: {review: "A great film"}, expected: positive}
  - {id: c2, vars: {review: "Dull and long"}, expected: negative}
  - {id: c3, vars: {review: "Not good at all"}, expected: negative}
  - file: more.csv
"""
CSV = "id,review,expected\nc4,Good fun,positive\nc5,<b>bold</b> but bad,negative\n"


def setup(repo: Path) -> None:
    write_files(
        repo,
        {
            "prompts/sentiment/v1.0.0/prompt.yaml": META,
            "prompts/sentiment/v1.0.0/template.jinja2": "Review: {{ review }}\nLabel:",
            "evals/sentiment.yaml": SUITE,
            "evals/more.csv": CSV,
        },
    )


def test_eval_with_the_scripted_stand_in_is_recorded_as_a_run(
    project: Project, repo: Path, tether: Tether
) -> None:
    setup(repo)
    out = tether(
        "prompt", "eval", "sentiment@v1.0.0", "--suite", "evals/sentiment.yaml",
        "-p", "scripted", "--html", "report.html",
    ).output  # fmt: skip
    # c3 "Not good at all" fools the keyword rule: 4 of 5 pass
    assert "pass rate 80.0%" in out and "threshold pass_rate: 0.8 vs 0.6 ok" in out
    assert "failed c3#0: label 'positive', expected 'negative'" in out
    run_id = out.split("recorded as run ")[1].split()[0]
    run = project.get_run(run_id)
    assert run["tags"]["kind"] == "prompt-eval" and run["tags"]["prompt.version"] == "v1.0.0"
    assert run["params"]["prompt.content_id"].startswith("blake3:")
    assert run["metrics"]["pass_rate"]["last"] == 0.8
    assert (
        0.3
        < run["metrics"]["pass_rate_low"]["last"]
        < 0.8
        < run["metrics"]["pass_rate_high"]["last"]
    )
    rows = project.ws.store.read_bytes(run["artifacts"]["results.jsonl"]).decode().splitlines()
    assert [json.loads(r)["case"] for r in rows] == ["c1", "c2", "c3", "c4", "c5"]
    page = (repo / "report.html").read_text()
    assert "negative &lt;i&gt;surely&lt;/i&gt;" in page  # a model's answer is escaped
    assert "<i>surely" not in page and "sentiment@v1.0.0" in page


def test_eval_over_http_caches_answers_and_keeps_errors_out_of_passes(
    project: Project, repo: Path, tether: Tether
) -> None:
    setup(repo)
    faults = (Fault("500", when="Dull"),)  # one case always fails on the server
    with serve(latency_s=0.01, behaviour=Behaviour(faults=faults)) as server:
        (repo / "tether.toml").write_text(
            (repo / "tether.toml").read_text()
            + f'\n[prompts.providers.local]\ntype = "openai"\nbase_url = "{server.base_url}"\n'
            'model = "fake-model"\nmax_retries = 1\n'
            '\n[prompts.prices."fake-model"]\ninput_per_million = 1.0\noutput_per_million = 2.0\n'
        )
        args = ("prompt", "eval", "sentiment", "--suite", "evals/sentiment.yaml", "-p", "local")
        first = tether(*args, "--repeat", "2", expect=1).output  # errors: 0 is not met
        asked = server.requests
        assert "2 errors" in first and "threshold errors: 2 vs 0 NOT MET" in first
        assert "failed c2#0: " in first and "500" in first
        assert "cost " in first
        second = tether(*args, "--repeat", "2", expect=1).output
        assert (
            server.requests - asked == 2 * 2
        )  # only the failed case is asked again (errors are not cached)
        assert "8 of 10 answers from the cache" in second


def test_similarity_and_judge_assertions_call_their_endpoints(
    project: Project, repo: Path, tether: Tether
) -> None:
    def answer(text: str) -> str:
        if text.startswith("You grade an answer"):  # the judge: polite answers score high
            return '{"score": 9}' if "please" in text.split("Answer:")[-1] else "Score: 2/10"
        return "positive, please" if "great" in text.lower() else "negative"

    suite = """cases:
  - id: p
    vars: {review: "A great film"}
    assert:
      - similar: {reference: "positive please", min: 0.9}
      - judge: {rubric: "Is the answer polite?", min: 0.5}
  - id: n
    vars: {review: "Dull"}
    assert:
      - similar: {reference: "positive please", min: 0.9}
      - judge: "Is the answer polite?"
"""
    setup(repo)
    (repo / "evals/judged.yaml").write_text(suite)
    with serve(latency_s=0.0, behaviour=Behaviour(answer=answer)) as server:
        (repo / "tether.toml").write_text(
            (repo / "tether.toml").read_text()
            + f'\n[prompts]\njudge = "local"\nembeddings = "local"\n'
            f'\n[prompts.providers.local]\ntype = "openai"\nbase_url = "{server.base_url}"\n'
            'model = "fake-model"\n'
        )
        out = tether(
            "prompt",
            "eval",
            "sentiment",
            "--suite",
            "evals/judged.yaml",
            "-p",
            "local",
            "--no-record",
        ).output  # fmt: skip (no thresholds: a case failing is reported, the eval is not failed)
    assert "pass rate 50.0%" in out
    assert "failed n#0: similarity 0.000 (min 0.9); judge score 0.20 (min 0.5)" in out
