"""`tether env export` of a run whose interpreter could not be known refuses, never exports an
empty environment as if it were one."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import Tether, git, write_files


def test_a_run_of_a_shell_script_has_no_environment_to_export(repo: Path, tether: Tether) -> None:
    write_files(repo, {"go.sh": "#!/bin/sh\necho hi\n"})
    (repo / "go.sh").chmod(0o755)
    git(repo, "add", "go.sh")
    git(repo, "commit", "-qm", "script")
    tether("run", "-n", "sh", "--", "./go.sh")
    out = tether("env", "export", "sh", "--format", "requirements", expect=4).output
    assert "not a Python interpreter Tether could inspect" in out
    assert "Python ?" not in out
