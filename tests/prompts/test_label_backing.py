# ruff: noqa: F811
"""A label is served only when the prompts log backs its tag with an assignment that holds:
a hand-made tag is refused, under a root of trust an unsigned or unauthorised assignment counts
for nothing, two promotes cannot take the same number, and a failed tag is repaired."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.conftest import BIN, Tether, git
from tests.prompts.test_runtime import two_versions
from tests.registry.test_root_of_trust import Use, keys, use  # noqa: F401 (fixtures)
from tether import signing
from tether.api import Project
from tether.errors import PromptError
from tether.events.gitmirror import record
from tether.prompts import labels
from tether.prompts.runtime import clear_cache, load


@pytest.fixture
def versions(repo: Path, tether: Tether) -> Path:
    clear_cache()
    return two_versions(repo, tether)  # v1.0.0 at production#1, v1.1.0 registered


def copy_of_message(repo: Path, tag: str) -> str:
    return git(repo, "tag", "-l", "--format=%(contents)", tag).strip()


def test_a_hand_made_tag_that_copies_a_real_assignment_is_not_served(
    versions: Path, tether: Tether
) -> None:
    tether("prompt", "promote", "sentiment@v1.1.0", "--label", "staging")
    # production#2 by hand, with staging#1's message: version, content and event of v1.1.0
    message = copy_of_message(versions, "sentiment#staging#1")
    git(versions, "tag", "-a", "sentiment#production#2", "-m", message, "sentiment@v1.1.0^{}")
    with pytest.raises(PromptError, match="tether prompt history sentiment"):
        load("sentiment", label="production", ttl=0)
    out = tether("prompt", "show", "sentiment@production", expect=4).output
    assert "newest assignment in the prompts log is #1" in out
    assert "has no event in the log" in tether("prompt", "history", "sentiment", expect=1).output


@pytest.fixture
def rooted_prompts(
    versions: Path, keys: dict[str, signing.KeyInfo], use: Use, tether: Tether
) -> Path:
    """A root of trust made by alice (admin, promoter); bob is only an approver."""
    assert "root version 1 is in force" in tether("trust", "init").output
    git(versions, "add", "tether.toml")
    git(versions, "commit", "-qm", "chore: trust")
    return versions


def forge_assignment(repo: Path) -> None:
    """sentiment#production#2 -> v1.1.0 as its event and tag, written straight into the log by
    someone who can write to it, never signed."""
    project = Project.open(repo)
    log = labels.event_log(project.ws)
    body = {
        "prompt": "sentiment", "label": "production", "n": 2, "version": "v1.1.0",
        "content_id": project.prompts.resolve("sentiment@v1.1.0").content_id,
        "commit": git(repo, "rev-parse", "sentiment@v1.1.0^{}").strip(), "tag": "x",
        "eval_run": None, "reason": "promote",
    }  # fmt: skip
    ev = log.append("label.assign", body, actor="alice@example.com")
    record(repo, log, ev)
    message = f"promote\n\nversion: v1.1.0\ncontent: {body['content_id']}\nevent: {ev.id}\n"
    git(repo, "tag", "-a", "sentiment#production#2", "-m", message, "sentiment@v1.1.0^{}")


def test_under_a_root_an_unsigned_assignment_is_not_served(
    rooted_prompts: Path, tether: Tether
) -> None:
    forge_assignment(rooted_prompts)
    with pytest.raises(PromptError, match=r"not backed|newest assignment"):
        load("sentiment", label="production", ttl=0)
    out = tether("prompt", "history", "sentiment", expect=1).output
    assert "it is not signed, and a root of trust is in force" in out
    out = tether("audit", "verify", expect=1).output
    assert "prompts log: event" in out and "it is not signed" in out


def test_under_a_root_promote_needs_a_promoters_key_and_writes_nothing_without(
    rooted_prompts: Path, use: Use, tether: Tether
) -> None:
    repo = rooted_prompts
    before = git(repo, "tag", "-l")
    use("bob")  # an approver, not a promoter
    out = tether("prompt", "promote", "sentiment@v1.1.0", "--label", "production", expect=4).output
    assert "one of the roles promoter" in out and "tether trust add" in out
    assert git(repo, "tag", "-l") == before
    use("alice")
    tether("prompt", "promote", "sentiment@v1.1.0", "--label", "production")
    assert load("sentiment", label="production", ttl=0).version == "v1.1.0"
    assert "sentiment#production#2" in git(repo, "tag", "-l")


def test_two_promotes_at_once_take_two_numbers(versions: Path) -> None:
    args = [str(BIN / "tether"), "prompt", "promote", "--label", "staging"]
    procs = [
        subprocess.Popen(
            [*args[:3], f"sentiment@{v}", *args[3:]],
            cwd=versions,
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        for v in ("v1.0.0", "v1.1.0")
    ]
    outs = [p.communicate(timeout=120)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    tags = git(versions, "tag", "-l", "sentiment#staging#*").split()
    assert tags == ["sentiment#staging#1", "sentiment#staging#2"]
    held = labels.assignments(Project.open(versions).ws, "sentiment", "staging")
    assert [a.n for a in held] == [1, 2]


def test_a_tag_that_failed_is_made_at_the_next_promote(versions: Path, tether: Tether) -> None:
    lock = versions / ".git" / "refs" / "tags" / "sentiment#production#2.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    lock.write_text("")  # git cannot create the tag while this is here
    tether("prompt", "promote", "sentiment@v1.1.0", "--label", "production", expect=4)
    lock.unlink()
    # the assignment is logged; its tag is missing, and the next promote makes it first
    tether("prompt", "promote", "sentiment@v1.0.0", "--label", "production")
    assert git(versions, "tag", "-l", "sentiment#production#*").split() == [
        "sentiment#production#1", "sentiment#production#2", "sentiment#production#3",
    ]  # fmt: skip
    assert "tag " not in tether("prompt", "history", "sentiment").output
    assert load("sentiment", label="production", ttl=0).version == "v1.0.0"
