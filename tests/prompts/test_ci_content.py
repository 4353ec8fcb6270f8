"""`tether prompt ci` runs content a pull request brings (suites, prompts, tether.toml) in a job
that holds an API key. That content cannot read files outside the repository, and cannot send
the key anywhere but where the trusted config (tether.toml as merged, the job's own
.tether/config.toml and environment) says. The attacker's address is a fake provider server: it
must receive nothing."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Tether, git, write_files
from tether.prompts.fakeserver import FakeServer, serve

KEY_ENV = "TETHER_TEST_PROVIDER_KEY"
KEY = "sk-test-7f3a9c0e5b1d2468ace0"
SECRET = "TOPSECRET-do-not-leak"
META = (
    "variables:\n  review: {type: string}\noutput: {format: label, labels: [positive, negative]}\n"
)
SUITE = """providers: [openai]
assert: [{label-match: true}]
cases:
  - {id: c1, vars: {review: "A great film"}, expected: positive}
  - {id: c2, vars: {review: "Dull"}, expected: negative}
"""


def provider_toml(url: str, name: str = "openai") -> str:
    return (
        f'\n[prompts.providers.{name}]\ntype = "openai"\nbase_url = "{url}"\n'
        f'model = "fake-model"\napi_key_env = "{KEY_ENV}"\nmax_retries = 0\n'
    )


@pytest.fixture
def servers() -> Iterator[tuple[FakeServer, FakeServer]]:
    """The team's provider, and the address a hostile pull request chooses."""
    with serve(latency_s=0.0) as trusted, serve(latency_s=0.0) as attacker:
        yield trusted, attacker


@pytest.fixture
def merged(
    repo: Path,
    tether: Tether,
    servers: tuple[FakeServer, FakeServer],
    monkeypatch: pytest.MonkeyPatch,
) -> Path:
    """main: sentiment@v1.0.0 in production, its suite, the team's provider in tether.toml; then
    a feature branch for the pull request. The job holds the key."""
    trusted, _ = servers
    write_files(
        repo,
        {
            "prompts/sentiment/v1.0.0/prompt.yaml": META,
            "prompts/sentiment/v1.0.0/template.jinja2": "Review: {{ review }}",
            "evals/sentiment.yaml": SUITE,
        },
    )
    with (repo / "tether.toml").open("a") as f:
        f.write(provider_toml(trusted.base_url))
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "feat(prompts): sentiment")
    tether("prompt", "register", "sentiment@v1.0.0")
    tether("prompt", "promote", "sentiment@v1.0.0", "--label", "production")
    git(repo, "checkout", "-q", "-b", "feature")
    monkeypatch.setenv(KEY_ENV, KEY)
    return repo


def pull_request(
    repo: Path, files: dict[str, str], template: str = "Film review: {{ review }}"
) -> None:
    write_files(
        repo,
        {
            "prompts/sentiment/v1.1.0/prompt.yaml": META,
            "prompts/sentiment/v1.1.0/template.jinja2": template,
            **files,
        },
    )
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "feat(prompts): sentiment v1.1.0")


def ci(tether: Tether, expect: int) -> str:
    return str(tether("prompt", "ci", "--base", "main", expect=expect).output)


def test_a_pull_request_that_leaves_the_endpoint_alone_is_evaluated_with_the_key(
    merged: Path, tether: Tether, servers: tuple[FakeServer, FakeServer]
) -> None:
    trusted, attacker = servers
    pull_request(merged, {})
    assert "sentiment@v1.1.0 vs production sentiment@v1.0.0" in ci(tether, expect=1)
    assert trusted.received and {auth for _, auth in trusted.received} == {f"Bearer {KEY}"}
    assert attacker.received == []


def test_a_pull_request_cannot_send_the_api_key_to_an_address_it_chose(
    merged: Path, tether: Tether, servers: tuple[FakeServer, FakeServer]
) -> None:
    trusted, attacker = servers
    toml = (merged / "tether.toml").read_text().replace(trusted.base_url, attacker.base_url)
    pull_request(merged, {"tether.toml": toml})
    out = ci(tether, expect=1)
    assert f"provider openai would send ${KEY_ENV} to {attacker.base_url}" in out
    assert "the key was not sent" in out and "tether.toml at main" in out
    assert attacker.received == [] and trusted.received == []
    assert KEY not in out


def test_a_pull_request_cannot_add_a_provider_that_carries_the_key_elsewhere(
    merged: Path, tether: Tether, servers: tuple[FakeServer, FakeServer]
) -> None:
    _, attacker = servers
    toml = (
        (merged / "tether.toml")
        .read_text()
        .replace(
            "[prompts.providers.openai]",
            '[prompts]\nembeddings = "evil"\n\n[prompts.providers.openai]',
        )
    )
    toml += provider_toml(attacker.base_url, "evil")
    suite = SUITE.replace("[{label-match: true}]", "[{similar: {reference: positive}}]")
    pull_request(merged, {"tether.toml": toml, "evals/sentiment.yaml": suite})
    out = ci(tether, expect=1)
    assert f"provider evil would send ${KEY_ENV} to {attacker.base_url}" in out
    assert attacker.received == []


def test_the_jobs_own_config_may_point_the_provider_elsewhere(
    merged: Path, tether: Tether, servers: tuple[FakeServer, FakeServer]
) -> None:
    trusted, other = servers
    (merged / ".tether" / "config.toml").write_text(provider_toml(other.base_url))
    pull_request(merged, {})
    ci(tether, expect=1)
    assert other.received and {auth for _, auth in other.received} == {f"Bearer {KEY}"}
    assert trusted.received == []


def test_a_suite_or_prompt_yaml_cannot_set_where_a_provider_sends(
    merged: Path, tether: Tether, servers: tuple[FakeServer, FakeServer]
) -> None:
    _, attacker = servers
    suite = SUITE.replace(
        "providers: [openai]", f"providers: [{{name: openai, base_url: '{attacker.base_url}'}}]"
    )
    pull_request(merged, {"evals/sentiment.yaml": suite})
    assert "lists provider names" in ci(tether, expect=1)
    suite = SUITE + f"base_url: {attacker.base_url}\n"
    pull_request(merged, {"evals/sentiment.yaml": suite})
    assert "unknown key base_url" in ci(tether, expect=1)
    meta = META + f"params: {{api_base: '{attacker.base_url}', temperature: 0}}\n"
    pull_request(
        merged, {"evals/sentiment.yaml": SUITE, "prompts/sentiment/v1.1.0/prompt.yaml": meta}
    )
    assert "`params` may not set api_base" in ci(tether, expect=1)
    assert attacker.received == []


@pytest.mark.parametrize("how", ["dotdot", "absolute", "url", "symlink", "dot-tether"])
def test_a_suite_in_ci_cannot_read_files_outside_the_repository(
    merged: Path, tether: Tether, servers: tuple[FakeServer, FakeServer], how: str
) -> None:
    trusted, _ = servers
    secret = merged.parent / "secret.csv"
    secret.write_text(f"id,review,expected\nleak,{SECRET},positive\n")
    (merged / ".tether" / "local.csv").write_text(f"id,review,expected\nleak,{SECRET},positive\n")
    name = {
        "dotdot": "../../secret.csv",
        "absolute": str(secret),
        "url": f"file://{secret}",
        "symlink": "cases.csv",
        "dot-tether": "../.tether/local.csv",
    }[how]
    if how == "symlink":
        os.symlink(secret, merged / "evals" / "cases.csv")  # committed as a link by the PR
    pull_request(merged, {"evals/sentiment.yaml": SUITE + f"  - file: '{name}'\n"})
    out = ci(tether, expect=1)
    assert f"suite {merged / 'evals' / 'sentiment.yaml'} case 3" in out
    assert name in out and SECRET not in out
    assert {
        "dotdot": "outside the repository",
        "absolute": "is an absolute path",
        "url": "is a URL",
        "symlink": "(through a symlink), outside the repository",
        "dot-tether": "inside .tether",
    }[how] in out
    assert trusted.received == []


def test_a_prompt_or_suite_linked_to_a_file_outside_the_repository_is_refused(
    merged: Path, tether: Tether, servers: tuple[FakeServer, FakeServer]
) -> None:
    trusted, _ = servers
    secret = merged.parent / "secret.txt"
    secret.write_text(SECRET)
    pull_request(merged, {}, template="placeholder")
    template = merged / "prompts/sentiment/v1.1.0/template.jinja2"
    template.unlink()
    os.symlink(secret, template)
    git(merged, "add", "-A")
    git(merged, "commit", "-qm", "a prompt that is a link")
    out = ci(tether, expect=1)
    assert "sentiment@v1.1.0: template.jinja2 is" in out and "outside the repository" in out
    assert SECRET not in out and trusted.received == []

    template.unlink()
    template.write_text("Film review: {{ review }}")
    suite = merged / "evals" / "sentiment.yaml"
    outside = merged.parent / "suite.yaml"
    outside.write_text(SUITE)
    suite.unlink()
    os.symlink(outside, suite)
    git(merged, "add", "-A")
    git(merged, "commit", "-qm", "a suite that is a link")
    out = ci(tether, expect=1)
    assert f"suite {suite} is {outside} (through a symlink), outside the repository" in out


def test_a_python_assertion_runs_only_the_repositorys_own_unchanged_code(
    merged: Path, tether: Tether, servers: tuple[FakeServer, FakeServer]
) -> None:
    trusted, _ = servers
    suite = SUITE.replace("[{label-match: true}]", "[{python: 'builtins:exec'}]")
    pull_request(merged, {"evals/sentiment.yaml": suite})
    assert "builtins is not a module of this repository" in ci(tether, expect=1)
    checks = "import os\n\ndef score(answer, case):\n    return os.environ.get('X') is None\n"
    suite = SUITE.replace("[{label-match: true}]", "[{python: 'checks:score'}]")
    pull_request(merged, {"evals/sentiment.yaml": suite, "checks.py": checks})
    out = ci(tether, expect=1)
    assert "changes Python files (checks.py)" in out and "secrets" in out
    assert trusted.received == []
