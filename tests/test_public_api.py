"""The public API is ``tether.__all__``, and ``import tether`` stays light."""

import subprocess
import sys

import pytest

import tether

HEAVY = ("sqlalchemy", "fastapi", "s3fs", "fsspec", "rich", "boto3", "botocore", "yaml", "click")


def test_all_is_sorted_and_locked() -> None:
    assert tether.__all__ == sorted(tether.__all__)
    assert tether.__all__ == [
        "Project",
        "TetherError",
        "__version__",
        "active_run",
        "end_run",
        "log_artifact",
        "log_input",
        "log_metric",
        "log_metrics",
        "log_output",
        "log_param",
        "log_params",
        "new_project",
        "search_runs",
        "seed",
        "set_tag",
        "set_tags",
        "start_run",
    ]
    for name in tether.__all__:
        assert getattr(tether, name) is not None


def _modules_after(code: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", f"{code}; import sys; print('\\n'.join(sys.modules))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return {m.split(".")[0] for m in out.split()}


def test_import_tether_loads_nothing_heavy() -> None:
    loaded = _modules_after("import tether")
    assert not loaded & set(HEAVY), loaded & set(HEAVY)


def test_status_path_does_not_load_remote_or_rendering_libraries() -> None:
    loaded = _modules_after(
        "import tether.cli.main, tether.cli.data, tether.api; from tether.workspace import status"
    )
    for heavy in ("sqlalchemy", "fastapi", "s3fs", "fsspec", "rich", "boto3"):
        assert heavy not in loaded, heavy


def test_logging_a_metric_loads_no_rendering_or_remote_libraries() -> None:
    """A training script pays for the index (SQLAlchemy) but not for rich, click or fsspec."""
    loaded = _modules_after("import tether.runs.active, tether.runs.live")
    for heavy in ("fastapi", "s3fs", "fsspec", "rich", "boto3", "click"):
        assert heavy not in loaded, heavy


def _cli_contract(source: str = "tether.cli") -> dict[str, object]:
    import tomllib
    from pathlib import Path

    doc = tomllib.loads((Path(__file__).parent.parent / "pyproject.toml").read_text())
    (contract,) = [
        c for c in doc["tool"]["importlinter"]["contracts"] if c.get("source_modules") == [source]
    ]
    return dict(contract)


# The CLI's imports past the facade (31 when the contract was written, none since the server
# came): it stays at zero (a new verb goes through tether.api).
MOST_EXCEPTIONS = 0


def test_the_cli_contract_forbids_every_module_but_the_facade() -> None:
    import pkgutil

    contract = _cli_contract()
    tops = {f"tether.{m.name}" for m in pkgutil.iter_modules(tether.__path__)}
    # tether.asgi is the application factory `tether server` calls (it imports the server)
    allowed = {"tether.api", "tether.errors", "tether.cli", "tether.asgi"}
    assert set(contract["forbidden_modules"]) == tops - allowed  # type: ignore[arg-type]
    exceptions = contract["ignore_imports"]
    assert isinstance(exceptions, list) and exceptions == sorted(exceptions)
    assert len(exceptions) <= MOST_EXCEPTIONS, "the CLI's exceptions to the facade only shrink"


@pytest.mark.parametrize("shell", ["tether.server", "tether.ui"])
def test_the_server_and_the_ui_call_only_the_facade_too(shell: str) -> None:
    """The server and the UI are shells like the CLI: every module but tether.api and
    tether.errors is forbidden to each (the other shell too), with no exception."""
    import pkgutil

    contract = _cli_contract(shell)
    tops = {f"tether.{m.name}" for m in pkgutil.iter_modules(tether.__path__)}
    above = {"tether.asgi", "tether.cli"}  # the layers contract keeps both below them
    allowed = {"tether.api", "tether.errors", shell} | above
    assert set(contract["forbidden_modules"]) == tops - allowed  # type: ignore[arg-type]
    assert not contract.get("ignore_imports")
