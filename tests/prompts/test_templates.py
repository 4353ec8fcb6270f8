"""Prompt templates: versions on disk, a sandboxed renderer, diffs, lint and immutable
registration, through the CLI as a user types it."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import Tether, git, write_files
from tether.prompts.templates import PromptError, load

META = """description: Classify a movie review
variables:
  review: {type: string, required: true}
  tone: {type: string, default: neutral}
  shots: {type: integer, default: 0}
model: gpt-4o-mini
params: {temperature: 0}
output: {format: label, labels: [positive, negative]}
"""
TEMPLATE = "Tone: {{ tone }}. Shots: {{ shots }}.\nReview: {{ review }}\nAnswer:"


def write_prompt(repo: Path, version: str = "v1.0.0", template: str = TEMPLATE) -> None:
    base = f"prompts/sentiment/{version}"
    write_files(repo, {f"{base}/prompt.yaml": META, f"{base}/template.jinja2": template})


def test_new_bump_list_render_and_diff(repo: Path, tether: Tether) -> None:
    assert "prompts/sentiment/v1.0.0" in tether("prompt", "new", "sentiment").output
    write_prompt(repo)  # the user edits the scaffold
    assert "v1.1.0" in tether("prompt", "bump", "sentiment").output
    assert "v2.0.0" in tether("prompt", "bump", "sentiment", "--major").output
    assert tether("prompt", "list").output.split() == ["sentiment", "v1.0.0", "v1.1.0", "v2.0.0"]

    out = tether(
        "prompt", "render", "sentiment@v1.1.0", "--var", "review=Great fun", "--var", "shots=3"
    )
    assert out.output == "Tone: neutral. Shots: 3.\nReview: Great fun\nAnswer:"
    (repo / "vars.yaml").write_text("review: Dull\ntone: curt\n")
    out = tether("prompt", "render", "sentiment@v1.0.0", "--vars-file", "vars.yaml")
    assert out.output.startswith("Tone: curt. Shots: 0.")

    (repo / "prompts/sentiment/v2.0.0/template.jinja2").write_text("Review: {{ review }}\nLabel:")
    meta = META.replace("  shots: {type: integer, default: 0}\n", "")
    (repo / "prompts/sentiment/v2.0.0/prompt.yaml").write_text(meta)
    text = tether("prompt", "diff", "sentiment@v1.0.0", "sentiment@v2.0.0").output
    assert "- variable shots (integer, default 0)" in text
    assert (
        "\n-Tone: {{ tone }}. Shots: {{ shots }}.\n Review: {{ review }}\n-Answer:\n+Label:" in text
    )


def test_render_errors_name_the_variable_the_line_and_the_sandbox(
    repo: Path, tether: Tether
) -> None:
    write_prompt(repo)
    msg = tether("prompt", "render", "sentiment@v1.0.0", expect=4).output
    assert "needs the variable 'review'" in msg
    msg = tether(
        "prompt", "render", "sentiment", "--var", "review=x", "--var", "shots=two", expect=4
    )
    assert "variable shots" in msg.output and "'two' is not an integer" in msg.output
    write_prompt(repo, "v1.0.1", "Line one\n{{ review }}\n{{ missing_var }}\n")
    msg = tether("prompt", "render", "sentiment@v1.0.1", "--var", "review=x", expect=4).output
    assert "line 3" in msg and "'missing_var' is undefined" in msg
    write_prompt(repo, "v1.0.2", "ok\n{% if review %}\nno end\n")
    msg = tether("prompt", "render", "sentiment@v1.0.2", "--var", "review=x", expect=4).output
    assert "template.jinja2 line" in msg and "endif" in msg
    evil = "{{ review.__class__.__mro__[1].__subclasses__() }}"
    write_prompt(repo, "v1.0.3", evil)
    msg = tether("prompt", "render", "sentiment@v1.0.3", "--var", "review=x", expect=4).output
    assert "blocked by the sandbox: access to attribute '__class__'" in msg
    write_prompt(repo, "v1.0.4", "{% set seen = [] %}{{ seen.append(review) }}")  # no mutation
    msg = tether("prompt", "render", "sentiment@v1.0.4", "--var", "review=x", expect=4).output
    assert "blocked by the sandbox: access to attribute 'append'" in msg


def test_chat_prompts_render_messages(repo: Path) -> None:
    base = "prompts/chat/v1.0.0"
    write_files(
        repo,
        {
            f"{base}/prompt.yaml": "variables:\n  q: {type: string}\n",
            f"{base}/messages.yaml": "- role: system\n  content: Be brief.\n"
            "- role: user\n  content: 'Q: {{ q }}'\n",
        },
    )
    chat = load(repo, "chat")
    assert chat.messages(q="why?") == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Q: why?"},
    ]
    with pytest.raises(PromptError, match="has no variable nope"):
        chat.messages(q="x", nope=1)


def test_lint_finds_undeclared_unused_and_suite_gaps(repo: Path, tether: Tether) -> None:
    write_prompt(repo, template="{{ review }} {{ extra }}")
    (repo / "suite.yaml").write_text("cases:\n  - vars: {review: a}\n  - vars: {tone: b}\n")
    out = tether("prompt", "lint", "--suite", "suite.yaml", expect=1).output
    assert "uses 'extra', which prompt.yaml does not declare" in out
    assert "variable 'shots' is declared but no template uses it" in out
    assert "suite case 2 does not give review" in out
    write_prompt(repo, "v1.1.0")
    (repo / "prompts/sentiment/v1.1.0/prompt.yaml").write_text("output: {format: yaml}\n")
    assert "output.format` must be one of" in tether("prompt", "lint", expect=1).output


def test_a_registered_version_is_immutable(repo: Path, tether: Tether) -> None:
    write_prompt(repo)
    assert (
        "commit prompts/sentiment/v1.0.0 before"
        in tether("prompt", "register", "sentiment@v1.0.0", expect=4).output
    )
    git(repo, "add", "prompts")
    git(repo, "commit", "-qm", "feat(prompts): sentiment v1.0.0")
    out = tether("prompt", "register", "sentiment@v1.0.0").output
    content = load(repo, "sentiment").content_id
    assert content in out
    assert content in git(repo, "tag", "-n9", "sentiment@v1.0.0")
    assert "v1.0.0*" in tether("prompt", "list").output

    (repo / "prompts/sentiment/v1.0.0/template.jinja2").write_text(TEMPLATE + " (edited)")
    msg = tether("prompt", "render", "sentiment@v1.0.0", "--var", "review=x", expect=4).output
    assert "is registered" in msg and "tether prompt bump sentiment" in msg
    assert "CHANGED since" in tether("prompt", "show", "sentiment@v1.0.0").output
    assert "is registered" in tether("prompt", "register", "sentiment@v1.0.0", expect=4).output
    git(repo, "checkout", "--", "prompts")  # restored: usable again
    assert "Review: x" in tether("prompt", "render", "sentiment@v1.0.0", "--var", "review=x").output
