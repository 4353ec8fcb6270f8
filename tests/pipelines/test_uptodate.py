"""A no-op `tether repro` answers from stat calls, and never says "up to date" when it is not."""

from __future__ import annotations

import os
from pathlib import Path

from tests.conftest import Tether, write_files
from tether import __version__
from tether.api import Project
from tether.pipelines.uptodate import STATE_FILE, fresh_here

PIPELINE = """
stages:
  prepare:
    cmd: mkdir -p data/clean && tr a-z A-Z < raw.txt > data/clean/text.txt
    deps: [raw.txt]
    outs: [data/clean]
  count:
    cmd: wc -c < data/clean/text.txt > count.txt
    deps: [data/clean, extra]
    params: [count.threshold]
    outs: [count.txt]
"""


def setup(repo: Path) -> None:
    write_files(
        repo,
        {
            "pipeline.yaml": PIPELINE,
            "raw.txt": "hello\n",
            "extra/a.txt": "a\n",
            "params.yaml": "count:\n  threshold: 3\n",
        },
    )


def test_the_state_of_an_up_to_date_pipeline_answers_the_next_noop(
    project: Project, repo: Path, tether: Tether
) -> None:
    setup(repo)
    assert project.repro().ok
    assert (repo / ".tether" / "cache" / STATE_FILE).exists()  # written after a full run
    assert fresh_here(__version__)
    assert "Everything is up to date." in tether("repro").output
    os.utime(repo / "raw.txt")  # touched, same bytes: still up to date (its content is checked)
    assert fresh_here(__version__)

    (repo / "params.yaml").write_text("count:\n  threshold: 4\n")
    assert not fresh_here(__version__)
    assert "count: running: param count.threshold changed: 3 -> 4" in tether("repro").output
    assert fresh_here(__version__)


def test_a_rewritten_out_with_its_old_size_and_mtime_is_still_noticed(
    project: Project, repo: Path, tether: Tether
) -> None:
    setup(repo)
    assert project.repro().ok and fresh_here(__version__)
    out = repo / "count.txt"
    before = out.stat()
    out.write_text("9" * before.st_size)  # same size
    os.utime(out, ns=(before.st_atime_ns, before.st_mtime_ns))  # the mtime put back
    assert not fresh_here(__version__)  # its ctime moved
    assert "count: restored its outs from the cache" in tether("repro").output
    assert out.read_text() != "9" * before.st_size


def test_a_file_added_inside_a_dep_folder_or_a_symlinked_dep_means_a_full_plan(
    project: Project, repo: Path, tether: Tether
) -> None:
    setup(repo)
    assert project.repro().ok and fresh_here(__version__)
    (repo / "extra" / "b.txt").write_text("b\n")
    assert not fresh_here(__version__)
    assert "count: running: dep extra changed" in tether("repro").output
    assert fresh_here(__version__)

    (repo / "raw-real.txt").write_text("hello\n")
    (repo / "raw.txt").unlink()
    (repo / "raw.txt").symlink_to("raw-real.txt")  # same content through a link
    assert not fresh_here(__version__)
    assert "Everything is up to date." in tether("repro").output  # the full plan says so
    assert not (repo / ".tether" / "cache" / STATE_FILE).exists()  # links are not fast-pathed
    assert not fresh_here(__version__)


def test_a_just_written_file_inside_a_dep_folder_is_checked_by_content(
    project: Project, repo: Path, tether: Tether
) -> None:
    import time

    setup(repo)
    assert project.repro().ok
    soon = time.time_ns() + 5_000_000_000  # an mtime no clock tick can separate from the plan
    os.utime(repo / "extra" / "a.txt", ns=(soon, soon))
    assert "Everything is up to date." in tether("repro").output  # the full plan, then kept
    assert fresh_here(__version__)  # racy, so hashed: same bytes, still fresh
    (repo / "extra" / "a.txt").write_text("A\n")  # same size, new bytes
    os.utime(repo / "extra" / "a.txt", ns=(soon, soon))
    assert not fresh_here(__version__)
