"""A pipeline.yaml is content someone else may write (a pull request): its stages may not write
Tether's own files, nor be named so that a name reads as a path, a `stage:key` or another stage."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from tests.conftest import Tether, write_files
from tether.api import Project
from tether.pipelines.spec import PIPELINE_FILE, PipelineError, load_pipeline

OWN_FILES = [
    "pipeline.yaml",
    "./Pipeline.YAML",
    "pipeline.lock",
    "tether.toml",
    ".gitignore",
    "sub/.gitignore",
    "data.tether",
    "sub/model.pkl.TETHER",
    ".git/config",
    ".GIT",
    "sub/.git",
    "git~1",
    ".tether/cache",
    "sub/.Tether./x",
]


def _pipeline(stage: str) -> str:
    return yaml.safe_dump({"stages": {"a": yaml.safe_load(stage)}})


@pytest.mark.parametrize("out", OWN_FILES)
def test_a_stage_cannot_name_tethers_own_files_as_outs(
    repo: Path, tether: Tether, out: str
) -> None:
    pipeline = _pipeline(f"{{cmd: 'true', outs: [{out!r}]}}")
    write_files(repo, {"pipeline.yaml": pipeline, "sub/.gitignore": "keep\n"})
    message = tether("repro", expect=4).output
    assert PIPELINE_FILE in message and "stage 'a'" in message and out.lstrip("./") in message
    assert (repo / "pipeline.yaml").read_text() == pipeline
    assert (repo / "tether.toml").exists() and (repo / "sub/.gitignore").read_text() == "keep\n"


@pytest.mark.parametrize("metrics", ["pipeline.lock", "tether.toml", "a.tether"])
def test_a_stage_cannot_name_tethers_own_files_as_metrics_files(
    repo: Path, tether: Tether, metrics: str
) -> None:
    pipeline = _pipeline(f"{{cmd: 'echo {{}} > {metrics}', metrics: [{metrics}]}}")
    write_files(repo, {"pipeline.yaml": pipeline})
    message = tether("repro", expect=4).output
    assert "stage 'a'" in message and metrics in message
    assert (repo / "pipeline.yaml").read_text() == pipeline


@pytest.mark.parametrize(
    "name", ["", " ", "a\nb", "a\tb", "a\x1b[31m", "a/b", "a\\b", "a:b", "a@1", "~"]
)
def test_a_stage_name_is_text_a_user_can_type_and_tell_apart(
    repo: Path, tether: Tether, name: str
) -> None:
    if name == "~":  # a YAML null
        pipeline = "stages:\n  ~:\n    cmd: echo x > o\n    outs: [o]\n"
    else:
        pipeline = yaml.safe_dump({"stages": {name: {"cmd": "echo x > o", "outs": ["o"]}}})
    write_files(repo, {"pipeline.yaml": pipeline})
    message = tether("repro", expect=4).output
    assert PIPELINE_FILE in message and "stage name" in message
    assert not (repo / "o").exists() and not (repo / "pipeline.lock").exists()


@pytest.mark.parametrize("key", ["x/y", "x:y", "x\ny"])
def test_a_foreach_key_cannot_make_a_stage_name_a_user_cannot_tell_apart(
    repo: Path, tether: Tether, key: str
) -> None:
    stage = {"cmd": "echo ${item} > o-${item}", "foreach": {key: "v"}}
    write_files(repo, {"pipeline.yaml": yaml.safe_dump({"stages": {"s": stage}})})
    message = tether("repro", expect=4).output
    assert "foreach key" in message and f"s@{key}" in message.replace("\\n", "\n")


def test_two_stages_that_come_out_with_one_name_are_refused_not_one_dropped(
    repo: Path, tether: Tether
) -> None:
    pipeline = "stages:\n  s:\n    cmd: echo ${item} > o-${item}\n    outs: [o-${item}]\n"
    pipeline += "    foreach: {1: a, '1': b}\n"
    write_files(repo, {"pipeline.yaml": pipeline})
    message = tether("repro", expect=4).output
    assert "'s@1'" in message and "twice" in message


def test_plain_names_numbers_and_outs_near_tethers_files_still_run(
    project: Project, repo: Path
) -> None:
    pipeline = (
        "stages:\n"
        "  1:\n    cmd: echo x > pipeline.yaml.bak\n    outs: [pipeline.yaml.bak]\n"
        "  prep-data_v2 ü:\n    cmd: mkdir -p sub && echo y > sub/tether.toml\n"
        "    outs: [sub/tether.toml]\n"
        "  train:\n    cmd: echo ${item} > m-${item}.gitignored\n    outs: [m-${item}.gitignored]\n"
        "    foreach: [a, b]\n"
    )
    write_files(repo, {"pipeline.yaml": pipeline})
    assert project.repro().ok
    assert (repo / "sub/tether.toml").read_text() == "y\n"
    stages = yaml.safe_load((repo / "pipeline.lock").read_text())["stages"]
    assert set(stages) == {"1", "prep-data_v2 ü", "train@0", "train@1"}


@given(
    name=st.text(max_size=8) | st.integers() | st.none() | st.booleans(),
    out=st.text(max_size=20),
)
def test_whatever_a_pipeline_names_loads_safe_or_is_refused_with_a_pipeline_error(
    name: object, out: str
) -> None:
    data = yaml.safe_dump({"stages": {name: {"cmd": "true", "outs": [out]}}}).encode()
    try:
        pipeline = load_pipeline(Path("/nonexistent"), data)
    except PipelineError as exc:
        assert PIPELINE_FILE in str(exc)
        return
    (stage,) = pipeline.stages.values()
    assert stage.name and stage.name.isprintable() and not set(stage.name) & set("/\\:@")
    (path,) = stage.out_paths
    parts = path.casefold().split("/")
    assert path not in ("pipeline.yaml", "pipeline.lock", "tether.toml")
    assert parts[-1] != ".gitignore" and not parts[-1].endswith(".tether")
    assert not {".git", ".tether"} & {p.rstrip(". ") for p in parts}
