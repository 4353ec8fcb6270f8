"""A repository with a submodule: a change inside it is captured (commit and diff, untracked
files too), `diff` names it, and `reproduce` rebuilds the submodule as it was."""

from __future__ import annotations

import sys
from pathlib import Path

from tests.conftest import Tether, git, make_repo, write_files
from tether.api import Project

TRAIN = """import tether
text = open('lib/lib.py').read() + open('lib/extra.txt').read()
open('out.txt', 'w').write(text)
tether.log_output('out.txt')
"""


def with_submodule(repo: Path, tmp_path: Path) -> None:
    lib = make_repo(tmp_path / "lib")
    write_files(lib, {"lib.py": "VALUE = 1\n", "extra.txt": "committed\n"})
    git(lib, "add", "-A")
    git(lib, "commit", "-qm", "lib")
    # git refuses file:// submodules by default: allowed for this test's git only
    git(repo, "-c", "protocol.file.allow=always", "submodule", "add", "-q", str(lib), "lib")
    write_files(repo, {"train.py": TRAIN})
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "with lib")


def test_a_change_inside_a_submodule_is_captured_diffed_and_reproduced(
    repo: Path, project: Project, tether: Tether, tmp_path: Path
) -> None:
    with_submodule(repo, tmp_path)
    tether("run", "-n", "plain", "--", sys.executable, "train.py")
    write_files(repo, {"lib/lib.py": "VALUE = 2\n", "lib/extra.txt": "edited\n", "lib/new.py": ""})
    tether("run", "-n", "changed", "--", sys.executable, "train.py")

    code = project.get_run("changed")["code"]
    (sub,) = code["submodules"]
    assert sub["path"] == "lib" and sub["dirty"] and sub["diff"]
    assert sub["commit"] == git(repo / "lib", "rev-parse", "HEAD").strip()
    patch = project.ws.store.read_bytes(sub["diff"])
    assert b"VALUE = 2" in patch and b"new.py" in patch  # untracked files too

    d = project.diff_runs("plain", "changed")
    assert "code: submodule lib: uncommitted changes differ" in d.causes
    assert "nondeterminism" not in tether("diff", "plain", "changed").output

    for name in ("changed", "plain"):
        v = project.reproduce(name)
        assert v.verdict == "REPRODUCED", (name, v.reason)
    assert (repo / "lib" / "lib.py").read_text() == "VALUE = 2\n"  # the user's tree untouched


def test_a_submodule_moved_to_another_commit_is_checked_out_there(
    repo: Path, project: Project, tether: Tether, tmp_path: Path
) -> None:
    with_submodule(repo, tmp_path)
    write_files(repo, {"lib/extra.txt": "second commit\n"})
    git(repo / "lib", "commit", "-qam", "moved")  # committed in the submodule only
    tether("run", "-n", "moved", "--", sys.executable, "train.py")
    (sub,) = project.get_run("moved")["code"]["submodules"]
    assert sub["commit"] == git(repo / "lib", "rev-parse", "HEAD").strip() and not sub["dirty"]
    v = project.reproduce("moved")
    assert v.verdict == "REPRODUCED", v.reason


def cloned_inside(repo: Path, *, added: bool) -> None:
    """A git repository cloned inside the project, no submodule: left untracked, or `git add`ed
    as a bare gitlink (git warns "embedded repository"), with no .gitmodules either way."""
    lib = make_repo(repo / "lib")
    write_files(lib, {"lib.py": "VALUE = 1\n", "extra.txt": "committed\n"})
    git(lib, "add", "-A")
    git(lib, "commit", "-qm", "lib")
    write_files(repo, {"train.py": TRAIN})
    git(repo, "add", "train.py", *(["lib"] if added else []))
    git(repo, "commit", "-qm", "train")
    assert not (repo / ".gitmodules").exists()


def test_a_repository_cloned_inside_the_project_is_captured_diffed_and_reproduced(
    repo: Path, project: Project, tether: Tether
) -> None:
    cloned_inside(repo, added=False)
    tether("run", "-n", "one", "--", sys.executable, "train.py")
    write_files(repo, {"lib/lib.py": "VALUE = 2\n"})
    tether("run", "-n", "two", "--", sys.executable, "train.py")
    (sub,) = project.get_run("two")["code"]["submodules"]
    assert sub["path"] == "lib" and sub["nested"] and sub["dirty"]
    assert sub["commit"] == git(repo / "lib", "rev-parse", "HEAD").strip()
    d = project.diff_runs("one", "two")
    assert "code: repository lib: uncommitted changes differ" in d.causes
    assert "nondeterminism" not in tether("diff", "one", "two").output
    write_files(repo, {"lib/lib.py": "VALUE = 1\n"})
    v = project.reproduce("two")  # rebuilt from this clone's lib, with the edit
    assert v.verdict == "REPRODUCED", v.reason


def test_a_bare_gitlink_with_no_gitmodules_is_captured_when_changed(
    repo: Path, project: Project, tether: Tether
) -> None:
    cloned_inside(repo, added=True)
    tether("run", "-n", "one", "--", sys.executable, "train.py")
    write_files(repo, {"lib/lib.py": "VALUE = 2\n"})
    tether("run", "-n", "two", "--", sys.executable, "train.py")
    d = project.diff_runs("one", "two")
    assert "code: repository lib: uncommitted changes differ" in d.causes
    v = project.reproduce("one")  # unchanged: its gitlink's commit, from this clone's lib
    assert v.verdict == "REPRODUCED", v.reason
