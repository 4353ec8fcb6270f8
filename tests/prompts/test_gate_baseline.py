"""`tether prompt ci`'s baseline is the registered version, read from its registration tag: a
branch that edits that version in place cannot lower the bar, and is refused with the reason; a
branch that changes only the suite re-evaluates the labelled version on it."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import Tether, git
from tests.prompts.test_gate import cases, setup


def merged(repo: Path, tether: Tether) -> None:
    """main: sentiment v1.0.0 (good) registered and labelled production; then a branch."""
    setup(repo, 60)
    for v in ("v1.1.0", "v1.2.0"):
        (repo / f"prompts/sentiment/{v}/template.jinja2").unlink()
        (repo / f"prompts/sentiment/{v}/prompt.yaml").unlink()
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "feat(prompts): sentiment v1.0.0")
    tether("prompt", "register", "sentiment@v1.0.0")
    tether("prompt", "promote", "sentiment@v1.0.0", "--label", "production")
    git(repo, "checkout", "-q", "-b", "feature")


def test_editing_the_registered_production_version_in_place_is_refused(
    repo: Path, tether: Tether
) -> None:
    merged(repo, tether)
    # the branch makes production as lazy as its new version, hoping to pass "no regression"
    (repo / "prompts/sentiment/v1.0.0/template.jinja2").write_text("LAZY {{ review }}")
    (repo / "prompts/sentiment/v1.3.0").mkdir()
    (repo / "prompts/sentiment/v1.3.0/template.jinja2").write_text("LAZY {{ review }}")
    meta = (repo / "prompts/sentiment/v1.0.0/prompt.yaml").read_text()
    (repo / "prompts/sentiment/v1.3.0/prompt.yaml").write_text(meta)
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "feat(prompts): v1.3.0")
    out = tether("prompt", "ci", "--base", "main", expect=1).output
    assert "**Refused:** sentiment@v1.0.0 is registered with content" in out
    assert "tether prompt bump sentiment --from v1.0.0" in out
    # the baseline is the registered v1.0.0, so the lazy v1.3.0 is measured against the good one
    assert "sentiment@v1.3.0 vs production sentiment@v1.0.0" in out
    assert "**Verdict:** worse" in out and "Gate (FAILED)" in out


def test_a_branch_that_changes_only_the_suite_is_evaluated(repo: Path, tether: Tether) -> None:
    merged(repo, tether)
    (repo / "evals/cases.csv").write_text(cases(40) + "\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "test(prompts): fewer cases")
    out = tether("prompt", "ci", "--base", "main").output
    assert "sentiment@v1.0.0 on `sentiment`" in out and "evaluated alone" in out
    assert "No prompt version or suite changed" not in out
