"""Two clones' label logs through a bare remote: a pull after an unpushed promote merges the two
histories (nothing rewritten), and the same assignment NAME#LABEL#N made on both sides is
refused, naming it, with the way out."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import Tether, git
from tests.prompts.test_labels import versions  # noqa: F401
from tether.api import Project


@pytest.fixture
def other(versions: Path, tmp_path: Path, tether: Tether, monkeypatch: pytest.MonkeyPatch) -> Path:  # noqa: F811
    """A second clone of the remote, which has sentiment#production#1 -> v1.0.0."""
    bare = tmp_path / "origin.git"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(bare))
    git(versions, "remote", "add", "origin", str(bare))
    git(versions, "push", "-q", "origin", "HEAD:refs/heads/main")
    tether("prompt", "promote", "sentiment@v1.0.0", "--label", "production", "--push")
    clone = tmp_path / "other"
    git(tmp_path, "clone", "-q", str(bare), str(clone))
    for key, value in (("user.email", "bo@example.com"), ("user.name", "Bo")):
        git(clone, "config", key, value)
    monkeypatch.chdir(clone)
    Project.init(clone)
    assert "1 new label events" in tether("prompt", "pull").output
    return clone


def history(tether: Tether) -> str:
    return str(tether("prompt", "history", "sentiment").output)


def test_a_pull_after_an_unpushed_promote_merges(
    versions: Path,  # noqa: F811
    other: Path,
    tether: Tether,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    tether("prompt", "promote", "sentiment@v1.1.0", "--label", "staging", "--push")
    monkeypatch.chdir(versions)  # the first user promotes without having pulled
    tether("prompt", "promote", "sentiment@v1.1.0", "--label", "canary")
    out = tether("prompt", "pull").output
    assert "1 new label events" in out and "merge event" in out
    tether("prompt", "push", "sentiment")
    monkeypatch.chdir(other)
    assert "fast-forwarded" in tether("prompt", "pull").output
    for clone in (versions, other):
        monkeypatch.chdir(clone)
        seen = history(tether)  # exits 0: every tag agrees with the log
        for assigned in ("production#1  -> v1.0.0", "staging#1  -> v1.1.0", "canary#1  -> v1.1.0"):
            assert f"sentiment#{assigned}" in seen
        assert "v1.1.0" in tether("prompt", "show", "sentiment@canary").output
    log = Project.open(other).ws.refs.get("events/prompts")
    assert log == Project.open(versions).ws.refs.get("events/prompts")


def test_the_same_assignment_on_both_sides_is_refused_with_the_way_out(
    versions: Path,  # noqa: F811
    other: Path,
    tether: Tether,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    tether("prompt", "promote", "sentiment@v1.1.0", "--label", "production", "--push")
    monkeypatch.chdir(versions)
    tether("prompt", "promote", "sentiment@v1.0.0", "--label", "staging")
    tether("prompt", "promote", "sentiment@v1.1.0", "--label", "production")  # #2 here too
    before = Project.open(versions).ws.refs.get("events/prompts")
    out = tether("prompt", "pull", expect=4).output
    assert "sentiment#production#2" in out and "tether prompt pull --discard-local" in out
    assert Project.open(versions).ws.refs.get("events/prompts") == before
    out = tether("prompt", "pull", "--discard-local").output
    assert "dropped 2 local event(s)" in out
    seen = history(tether)
    assert "sentiment#production#2  -> v1.1.0" in seen and "by bo@example.com" in seen
    assert "staging" not in seen  # dropped with the rest, its tag too
    assert "staging" not in git(versions, "tag")
    assert git(versions, "rev-parse", "sentiment#production#2") == git(
        other, "rev-parse", "sentiment#production#2"
    )
