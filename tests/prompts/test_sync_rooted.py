# ruff: noqa: F811
"""Two clones' label logs under a root of trust: a merge is signed by a key that may merge,
and an assignment nobody entitled signed is refused by name on pull and never served."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import Tether, git
from tests.prompts.test_label_backing import forge_assignment
from tests.prompts.test_labels import versions  # noqa: F401 (a fixture)
from tests.registry.test_root_of_trust import Use, keys, use  # noqa: F401 (fixtures)
from tether import signing
from tether.api import Project
from tether.prompts import labels
from tether.prompts.runtime import clear_cache, load


@pytest.fixture
def two(
    versions: Path,
    keys: dict[str, signing.KeyInfo],
    use: Use,
    tmp_path: Path,
    tether: Tether,
    monkeypatch: pytest.MonkeyPatch,
) -> tuple[Path, Path]:
    """A rooted project (alice: admin, promoter) pushed to a bare remote, and a second clone
    that pulled its label log (pinning its root at first use)."""
    clear_cache()
    tether("trust", "init")
    git(versions, "add", "-A")
    git(versions, "commit", "-qm", "chore: trust")
    bare = tmp_path / "origin.git"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(bare))
    git(versions, "remote", "add", "origin", str(bare))
    git(versions, "push", "-q", "origin", "HEAD:refs/heads/main")
    tether("prompt", "promote", "sentiment@v1.0.0", "--label", "production", "--push")
    clone = tmp_path / "other"
    git(tmp_path, "clone", "-q", str(bare), str(clone))
    monkeypatch.chdir(clone)
    Project.init(clone)
    tether("prompt", "pull")
    return versions, clone


def test_a_merge_under_a_root_is_signed_and_both_clones_agree(
    two: tuple[Path, Path], tether: Tether, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, other = two
    tether("prompt", "promote", "sentiment@v1.1.0", "--label", "staging", "--push")
    monkeypatch.chdir(first)
    tether("prompt", "promote", "sentiment@v1.1.0", "--label", "canary")
    assert "merge event" in tether("prompt", "pull").output
    tether("prompt", "push", "sentiment")
    merge = Project.open(first).ws.refs.get("events/prompts")
    assert merge is not None
    ev = labels.event_log(Project.open(first).ws).events()[-1]
    assert ev.kind == "log.merge" and ev.body.get("signed") and ev.actor == "alice@example.com"
    monkeypatch.chdir(other)
    tether("prompt", "pull")
    for clone in (first, other):
        monkeypatch.chdir(clone)
        seen = tether("prompt", "history", "sentiment").output  # exit 0: nothing refused
        assert "canary#1" in seen and "staging#1" in seen
        assert load("sentiment", label="canary", ttl=0).version == "v1.1.0"


def test_an_unsigned_assignment_on_the_remote_is_refused_on_pull(
    two: tuple[Path, Path], tether: Tether, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, other = two
    forge_assignment(other)
    tether("prompt", "push", "sentiment")
    monkeypatch.chdir(first)
    out = tether("prompt", "pull", expect=1).output
    assert "refused 1 event(s)" in out and "it is not signed" in out
    assert load("sentiment", label="production", ttl=0).version == "v1.0.0"
