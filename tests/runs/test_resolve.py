"""A run named by its name, as users name runs: the same name again after a fix, `NAME~1` for the
one before, and the CLI saying which one it picked."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

import tether as tether_api
from tests.conftest import Tether
from tether.api import Project
from tether.cli.main import cli
from tether.errors import RunError


def _runs_named(name: str, count: int) -> list[str]:
    ids = []
    for i in range(count):
        with tether_api.start_run(name=name) as run:
            tether_api.log_metric("attempt", i)
        ids.append(run.id)
    return ids


def test_a_name_given_twice_means_the_newest_and_name_tilde_n_the_ones_before(
    project: Project,
) -> None:
    first, second, third = _runs_named("baseline", 3)
    assert project.resolve_run("baseline") == third
    assert project.resolve_run("baseline~0") == third
    assert project.resolve_run("baseline~1") == second
    assert project.resolve_run("baseline~2") == first
    assert project.get_run("baseline~2")["metrics"]["attempt"]["last"] == 0
    with pytest.raises(RunError, match=r"only 3 runs are named 'baseline'.*baseline~2"):
        project.resolve_run("baseline~3")
    with pytest.raises(RunError, match="no run matches 'nothing~1'"):
        project.resolve_run("nothing~1")


def test_ids_and_id_prefixes_keep_working(project: Project) -> None:
    first, second = _runs_named("same", 2)
    assert project.resolve_run(first) == first
    assert project.resolve_run(first[:20]) == first
    assert project.resolve_run(second[:20]) == second
    with pytest.raises(RunError, match="give more characters of the id"):
        project.resolve_run(first[:3])  # both ids start alike: a prefix stays strict


def test_a_name_that_holds_a_tilde_is_found_as_written(project: Project) -> None:
    (plain,) = _runs_named("exp", 1)
    (tilde,) = _runs_named("exp~1", 1)
    assert project.resolve_run("exp~1") == tilde  # the exact name wins over counting back
    assert project.resolve_run("exp") == plain


def test_a_deleted_run_does_not_count_as_the_newest(project: Project) -> None:
    older, newer = _runs_named("model", 2)
    project.delete_run(newer)
    assert project.resolve_run("model") == older


def test_the_cli_says_which_run_an_ambiguous_name_picked(project: Project, tether: Tether) -> None:
    older, newer = _runs_named("baseline", 2)
    result = CliRunner().invoke(cli, ["runs", "show", "baseline", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["id"] == newer  # stdout stays pure JSON
    assert (
        f"2 runs are named baseline; using the newest, {newer}; baseline~1 is the one before"
        in " ".join(result.stderr.split())
    )
    quiet = CliRunner().invoke(cli, ["runs", "show", "baseline~1"])
    assert quiet.exit_code == 0 and older in quiet.stdout and "runs are named" not in quiet.stderr
    both = CliRunner().invoke(cli, ["diff", "baseline~1", "baseline", "--json"])
    assert both.exit_code == 0, both.output
    assert "using the newest" in both.stderr
    _runs_named("unique", 1)
    alone = CliRunner().invoke(cli, ["runs", "show", "unique"])
    assert alone.exit_code == 0 and alone.stderr == ""
    gone = CliRunner().invoke(cli, ["runs", "delete", "baseline"])
    assert gone.exit_code == 0 and newer in gone.output and "using the newest" in gone.stderr
