"""The exit-code table (tether.cli.exitcodes, printed in docs/cli.md) against the code: the
errors' codes, what each command raises, and real invocations as CI would read them."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

import tether.cli
from tests.conftest import BIN, Tether, corrupt_object, git, write_files
from tests.test_docs import leaf_commands
from tether import errors
from tether.api import Project
from tether.cli import exitcodes
from tether.cli.main import LazyGroup, cli
from tether.repro import reproduce

CLI = Path(tether.cli.__file__).parent
VERDICTS = {exitcodes.NEGATIVE, exitcodes.NOT_CARRIED_OUT}


def _error_classes(root: type[errors.TetherError]) -> list[type[errors.TetherError]]:
    out = [root]
    for sub in root.__subclasses__():
        out += _error_classes(sub)
    return out


def test_the_errors_codes_are_the_tables() -> None:
    assert errors.TetherError.exit_code == exitcodes.ERROR == 4
    assert errors.UsageError.exit_code == exitcodes.USAGE == 2
    assert click.UsageError("x").exit_code == exitcodes.USAGE
    assert errors.RetainedObjectsError.exit_code == exitcodes.NOT_CARRIED_OUT
    for cls in _error_classes(errors.TetherError):  # every error, wherever it is defined
        if cls is not errors.LaunchError:
            assert str(cls.exit_code) in exitcodes.MEANINGS, cls
            assert cls.__module__ == "tether.errors", f"{cls} is outside the one tree"
            assert cls.__name__ in (errors.__doc__ or ""), f"{cls} is not in the drawn tree"
    launch_codes = {exitcodes.RUN_OWN_FAILURE, exitcodes.NOT_EXECUTABLE, exitcodes.NOT_FOUND}
    assert launch_codes == {125, 126, 127} <= set(exitcodes.BY_COMMAND["run"])
    assert (exitcodes.INTERNAL, exitcodes.INTERRUPTED) == (70, 130)
    assert {str(exitcodes.INTERNAL), str(exitcodes.INTERRUPTED)} <= set(exitcodes.MEANINGS)
    verdicts = {code: reproduce.EXIT[v] for v, code in [("DIFFERENT", 1), ("FAILED", 3)]}
    assert set(exitcodes.BY_COMMAND["reproduce"]) == set(verdicts.values()) == VERDICTS
    assert reproduce.EXIT["REPRODUCED"] == exitcodes.OK


def test_the_table_names_only_real_commands() -> None:
    real = {" ".join(path) for path in leaf_commands()}
    assert set(exitcodes.BY_COMMAND) <= real


def _exit_calls(tree: ast.AST) -> list[ast.Call]:
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            f = node.func
            name = (
                f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else ""
            )
            if name in ("SystemExit", "exit", "Exit"):
                out.append(node)
    return out


def test_every_exit_in_the_cli_names_its_code() -> None:
    """No bare number: a command exits with a name from exitcodes, or passes a status on
    (the child's, the verdict's, the error's)."""
    bare = []
    for path in sorted(CLI.glob("*.py")):
        for call in _exit_calls(ast.parse(path.read_text())):
            if any(isinstance(a, ast.Constant) for a in call.args):
                bare.append(f"{path.name}:{call.lineno}")
    assert not bare, f"exit with a bare number (use tether.cli.exitcodes): {bare}"


def _codes_used(module: str) -> dict[str, tuple[set[int], set[str]]]:
    """Per top-level function: the exitcodes it names, and the module's functions it calls."""
    tree = ast.parse((CLI / f"{module}.py").read_text())
    out: dict[str, tuple[set[int], set[str]]] = {}
    for fn in tree.body:
        if not isinstance(fn, ast.FunctionDef):
            continue
        codes, calls = set(), set()
        for node in ast.walk(fn):
            named = isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
            if named and node.value.id == "exitcodes":
                codes.add(getattr(exitcodes, node.attr))
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                calls.add(node.func.id)
        out[fn.name] = (codes, calls)
    return out


def _verdicts_of(command: click.Command) -> set[int]:
    assert command.callback is not None
    module = command.callback.__module__.rsplit(".", 1)[-1]
    funcs = _codes_used(module)
    seen, todo, found = set(), [command.callback.__name__], set()
    while todo:
        name = todo.pop()
        if name in seen or name not in funcs:
            continue
        seen.add(name)
        codes, calls = funcs[name]
        found |= codes
        todo += calls
    return found & VERDICTS


# The commands whose verdict comes from a value, not a name in cli/: checked above and below.
FROM_A_VALUE = {
    "reproduce": "Verdict.exit_code",
    "gc": "RetainedObjectsError",
    "runs purge": "RetainedObjectsError",
}


def test_the_table_lists_exactly_the_verdicts_each_command_gives() -> None:
    wrong = {}
    for path in leaf_commands():
        name = " ".join(path)
        if name in FROM_A_VALUE:
            continue
        command: click.Command | None = cli
        for word in path:
            assert isinstance(command, click.Group)
            command = command.get_command(click.Context(command), word)
        assert command is not None
        listed = set(exitcodes.BY_COMMAND.get(name, {})) & VERDICTS
        used = _verdicts_of(command)
        if listed != used:
            wrong[name] = (sorted(listed), sorted(used))
    assert not wrong, f"table vs code (listed, raised): {wrong}"


# -- real invocations ----------------------------------------------------------------------------
def test_a_usage_error_exits_2_and_an_error_4(repo: Path, tether: Tether) -> None:
    assert "No such option" in tether("runs", "list", "--bogus", expect=2).output
    assert "No such command" in tether("frobnicate", expect=2).output
    tether("runs", "list", "--where", "bogus.acc > 1", expect=2)
    write_files(repo, {"data/a.txt": "a"})
    Project.open(repo).add(["data"])
    # the cache lost the object, the work tree lost the file: `checkout` cannot restore it
    for gone in (repo / ".tether" / "objects", repo / ".tether" / "packs", repo / "data"):
        shutil.rmtree(gone)
    out = tether("checkout", expect=4).output
    assert "missing from the cache" in out and "tether pull" in out
    assert "no run" in tether("runs", "show", "nope", expect=4).output.lower()


def test_a_check_that_finds_a_problem_exits_1(repo: Path, tether: Tether) -> None:
    write_files(repo, {"a.txt": "alpha"})
    with Project.open(repo) as project:
        (added,) = project.add(["a.txt"])
        corrupt_object(project.ws.store, added.id)
    assert "corrupt" in tether("fsck", expect=1).output


def test_a_different_reproduction_exits_1(repo: Path) -> None:
    write_files(
        repo, {"noise.py": "import random, tether\ntether.log_metric('r', random.random())\n"}
    )
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "noise")
    tether_bin = str(BIN / "tether")
    run = [tether_bin, "run", "-n", "noise", "--", sys.executable, "noise.py"]
    assert subprocess.run(run, cwd=repo, capture_output=True, check=False).returncode == 0
    again = subprocess.run(
        [tether_bin, "reproduce", "noise"], cwd=repo, capture_output=True, text=True, check=False
    )
    assert again.returncode == 1 and "DIFFERENT" in again.stdout + again.stderr


# -- what no command raises on purpose --------------------------------------------------------
@click.command()
def boom() -> None:
    {}["no such key"]  # a bug


@click.command()
def interrupted() -> None:
    raise KeyboardInterrupt


class _WithFaults(LazyGroup):
    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        return {"boom": boom, "interrupted": interrupted}.get(name)


def _faulty_cli() -> click.Group:
    return click.group(cls=_WithFaults)(lambda: None)


def test_a_bug_exits_70_with_one_line_and_the_traceback_in_a_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.delenv("TETHER_DEBUG", raising=False)
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)  # read TMPDIR again
    result = CliRunner().invoke(_faulty_cli(), ["boom"])
    assert result.exit_code == exitcodes.INTERNAL
    assert "internal error (a bug in tether): KeyError: 'no such key'" in result.output
    assert "Traceback" not in result.output
    (saved,) = tmp_path.glob("tether-internal-error-*.txt")
    assert str(saved) in result.output
    assert "Traceback" in saved.read_text() and "no such key" in saved.read_text()
    monkeypatch.setenv("TETHER_DEBUG", "1")
    debug = CliRunner().invoke(_faulty_cli(), ["boom"])
    assert debug.exit_code == exitcodes.INTERNAL and "Traceback" in debug.output


def test_ctrl_c_exits_130() -> None:
    result = CliRunner().invoke(_faulty_cli(), ["interrupted"])
    assert result.exit_code == exitcodes.INTERRUPTED and "interrupted" in result.output


def test_the_tether_script_exits_with_the_code_too(repo: Path) -> None:
    """Through the installed script and a real process, not only click's test runner."""
    env = {**os.environ, "TETHER_DEBUG": ""}
    proc = subprocess.run(
        [str(BIN / "tether"), "runs", "show", "nope"], cwd=repo, env=env, capture_output=True
    )
    assert proc.returncode == exitcodes.ERROR and proc.stderr.startswith(b"error: ")
