"""Labels: promote, rollback and history through git tags and the hash-chained log; a tag
changed by hand is detected; two people cannot both win the same assignment."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import Tether, git, write_files
from tether.api import Project

META = (
    "variables:\n  review: {type: string}\noutput: {format: label, labels: [positive, negative]}\n"
)
SUITE = """assert: [{label-match: true}]
thresholds: {pass_rate: 0.5}
scripted:
  - when: {contains: great}
    answer: positive
  - default: negative
cases:
  - {id: a, vars: {review: great}, expected: positive}
  - {id: b, vars: {review: dull}, expected: negative}
"""


def add_version(repo: Path, version: str, template: str) -> None:
    base = f"prompts/sentiment/{version}"
    write_files(repo, {f"{base}/prompt.yaml": META, f"{base}/template.jinja2": template})
    git(repo, "add", "prompts")
    git(repo, "commit", "-qm", f"feat(prompts): sentiment {version}")


@pytest.fixture
def versions(repo: Path, tether: Tether) -> Path:
    write_files(repo, {"evals/s.yaml": SUITE})
    for version, template in (("v1.0.0", "R: {{ review }}"), ("v1.1.0", "Review: {{ review }}")):
        add_version(repo, version, template)
        tether("prompt", "register", f"sentiment@{version}")
    return repo


def test_promote_rollback_and_history(versions: Path, tether: Tether, project: Project) -> None:
    assert (
        "sentiment#production#1 -> v1.0.0"
        in tether("prompt", "promote", "sentiment@v1.0.0", "--label", "production").output
    )
    assert (
        "sentiment#production#2 -> v1.1.0"
        in tether("prompt", "promote", "sentiment@v1.1.0", "--label", "production").output
    )
    assert (
        "Review: x"
        in tether("prompt", "render", "sentiment@production", "--var", "review=x").output
    )
    assert (
        "sentiment#production#3 -> v1.0.0 (rolled back)"
        in tether("prompt", "rollback", "sentiment", "--label", "production").output
    )
    assert "R: x" in tether("prompt", "render", "sentiment@production", "--var", "review=x").output
    # a second rollback does not swap back to the version just rolled away from
    assert (
        "nothing to roll back to"
        in tether("prompt", "rollback", "sentiment", "--label", "production", expect=4).output
    )
    history = tether("prompt", "history", "sentiment").output
    assert history.count("sentiment#production#") == 3 and "rollback by" in history
    assert git(versions, "rev-parse", "sentiment#production#3^{}") == git(
        versions, "rev-parse", "sentiment@v1.0.0^{}"
    )
    assert (
        "no label 'staging'"
        in tether("prompt", "render", "sentiment@staging", "--var", "review=x", expect=4).output
    )


def test_the_actor_is_who_git_would_commit_as(
    versions: Path, tether: Tether, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GIT_COMMITTER_EMAIL", "ci-bot@example.com")
    tether("prompt", "promote", "sentiment@v1.0.0", "--label", "production")
    assert "promote by ci-bot@example.com" in tether("prompt", "history", "sentiment").output


def test_require_eval_and_unregistered_versions(versions: Path, tether: Tether) -> None:
    git(versions, "add", "evals")
    git(versions, "commit", "-qm", "test(prompts): suite")
    args = ("prompt", "promote", "sentiment@v1.1.0", "--label", "production", "--require-eval")
    args += ("--suite", "evals/s.yaml")
    assert "no passing eval of sentiment@v1.1.0" in tether(*args, expect=4).output
    tether("prompt", "eval", "sentiment@v1.1.0", "--suite", "evals/s.yaml", "-p", "scripted")
    assert "the scripted stand-in is no evidence" in tether(*args, expect=4).output
    add_version(versions, "v1.2.0", "Label it: {{ review }}")
    assert (
        "is not registered"
        in tether("prompt", "promote", "sentiment@v1.2.0", "--label", "production", expect=4).output
    )


def test_a_tag_deleted_moved_or_forged_by_hand_is_reported(versions: Path, tether: Tether) -> None:
    tether("prompt", "promote", "sentiment@v1.0.0", "--label", "production")
    tether("prompt", "promote", "sentiment@v1.1.0", "--label", "staging")
    git(versions, "tag", "-d", "sentiment#production#1")
    out = tether("prompt", "history", "sentiment", expect=1).output
    assert "tag sentiment#production#1 (v1.0.0) is in the event log but was deleted" in out
    git(versions, "tag", "-a", "sentiment#production#1", "-m", "moved", "sentiment@v1.1.0^{}")
    git(versions, "tag", "-a", "sentiment#canary#1", "-m", "forged", "HEAD")
    out = tether("prompt", "history", "sentiment", expect=1).output
    assert "tag sentiment#production#1 was moved or re-made by hand" in out
    assert "tag sentiment#canary#1 has no event in the log" in out
    assert (
        "fix this before assigning labels"
        in tether("prompt", "promote", "sentiment@v1.1.0", "--label", "production", expect=4).output
    )


def test_two_people_cannot_both_win_assignment_n(
    versions: Path, tmp_path: Path, tether: Tether, monkeypatch: pytest.MonkeyPatch
) -> None:
    bare = tmp_path / "origin.git"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(bare))
    git(versions, "remote", "add", "origin", str(bare))
    git(versions, "push", "-q", "origin", "HEAD:refs/heads/main")
    assert (
        "pushed to origin"
        in tether("prompt", "promote", "sentiment@v1.0.0", "--label", "production", "--push").output
    )
    other = tmp_path / "other"
    git(tmp_path, "clone", "-q", str(bare), str(other))
    for key, value in (("user.email", "bo@example.com"), ("user.name", "Bo")):
        git(other, "config", key, value)
    monkeypatch.chdir(other)
    Project.init(other)
    assert "1 new label events" in tether("prompt", "pull").output
    assert (
        "sentiment#production#2 -> v1.1.0"
        in tether("prompt", "promote", "sentiment@v1.1.0", "--label", "production", "--push").output
    )
    monkeypatch.chdir(versions)  # the first user, who has not pulled, assigns #2 too
    tether("prompt", "promote", "sentiment@v1.1.0", "--label", "canary")
    out = tether(
        "prompt", "promote", "sentiment@v1.0.0", "--label", "production", "--push", expect=4
    )
    assert "someone else assigned a label first" in out.output
    assert git(bare, "rev-parse", "sentiment#production#2^{}") == git(
        bare, "rev-parse", "sentiment@v1.1.0^{}"
    )  # the remote kept Bo's assignment; nothing of the refused push landed
    assert "canary" not in git(bare, "tag")


def test_rollback_returns_to_the_version_current_when_this_one_was_promoted(
    versions: Path, tether: Tether
) -> None:
    add_version(versions, "v1.2.0", "Label: {{ review }}")
    tether("prompt", "register", "sentiment@v1.2.0")

    def at() -> str:
        return tether("prompt", "show", "sentiment@production").output

    def promote(v: str) -> None:
        tether("prompt", "promote", f"sentiment@{v}", "--label", "production")

    def rollback() -> str:
        return tether("prompt", "rollback", "sentiment", "--label", "production").output

    promote("v1.0.0")
    promote("v1.1.0")
    assert "-> v1.0.0" in rollback()
    promote("v1.1.0")
    promote("v1.2.0")
    assert "-> v1.1.0" in rollback()  # once rolled away from, v1.1.0 is not excluded forever
    assert "-> v1.0.0" in rollback()
    out = tether("prompt", "rollback", "sentiment", "--label", "production", expect=4).output
    assert "v1.0.0 was the label's first version" in out
    assert "v1.0.0" in at()


def test_two_rollbacks_of_two_promotions_say_what_the_first_was(
    versions: Path, tether: Tether
) -> None:
    tether("prompt", "promote", "sentiment@v1.0.0", "--label", "staging")
    tether("prompt", "promote", "sentiment@v1.1.0", "--label", "staging")
    assert "-> v1.0.0" in tether("prompt", "rollback", "sentiment", "--label", "staging").output
    out = tether("prompt", "rollback", "sentiment", "--label", "staging", expect=4).output
    assert "v1.0.0 was the label's first version" in out and "only ever" not in out


def test_history_of_an_unknown_prompt_says_so(versions: Path, tether: Tether) -> None:
    assert "no prompt 'nosuch'" in tether("prompt", "history", "nosuch", expect=2).output
