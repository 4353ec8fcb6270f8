"""`tether.search_runs` called the way MLflow's documentation and an MLflow user's code call it."""

from __future__ import annotations

from pathlib import Path

import pytest

import tether
from tether.api import Project
from tether.errors import QueryError, UsageError


@pytest.fixture
def sweep(project: Project) -> Project:
    """Four runs: two experiments, one failed, a tag with a dot in its name, metric keys with a
    dash and a space."""
    for i, (lr, exp, status) in enumerate(
        [(0.1, "tuning", "finished"), (0.01, "tuning", "finished"), (0.001, "tuning", "failed"),
         (0.5, "smoke", "finished")]
    ):  # fmt: skip
        tether.start_run(name=f"lr-{lr}", experiment=exp)
        tether.log_params({"lr": lr, "model": "tree" if i % 2 else "linear"})
        tether.log_metrics({"loss": lr * 10, "val-loss": lr * 20, "top k": i})
        tether.set_tag("team.name", "vision")
        tether.end_run(status)
    return project


def _names(runs: list) -> list[str]:
    return [r.name for r in runs]


def test_filter_string_order_by_and_max_results(sweep: Project) -> None:
    found = tether.search_runs(
        filter_string="metrics.loss < 2 AND params.model = 'linear'",
        order_by=["metrics.loss DESC"],
    )
    assert _names(found) == ["lr-0.1", "lr-0.001"]
    found = tether.search_runs(order_by=["params.lr ASC"], max_results=2)
    assert _names(found) == ["lr-0.001", "lr-0.01"]  # params that are numbers sort as numbers
    found = tether.search_runs(order_by=["attributes.start_time DESC"], max_results=1)
    assert _names(found) == ["lr-0.5"]
    found = tether.search_runs(order_by=["start_time"], max_results=1)
    assert _names(found) == ["lr-0.1"]  # ASC is the default, as in MLflow


def test_mlflow_identifiers_and_values(sweep: Project) -> None:
    assert _names(tether.search_runs(filter_string="attributes.status = 'FAILED'")) == ["lr-0.001"]
    assert len(tether.search_runs(filter_string="status IN ('FINISHED', 'KILLED')")) == 3
    assert _names(tether.search_runs(filter_string="tags.mlflow.runName = 'lr-0.5'")) == ["lr-0.5"]
    assert _names(tether.search_runs(filter_string="attributes.run_name LIKE 'lr-0.0%'",
                                     order_by=["run_name"])) == ["lr-0.001", "lr-0.01"]  # fmt: skip
    found = tether.search_runs(filter_string='metrics."val-loss" >= 2 and metrics.`top k` = 3')
    assert _names(found) == ["lr-0.5"]
    assert len(tether.search_runs(filter_string='tags."team.name" = "vision"')) == 4
    (first,) = tether.search_runs(order_by=["start_time"], max_results=1)
    millis = int(first.started * 1000) + 1
    later = tether.search_runs(filter_string=f"attributes.start_time > {millis}")
    assert first.name not in _names(later) and len(later) == 3  # MLflow counts milliseconds
    run_id = tether.search_runs(filter_string="run_name = 'lr-0.01'")[0].id
    assert _names(tether.search_runs(filter_string=f"attributes.run_id = '{run_id}'")) == [
        "lr-0.01"
    ]


def test_experiment_names_and_ids(sweep: Project) -> None:
    assert len(tether.search_runs(experiment_names=["tuning"])) == 3
    assert _names(tether.search_runs(experiment_ids=["smoke"])) == ["lr-0.5"]
    assert _names(tether.search_runs(experiment_names="smoke")) == ["lr-0.5"]  # not s, m, o...
    found = tether.search_runs(
        experiment_names=["tuning", "smoke"], filter_string="metrics.loss > 0.5"
    )
    assert sorted(_names(found)) == ["lr-0.1", "lr-0.5"]


def test_deleted_runs_by_run_view_type(sweep: Project) -> None:
    sweep.delete_run("lr-0.5")
    assert "lr-0.5" not in _names(tether.search_runs())
    assert _names(tether.search_runs(run_view_type="DELETED_ONLY")) == ["lr-0.5"]
    assert len(tether.search_runs(run_view_type="ALL")) == 4


def test_tethers_own_names_keep_working(sweep: Project, repo: Path) -> None:
    found = tether.search_runs("metrics.loss < 2", sort="metrics.loss", limit=2, path=repo)
    assert _names(found) == ["lr-0.001", "lr-0.01"]
    found = tether.search_runs(where="params.model = 'tree'", sort="-metrics.loss")
    assert _names(found) == ["lr-0.5", "lr-0.01"]


def test_mixed_or_mlflow_only_arguments_are_refused_clearly(sweep: Project) -> None:
    with pytest.raises(UsageError, match="either where or filter_string, not both"):
        tether.search_runs("metrics.loss < 1", filter_string="metrics.loss < 2")
    with pytest.raises(UsageError, match="either sort or order_by"):
        tether.search_runs(sort="name", order_by=["name"])
    with pytest.raises(UsageError, match="either limit or max_results"):
        tether.search_runs(limit=1, max_results=1)
    with pytest.raises(UsageError, match="experiment_ids="):
        tether.search_runs(["0"])  # type: ignore[arg-type]  # MLflow's first argument
    with pytest.raises(UsageError, match="a list of runs"):
        tether.search_runs(output_format="pandas")
    with pytest.raises(UsageError, match="order_by takes a list"):
        tether.search_runs(order_by="metrics.loss DESC")  # type: ignore[arg-type]
    with pytest.raises(QueryError):
        tether.search_runs(filter_string="metrics.loss <")
