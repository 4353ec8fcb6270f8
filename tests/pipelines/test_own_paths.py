"""What a stage reads and what it writes, as a user spells them: through a symlink, with `./` and
`..`, a user's file inside another stage's out, metrics files dropped from the list."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from tests.conftest import Tether, write_files
from tether.api import Project
from tether.hashing import hash_bytes
from tether.pipelines.spec import PipelineError


def test_a_dep_inside_its_own_out_through_a_symlink_is_refused_before_anything_runs(
    project: Project, repo: Path, tether: Tether
) -> None:
    pipeline = "stages:\n  s:\n    cmd: mkdir -p out && echo x > out/o\n"
    pipeline += "    deps: [link/d.txt]\n    outs: [out]\n"
    write_files(repo, {"out/in/d.txt": "the only copy\n", "pipeline.yaml": pipeline})
    os.symlink("out/in", repo / "link")
    with pytest.raises(PipelineError) as info:
        project.repro()
    assert "link/d.txt" in str(info.value) and "out/in/d.txt" in str(info.value)
    out = tether("repro", expect=4).output
    assert "link/d.txt" in out and "out/in/d.txt" in out
    assert (repo / "out/in/d.txt").read_text() == "the only copy\n"


def test_a_users_file_inside_another_stages_out_is_refused_before_anything_runs(
    project: Project, repo: Path, tether: Tether
) -> None:
    pipeline = (
        "stages:\n  a:\n    cmd: mkdir -p out && echo made > out/made.txt\n    outs: [out]\n"
        "  b:\n    cmd: cp out/in/d.txt copy.txt\n    deps: [out/in/d.txt]\n    outs: [copy.txt]\n"
    )
    write_files(repo, {"out/in/d.txt": "the only copy\n", "pipeline.yaml": pipeline})
    out = tether("repro", expect=4).output
    assert "out/in/d.txt" in out and "'a'" in out and "running" not in out
    assert (repo / "out/in/d.txt").read_text() == "the only copy\n"
    # what the stage wrote last time is fine to read and to replace
    (repo / "out/in/d.txt").unlink()
    writes = pipeline.replace(
        "out && echo made > out/made.txt", "out/in && echo made > out/in/d.txt"
    )
    write_files(repo, {"pipeline.yaml": writes})
    assert project.repro().ok
    write_files(repo, {"pipeline.yaml": writes.replace("d.txt\n", "d.txt && echo 2\n", 1)})
    assert project.repro().ok and (repo / "copy.txt").read_text() == "made\n"
    # a stage that stops writing it: the message names the stage and where the bytes are
    write_files(repo, {"pipeline.yaml": pipeline})
    out = tether("repro", expect=4).output
    assert "removed with its out out" in out and hash_bytes(b"made\n") in out


def test_a_path_spelled_with_dot_and_dotdot_inside_the_repository_is_the_same_path(
    project: Project, repo: Path
) -> None:
    pipeline = "stages:\n  s:\n    cmd: cp a.txt b.txt\n    deps: ['./sub/../a.txt']\n"
    write_files(repo, {"a.txt": "a\n", "pipeline.yaml": pipeline + "    outs: [./b.txt]\n"})
    assert project.repro().ok
    lock = yaml.safe_load((repo / "pipeline.lock").read_text())["stages"]["s"]
    assert set(lock["deps"]) == {"a.txt"} and set(lock["outs"]) == {"b.txt"}


def test_a_colon_in_a_plain_command_gets_the_real_yaml_error_with_its_line(
    project: Project, repo: Path
) -> None:
    pipeline = "stages:\n  s:\n    cmd: echo a: ${item} > o\n    foreach: [x]\n"
    write_files(repo, {"pipeline.yaml": pipeline})
    with pytest.raises(PipelineError) as info:
        project.repro()
    message = str(info.value)
    assert "line 3" in message and "mapping values are not allowed" in message
    assert "flow" not in message


def test_removing_a_metrics_file_from_the_list_updates_the_lock(
    project: Project, repo: Path, tether: Tether
) -> None:
    pipeline = "stages:\n  ev:\n    cmd: echo 1 > a.txt && echo 2 > b.txt\n"
    write_files(repo, {"pipeline.yaml": pipeline + "    metrics: [a.txt, b.txt]\n"})
    assert project.repro().ok
    write_files(repo, {"pipeline.yaml": pipeline + "    metrics: [a.txt]\n"})
    assert "up to date" not in tether("repro").output.lower()
    lock = yaml.safe_load((repo / "pipeline.lock").read_text())["stages"]["ev"]
    assert set(lock["metrics"]) == {"a.txt"}
    assert "up to date" in tether("repro").output.lower()


def test_a_restore_over_the_stages_own_last_output_is_not_called_an_edit(
    project: Project, repo: Path, tether: Tether
) -> None:
    pipeline = "stages:\n  s:\n    cmd: cp raw.txt model.txt\n    deps: [raw.txt]\n"
    write_files(repo, {"raw.txt": "one\n", "pipeline.yaml": pipeline + "    outs: [model.txt]\n"})
    tether("repro")
    write_files(repo, {"raw.txt": "two\n"})
    tether("repro")
    write_files(repo, {"raw.txt": "one\n"})  # the run cache restores over the last output
    out = tether("repro").output
    assert "run cache" in out and "kept the changed" not in out
    assert (repo / "model.txt").read_text() == "one\n"
    write_files(repo, {"model.txt": "my edit\n", "raw.txt": "two\n"})  # an edit is still kept
    assert "kept the changed model.txt" in tether("repro").output
