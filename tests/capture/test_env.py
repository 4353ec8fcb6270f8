"""The environment pillar: installed packages, lock files, the snapshot cache, exports."""

from __future__ import annotations

import copy
import json
import os
import re
import sys
import types
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest
import yaml
from dockerfile_parse import DockerfileParser

from tether.capture.env import capture_environment
from tether.capture.export import export_environment
from tether.errors import UsageError
from tether.hashing import hash_file

try:
    from packaging.requirements import Requirement
except ImportError:  # pragma: no cover - packaging comes with pip
    Requirement = None  # type: ignore[assignment,misc]

PY = "{}.{}.{}".format(*sys.version_info[:3])
VCS_PACKAGE = {
    "version": "1.0",
    "source": {"commit_id": "0123abc", "editable": False, "url": "https://x.test/f", "vcs": "git"},
}


def requirement(line: str) -> tuple[str, str]:
    """(name, version pin or URL) of a requirements line."""
    if Requirement is not None:
        req = Requirement(line)
        return req.name, req.url or str(req.specifier)
    match = re.fullmatch(r"([A-Za-z0-9][\w.-]*)\s*(==\S+|@ \S+)", line)
    assert match, line
    return match.group(1), match.group(2).removeprefix("@ ")


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "repo").mkdir()
    return tmp_path / "repo"


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return capture_environment(tmp_path_factory.mktemp("repo"), tmp_path_factory.mktemp("cache"))


def test_packages_are_the_installed_distributions(env: dict[str, Any]) -> None:
    for name in ("blake3", "click", "pyyaml"):
        assert env["packages"][name] == {"version": metadata.version(name)}
    assert env["format"] == 1
    assert env["python"]["version"] == PY
    assert env["python"]["venv"] == (sys.prefix != sys.base_prefix)
    assert json.loads(json.dumps(env)) == env


def test_the_editable_install_carries_its_source(env: dict[str, Any]) -> None:
    source = env["packages"]["tether-ml"]["source"]
    assert source["editable"] is True
    assert source["url"].startswith("file://")


def test_a_lock_file_is_identified_by_its_content(root: Path, tmp_path: Path) -> None:
    lock = root / "uv.lock"
    lock.write_text("version = 1\n")
    (root / "requirements-dev.txt").write_text("pytest\n")
    (root / "notes.txt").write_text("not a lock file\n")
    first = capture_environment(root, tmp_path / "cache")["lock_files"]
    requirements = hash_file(root / "requirements-dev.txt")
    assert first == {"requirements-dev.txt": requirements, "uv.lock": hash_file(lock)}
    lock.write_text("version = 1\nrevision = 2\n")
    second = capture_environment(root, tmp_path / "cache")["lock_files"]
    assert second["uv.lock"] == hash_file(lock) != first["uv.lock"]


def test_the_second_call_is_served_from_the_cache(root: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    first = capture_environment(root, cache)
    [snapshot] = cache.glob("env-*.json")
    assert capture_environment(root, cache) == first
    record = json.loads(snapshot.read_text())
    record["packages"] = {"poisoned": {"version": "6.6.6"}}
    snapshot.write_text(json.dumps(record))
    assert capture_environment(root, cache)["packages"] == {"poisoned": {"version": "6.6.6"}}
    snapshot.write_text("{")  # a torn snapshot is taken again, never trusted
    assert capture_environment(root, cache) == first


def test_outputs_next_to_the_script_keep_the_cache_new_packages_do_not(
    root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = tmp_path / "project"  # the script's folder, first on sys.path
    project.mkdir()
    monkeypatch.syspath_prepend(str(project))
    cache = tmp_path / "cache"
    capture_environment(root, cache)
    (project / "model.pkl").write_bytes(b"weights")  # what a training run leaves behind
    capture_environment(root, cache)
    assert len(list(cache.glob("env-*.json"))) == 1  # served from the cache
    info = project / "localpkg-2.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: localpkg\nVersion: 2.0\n")
    assert capture_environment(root, cache)["packages"]["localpkg"]["version"] == "2.0"


def test_only_the_newest_snapshots_are_kept(root: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    for i in range(6):
        (cache / f"env-old{i}.json").write_text("{}")
        os.utime(cache / f"env-old{i}.json", ns=(i * 10**9, i * 10**9))
    capture_environment(root, cache)
    kept = sorted(path.name for path in cache.glob("env-*.json"))
    assert len(kept) == 4
    assert kept[-3:] == ["env-old3.json", "env-old4.json", "env-old5.json"]


def test_only_allow_listed_variables_have_their_values_captured(
    root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI-do-not-leak")
    monkeypatch.setenv("OMP_NUM_THREADS", "4")
    monkeypatch.setenv("PYTHONHASHSEED", "0")
    monkeypatch.setenv("RUN_TOKEN", "tok-123")
    env = capture_environment(
        root, tmp_path, allow_env=["RUN_TOKEN"], redact=lambda s: s.replace("tok-123", "***")
    )
    assert env["env_vars"]["OMP_NUM_THREADS"] == "4"
    assert env["env_vars"]["RUN_TOKEN"] == "***"
    assert env["determinism"]["PYTHONHASHSEED"] == "0"
    text = json.dumps(env)
    assert "AWS_SECRET_ACCESS_KEY" not in env["env_vars"]
    assert "AWS_SECRET_ACCESS_KEY" in env["env_names"]  # its name only, to compare runs
    assert env["env_names"] == sorted(env["env_names"])
    assert "do-not-leak" not in text
    assert "tok-123" not in text


def test_torch_settings_are_read_only_when_torch_is_imported(
    root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    without = capture_environment(root, tmp_path)
    assert "torch_deterministic_algorithms" not in without["determinism"]
    torch = types.ModuleType("torch")
    cudnn = types.SimpleNamespace(deterministic=True, benchmark=False, version=lambda: 8902)
    vars(torch).update(
        __version__="2.3.0",
        are_deterministic_algorithms_enabled=lambda: True,
        backends=types.SimpleNamespace(cudnn=cudnn),
        version=types.SimpleNamespace(cuda="12.1"),
    )
    monkeypatch.setitem(sys.modules, "torch", torch)
    env = capture_environment(root, tmp_path)
    assert env["determinism"]["torch_deterministic_algorithms"] is True
    assert env["determinism"]["cudnn_benchmark"] is False
    assert env["gpu"] == {"cuda": "12.1", "cudnn": "8902", "torch": "2.3.0"}


def test_requirements_export_pins_every_package(env: dict[str, Any]) -> None:
    env = copy.deepcopy(env)
    env["packages"]["foo"] = VCS_PACKAGE
    text = export_environment(env, "requirements")
    assert text.splitlines()[1].startswith(f"# Python {PY} ")
    pins = dict(requirement(line) for line in text.splitlines() if not line.startswith("#"))
    assert pins["blake3"] == f"=={metadata.version('blake3')}"
    assert pins["foo"] == "git+https://x.test/f@0123abc"
    assert "tether-ml" not in pins  # a local editable install: a comment only
    assert "# -e file://" in text


def test_conda_export_pins_python_and_leaves_conda_packages_to_conda(env: dict[str, Any]) -> None:
    doc = yaml.safe_load(export_environment(env, "conda"))
    assert doc["dependencies"][0] == f"python={PY}"
    assert f"click=={metadata.version('click')}" in doc["dependencies"][-1]["pip"]
    env = copy.deepcopy(env)
    env["packages"]["numpy"] = {"version": "1.26.4"}
    numpy = {"build": "py311h0", "channel": "conda-forge", "version": "1.26.4"}
    env["conda"] = {"name": "ml", "prefix": "/opt/conda/envs/ml", "packages": {"numpy": numpy}}
    doc = yaml.safe_load(export_environment(env, "conda"))
    assert doc["name"] == "ml"
    assert doc["channels"] == ["conda-forge"]
    assert "numpy=1.26.4=py311h0" in doc["dependencies"]
    assert not any(pin.startswith("numpy") for pin in doc["dependencies"][-1]["pip"])


def test_dockerfile_export_pins_the_interpreter_and_packages(
    env: dict[str, Any], tmp_path: Path
) -> None:
    env = copy.deepcopy(env)
    env["determinism"].update(PYTHONHASHSEED="0", CUBLAS_WORKSPACE_CONFIG=":4096:8")
    env["packages"]["foo"] = VCS_PACKAGE
    parser = DockerfileParser(path=str(tmp_path / "Dockerfile"))
    parser.content = export_environment(env, "dockerfile")
    assert parser.baseimage == f"python:{PY}-slim"
    assert parser.envs == {"PYTHONHASHSEED": "0", "CUBLAS_WORKSPACE_CONFIG": ":4096:8"}
    [run] = [item["value"] for item in parser.structure if item["instruction"] == "RUN"]
    assert run.startswith("pip install --no-cache-dir ")
    assert f"blake3=={metadata.version('blake3')}" in run.split()
    assert "'foo @ git+https://x.test/f@0123abc'" in run


def test_an_unknown_export_format_names_the_valid_ones(env: dict[str, Any]) -> None:
    with pytest.raises(UsageError, match="conda, dockerfile, requirements"):
        export_environment(env, "pipfile")
