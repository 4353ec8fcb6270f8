"""Real runs to trace: a two-step chain made with the public API, and a small pipeline."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import click
import pytest
from click.testing import CliRunner, Result

from tests.conftest import git, write_files
from tether.api import Project
from tether.hashing import hash_bytes

PIPELINE = """
stages:
  prepare:
    cmd: mkdir -p data/clean && tr a-z A-Z < raw.txt > data/clean/text.txt
    deps: [raw.txt]
    outs: [data/clean]
  count:
    cmd: wc -c < data/clean/text.txt | tr -d ' ' > count.txt
    deps: [data/clean/text.txt]
    outs: [count.txt]
"""


@dataclass
class Chain:
    """raw.csv -> prep -> clean.csv -> train -> model.pkl"""

    prep: str
    train: str
    raw: str
    clean: str
    model: str


@pytest.fixture
def chain(project: Project, repo: Path) -> Chain:
    write_files(repo, {"train.py": "print('train')\n", "raw.csv": "a,b\n1,2\n3,4\n"})
    git(repo, "add", "train.py")
    git(repo, "commit", "-q", "-m", "code")
    with project.start_run(name="prep", experiment="demo") as prep:
        prep.log_input("raw.csv")
        prep.log_params({"rows": 2, "sep": ","})
        prep.seed(7)
        write_files(repo, {"clean.csv": "a\n1\n3\n"})
        prep.log_output("clean.csv")
    with project.start_run(name="train", experiment="demo") as train:
        train.log_input("clean.csv")
        train.log_param("lr", 0.1)
        write_files(repo, {"model.pkl": "weights"})
        train.log_output("model.pkl")
    return Chain(
        prep.id,
        train.id,
        hash_bytes(b"a,b\n1,2\n3,4\n"),
        hash_bytes(b"a\n1\n3\n"),
        hash_bytes(b"weights"),
    )


@pytest.fixture
def pipeline_run(project: Project, repo: Path) -> str:
    """A `tether repro` of two stages; the pipeline run's id."""
    write_files(repo, {"pipeline.yaml": PIPELINE, "raw.txt": "hello\n"})
    result = project.repro()
    assert result.ok and result.run
    return result.run


@pytest.fixture
def cli() -> Callable[..., Result]:
    """``tether lineage ...`` in-process, through the root command's error handling (whether or
    not the root's command map names ``lineage`` yet)."""
    from tether.cli.lineage import lineage
    from tether.cli.main import LazyGroup

    class Root(LazyGroup):
        def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
            return lineage if name == "lineage" else super().get_command(ctx, name)

    root = Root(name="tether", context_settings={"help_option_names": ["-h", "--help"]})

    def run(*args: str, expect: int = 0) -> Result:
        result = CliRunner().invoke(root, ["lineage", *args], catch_exceptions=False)
        assert result.exit_code == expect, f"tether lineage {args} exited {result.exit_code}:\n" + (
            result.output
        )
        return result

    return run
