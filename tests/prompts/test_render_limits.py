"""Rendering a prompt is bounded: a template from a pull request cannot build an answer of any
size, run for ever, read other files or reach Python internals. Each fails fast with a
PromptError naming the prompt and its file."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import Tether, write_files
from tether.prompts import sandbox
from tether.prompts.templates import PromptError, load

META = "variables:\n  review: {type: string, default: fine}\n"


def write(repo: Path, template: str, version: str = "v1.0.0") -> None:
    base = f"prompts/hostile/{version}"
    write_files(repo, {f"{base}/prompt.yaml": META, f"{base}/template.jinja2": template})


@pytest.mark.parametrize(
    ("template", "says"),
    [
        ('{{ "x" * 10**9 }}', "`*` would hold 1,000,000,000 characters"),
        ("{{ 7 ** 1000000000 }}", "`**` would hold"),
        ('{{ "x"|center(1000000000) }}', "center filter"),
        ('{{ "x".ljust(10**9) }}', "str.ljust"),
        ('{{ "{:>999999999}".format(1) }}', "format field"),
        ('{{ "%999999999s" % review }}', "%-format field"),
        ('{{ range(100000)|map("string")|join("x" * 100000) }}', "join filter"),
        (
            '{% set ns = namespace(s="x") %}{% for i in range(64) %}'
            "{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s }}",
            "concatenation",
        ),
        (
            '{% set ns = namespace(s="ab") %}{% for i in range(64) %}'
            '{% set ns.s = ns.s.replace("", "--") %}{% endfor %}',
            "str.replace",
        ),
        (
            "{% for i in range(99999) %}{% for j in range(99999) %}{{ review }}{% endfor %}"
            "{% endfor %}",
            "the rendered prompt is over the limit",
        ),
    ],
)
def test_rendering_cannot_build_a_prompt_of_any_size(repo: Path, template: str, says: str) -> None:
    write(repo, template)
    with pytest.raises(PromptError, match=r"hostile@v1\.0\.0: template\.jinja2") as info:
        load(repo, "hostile").render()
    assert says in str(info.value) and "prompts.render_max_chars" in str(info.value)


def test_a_range_of_a_billion_fails_fast_through_the_cli(repo: Path, tether: Tether) -> None:
    write(repo, "{% for i in range(10**9) %}{{ i }}{% endfor %}")
    out = tether("prompt", "render", "hostile", expect=4).output
    assert "hostile@v1.0.0: template.jinja2 line 1" in out and "Range too big" in out
    write(repo, '{{ "x" * 10**9 }}', "v1.0.1")
    out = tether("prompt", "render", "hostile@v1.0.1", expect=4).output
    assert "over the limit of 1,000,000" in out


def test_loops_that_build_nothing_still_stop_at_the_time_limit(repo: Path) -> None:
    write(repo, "{% for i in range(99999) %}{% for j in range(99999) %}{% endfor %}{% endfor %}")
    prompt = load(repo, "hostile")
    with (
        sandbox.limits(sandbox.Limits(timeout_s=0.05)),
        pytest.raises(PromptError, match=r"rendering took longer than 0\.05 s"),
    ):
        prompt.render()


def test_a_template_cannot_reach_python_internals_or_other_files(repo: Path) -> None:
    for i, template in enumerate(
        [
            "{{ ''.__class__.__mro__[1].__subclasses__() }}",
            "{{ cycler.__init__.__globals__.os.system('id') }}",
            "{{ review.format_map.__self__.__class__ }}",
        ]
    ):
        write(repo, template, f"v1.0.{i}")
        with pytest.raises(PromptError, match="blocked by the sandbox"):
            load(repo, "hostile", f"v1.0.{i}").render()
    write(repo, '{% include "/etc/passwd" %}', "v2.0.0")
    with pytest.raises(PromptError, match="cannot include, import or extend other files"):
        load(repo, "hostile", "v2.0.0")
    write(repo, "{% macro m() %}{{ m() }}{% endmacro %}{{ m() }}", "v3.0.0")
    with pytest.raises(PromptError, match="recurses too deeply"):
        load(repo, "hostile", "v3.0.0").render()
    write(repo, "{{ 1 / 0 }}", "v4.0.0")
    with pytest.raises(PromptError, match="line 1: ZeroDivisionError"):
        load(repo, "hostile", "v4.0.0").render()


def test_ordinary_templates_render_as_before(repo: Path) -> None:
    write(
        repo,
        '{% for c in review %}{{ loop.index }}{% endfor %} {{ "%05.1f"|format(3.14159) }} '
        '{{ "{:,}".format(12345678) }} {{ [1, 2]|join(",") }} {{ "a" ~ "b" }} '
        '{{ {"k": 1}|tojson }} {{ review|center(8) }} {{ 2 ** 10 }}',
    )
    assert load(repo, "hostile").render(review="good") == (
        '1234 003.1 12,345,678 1,2 ab {"k": 1}   good   1024'
    )


def test_the_size_limit_is_configured_and_an_eval_counts_it_as_an_error(
    repo: Path, tether: Tether
) -> None:
    write(repo, "{{ review * 3 }}")
    write_files(
        repo,
        {
            "evals/hostile.yaml": "scripted: [{default: ok}]\nassert: [{equals: ok}]\n"
            "cases:\n  - {id: short, vars: {review: abc}}\n  - {id: long, vars: {review: "
            + "y" * 400
            + "}}\n"
        },
    )
    tether("config", "set", "prompts.render_max_chars", "1000")
    out = tether(
        "prompt", "eval", "hostile", "--suite", "evals/hostile.yaml", "-p", "scripted", expect=1
    ).output
    assert "1 error" in out and "over the limit of 1,000" in out
