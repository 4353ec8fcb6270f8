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


def add_lazy_version(repo: Path, version: str = "v1.3.0") -> None:
    (repo / f"prompts/sentiment/{version}").mkdir()
    (repo / f"prompts/sentiment/{version}/template.jinja2").write_text("LAZY {{ review }}")
    meta = (repo / "prompts/sentiment/v1.0.0/prompt.yaml").read_text()
    (repo / f"prompts/sentiment/{version}/prompt.yaml").write_text(meta)


def test_editing_the_registered_production_version_in_place_is_refused(
    repo: Path, tether: Tether
) -> None:
    merged(repo, tether)
    # the branch makes production as lazy as its new version, hoping to pass "no regression"
    (repo / "prompts/sentiment/v1.0.0/template.jinja2").write_text("LAZY {{ review }}")
    add_lazy_version(repo)
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "feat(prompts): v1.3.0")
    out = tether("prompt", "ci", "--base", "main", expect=1).output
    assert "**Refused:** sentiment@v1.0.0 is registered with content" in out
    assert "tether prompt bump sentiment --from v1.0.0" in out
    assert "Verdict" not in out  # nothing was asked for a refused pull request


def test_the_baseline_is_the_registered_version_not_what_the_base_branch_holds(
    repo: Path, tether: Tether
) -> None:
    merged(repo, tether)
    git(repo, "checkout", "-q", "main")  # a mistake on main: production edited after registration
    (repo / "prompts/sentiment/v1.0.0/template.jinja2").write_text("LAZY {{ review }}")
    git(repo, "commit", "-qam", "fix: edit production in place")
    git(repo, "checkout", "-q", "-b", "lazier")
    add_lazy_version(repo)
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "feat(prompts): v1.3.0")
    out = tether("prompt", "ci", "--base", "main", expect=1).output
    # measured against the registered (good) v1.0.0, the lazy version is worse
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


def test_a_case_file_outside_the_suite_folder_counts_as_the_suite(
    repo: Path, tether: Tether
) -> None:
    merged(repo, tether)
    git(repo, "checkout", "-q", "main")
    (repo / "data").mkdir()
    (repo / "evals/cases.csv").rename(repo / "data/cases.csv")
    text = (repo / "evals/sentiment.yaml").read_text().replace("cases.csv", "../data/cases.csv")
    (repo / "evals/sentiment.yaml").write_text(text)
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "test(prompts): cases in data/")
    git(repo, "checkout", "-q", "-b", "harder")
    (repo / "data/cases.csv").write_text(cases(30) + "\n")
    git(repo, "commit", "-qam", "test(prompts): other cases")
    out = tether("prompt", "ci", "--base", "main").output
    assert "sentiment@v1.0.0 on `sentiment`" in out and "evaluated alone" in out


def test_a_suite_removed_or_renamed_is_refused(repo: Path, tether: Tether) -> None:
    merged(repo, tether)
    git(repo, "mv", "evals/sentiment.yaml", "evals/other.yaml")
    git(repo, "commit", "-qm", "test(prompts): rename")
    out = tether("prompt", "ci", "--base", "main", expect=1).output
    assert "removes or renames evals/sentiment.yaml, sentiment's suite" in out
    assert "No prompt version or suite changed" not in out


def test_a_refusal_comes_before_any_call_and_the_report_is_written(
    repo: Path, tether: Tether
) -> None:
    merged(repo, tether)
    add_lazy_version(repo)
    (repo / "checks.py").write_text("def score(answer, case):\n    return True\n")
    text = (repo / "evals/sentiment.yaml").read_text()
    text = text.replace("assert: [{label-match: true}]", "assert: [{python: 'checks:score'}]")
    (repo / "evals/sentiment.yaml").write_text(text)
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "feat(prompts): v1.3.0 with a check")
    out = tether("prompt", "ci", "--base", "main", "--report", "r.md", expect=1).output
    assert "**Refused:**" in out and "changes Python files" in out
    assert "Verdict" not in out and "**Refused:**" in (repo / "r.md").read_text()
    runs = tether("runs", "list").output
    assert "eval-sentiment" not in runs  # nothing was evaluated


def test_a_baseline_label_no_assignment_backs_is_refused(repo: Path, tether: Tether) -> None:
    merged(repo, tether)
    git(repo, "checkout", "-q", "main")
    message = git(repo, "tag", "-l", "--format=%(contents)", "sentiment#production#1").strip()
    git(repo, "tag", "-a", "sentiment#production#2", "-m", message, "sentiment@v1.0.0^{}")
    git(repo, "checkout", "-q", "feature")
    (repo / "evals/cases.csv").write_text(cases(40) + "\n")
    git(repo, "commit", "-qam", "test(prompts): fewer cases")
    out = tether("prompt", "ci", "--base", "main", expect=1).output
    assert "**Refused:**" in out and "tether prompt history sentiment" in out
