"""A run named by its name, as users name runs: the same name again after a fix, `NAME~1` for the
one before, and the CLI saying which one it picked; the ids a script reads from `--json`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import tether as tether_api
from tests.conftest import BIN, Tether, write_files
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


NOISY = """
import sys, tether
print("epoch 1 loss 0.5")
tether.log_metric("loss", 0.5)
sys.stdout.write("no newline at the end")
sys.exit(int(sys.argv[1]))
"""


@pytest.mark.parametrize("code", [0, 3])
def test_tether_run_json_gives_a_script_the_run_id(repo: Path, code: int) -> None:
    """What a shell script does: `id=$(tether run --json -- ... | jq -r .run_id)`."""
    write_files(repo, {"train.py": NOISY})
    proc = subprocess.run(
        [str(BIN / "tether"), "run", "--json", "-n", "nightly", "--", sys.executable, "train.py",
         str(code)],
        cwd=repo, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert proc.returncode == code
    summary = json.loads(proc.stdout)  # stdout is the summary and nothing else
    assert "epoch 1 loss 0.5" in proc.stderr and "no newline at the end" in proc.stderr
    with Project.open(repo) as project:
        record = project.get_run(summary["run_id"])
        assert record["name"] == summary["name"] == "nightly"
        assert summary["status"] == ("finished" if code == 0 else "failed")
        assert summary["exit_code"] == code and summary["record"] == record["record_id"]
        log = project.ws.store.read_bytes(record["log"])
        assert b"epoch 1 loss 0.5" in log  # the command's output is still kept


def test_runs_list_and_show_json_carry_parents_and_children(repo: Path, tether: Tether) -> None:
    with tether_api.start_run(name="sweep") as outer, tether_api.start_run("t1", nested=True):
        pass
    listed = json.loads(tether("runs", "list", "--json").stdout)
    assert {r["name"]: r["parent"] for r in listed} == {"sweep": None, "t1": outer.id}
    shown = json.loads(tether("runs", "show", "sweep", "--json").stdout)
    assert shown["children"] == [r["id"] for r in listed if r["name"] == "t1"]


def _strict_json(text: str) -> Any:
    def refuse(constant: str) -> None:
        raise ValueError(f"{constant} is not JSON")

    return json.loads(text, parse_constant=refuse)


def test_json_output_is_strict_json_with_nan_and_infinite_metrics(
    project: Project, tether: Tether
) -> None:
    for name in ("a", "b"):
        with tether_api.start_run(name=name):
            tether_api.log_metrics({"nan": float("nan"), "inf": float("inf"), "acc": 0.5})
    rows = _strict_json(tether("runs", "list", "--json").stdout)
    (listed,) = [r for r in rows if r["name"] == "a"]
    assert listed["metrics"]["nan"]["last"] is None
    assert listed["metrics"]["inf"]["last"] == "Infinity"
    _strict_json(tether("runs", "show", "a", "--json").stdout)
    _strict_json(tether("diff", "a", "b", "--json").stdout)


def test_runs_compare_json_names_the_runs_it_picked(project: Project, tether: Tether) -> None:
    older, newer = _runs_named("tuned", 2)
    out = _strict_json(tether("runs", "compare", "tuned~1", "tuned", "--json").stdout)
    assert [r["id"] for r in out["runs"]] == [older, newer]
    assert out["metrics"] == {"attempt": [0, 1]} and out["differ"] == ["metrics.attempt"]


def test_check_determinism_json_reports_both_runs(repo: Path) -> None:
    write_files(
        repo, {"noisy.py": "import random, tether\ntether.log_metric('r', random.random())\n"}
    )
    proc = subprocess.run(
        [str(BIN / "tether"), "run", "--json", "--check-determinism", "--", sys.executable,
         "noisy.py"],
        cwd=repo, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert proc.returncode == 1
    report = json.loads(proc.stdout)
    assert report["deterministic"] is False and list(report["metrics"]) == ["r"]
    assert [r["status"] for r in report["runs"]] == ["finished", "finished"]
