# ruff: noqa: F811
"""`tether prompt promote --require-eval` counts only evidence: an eval of exactly this content,
on the suite as committed, by a real provider, whose thresholds passed; the run and the suite's
content id are bound into the assignment event."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Tether, git
from tests.prompts.test_labels import SUITE, versions  # noqa: F401 (a fixture)
from tether.api import Project
from tether.prompts import labels
from tether.prompts.fakeserver import FakeServer, serve

PROMOTE = ("prompt", "promote", "sentiment@v1.1.0", "--label", "production", "--require-eval")
PROMOTE += ("--suite", "evals/s.yaml")
EVAL = ("prompt", "eval", "sentiment@v1.1.0", "--suite", "evals/s.yaml", "-p", "local")


@pytest.fixture
def local(versions: Path) -> Iterator[FakeServer]:
    """A real OpenAI-compatible provider on loopback, and the suite committed."""
    git(versions, "add", "-A")  # the suite, and the project's files: a clean work tree
    git(versions, "commit", "-qm", "test(prompts): suite")
    with serve(latency_s=0.0) as server:
        with (versions / ".tether" / "config.toml").open("a") as f:
            f.write(
                f'\n[prompts.providers.local]\ntype = "openai"\nbase_url = "{server.base_url}"\n'
            )
        yield server


def test_a_passing_eval_by_a_real_provider_is_bound_into_the_assignment(
    local: FakeServer,
    versions: Path,
    tether: Tether,
) -> None:
    run = tether(*EVAL).output.split("recorded as run ")[1].split()[0]
    assert f"(eval run {run})" in tether(*PROMOTE).output
    (found,) = labels.assignments(Project.open(versions).ws, "sentiment", "production")
    ev = Project.open(versions).ws.store.read_bytes(found.event).decode()
    assert run in ev and '"suite_content_id":"blake3:' in ev


def test_an_eval_without_thresholds_is_no_evidence(
    local: FakeServer,
    versions: Path,
    tether: Tether,
) -> None:
    (versions / "evals/s.yaml").write_text(SUITE.replace("thresholds: {pass_rate: 0.5}\n", ""))
    git(versions, "commit", "-qam", "test(prompts): no thresholds")
    tether(*EVAL)
    assert "no passing eval" in tether(*PROMOTE, expect=4).output


def test_an_eval_on_another_suite_is_no_evidence(
    local: FakeServer,
    versions: Path,
    tether: Tether,
) -> None:
    tether(*EVAL)
    (versions / "evals/s.yaml").write_text(SUITE.replace("pass_rate: 0.5", "pass_rate: 0.1"))
    out = tether(*PROMOTE, expect=4).output
    assert "uncommitted changes" in out  # the suite as committed, or nothing
    git(versions, "commit", "-qam", "test(prompts): an easier suite")
    assert "no passing eval" in tether(*PROMOTE, expect=4).output  # the eval was on the old one
    tether(*EVAL)
    assert "(eval run " in tether(*PROMOTE).output


def test_a_failed_eval_tagged_pass_afterwards_is_no_evidence(
    local: FakeServer,
    versions: Path,
    tether: Tether,
) -> None:
    (versions / "evals/s.yaml").write_text(SUITE.replace("pass_rate: 0.5", "latency_p95_s: 0.0"))
    git(versions, "commit", "-qam", "test(prompts): a threshold no eval meets")
    run = tether(*EVAL, expect=1).output.split("recorded as run ")[1].split()[0]
    tether("runs", "tag", run, "verdict=pass")  # an amendment: the sealed record says fail
    assert "no passing eval" in tether(*PROMOTE, expect=4).output


def test_the_stand_in_under_another_name_is_no_evidence(versions: Path, tether: Tether) -> None:
    git(versions, "add", "evals")
    git(versions, "commit", "-qm", "test(prompts): suite")
    with (versions / ".tether" / "config.toml").open("a") as f:
        f.write('\n[prompts.providers.mock]\ntype = "scripted"\nrules = [{default = "positive"}]\n')
    eval_mock = (*EVAL[:-1], "mock")
    tether(*eval_mock)  # half right: the suite's pass_rate 0.5 is met
    assert "no passing eval" in tether(*PROMOTE, expect=4).output


def test_an_eval_run_on_uncommitted_code_is_no_evidence(
    local: FakeServer, versions: Path, tether: Tether
) -> None:
    (versions / "notes.txt").write_text("work in progress")  # e.g. a check module edited
    tether(*EVAL)
    assert "no uncommitted change" in tether(*PROMOTE, expect=4).output
    (versions / "notes.txt").unlink()
    tether(*EVAL)
    assert "(eval run " in tether(*PROMOTE).output
