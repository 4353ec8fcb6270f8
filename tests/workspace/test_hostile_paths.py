"""Paths, as git checks them: what a teammate's pointer or folder manifest names can never be
written outside its path, into ``.git``, or through a symlink.

Each test is an attack as a user would meet it. The attacker has push access to the git remote
(a bare repository) and the data remote (a folder) and a Tether build of their own: their
content is crafted with Tether's internals. The victim clones and uses only the CLI.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import Tether, git, make_repo, snapshot, write_files
from tether.api import Project
from tether.errors import UnsafePathError
from tether.objects.transfer import push_objects
from tether.objects.tree import SYMLINK_MODE, Tree, TreeEntry
from tether.workspace.checkout import apply_checkout
from tether.workspace.materialize import materialize
from tether.workspace.pointer import PointerFile, write_pointer
from tether.workspace.sync import open_remote, push_ids

HOOK = b"#!/bin/sh\ntouch pwned\n"  # run by git at the top of the work tree
PUSH = {"jobs": 1, "pack_threshold": 0, "pack_size": 1 << 20}  # one object, sent as it is


@dataclass
class Team:
    tmp: Path
    origin: Path  # the bare git remote
    attacker: Path
    victim: Path
    monkeypatch: pytest.MonkeyPatch

    def as_attacker(self) -> Project:
        self.monkeypatch.chdir(self.attacker)
        return Project.open(self.attacker)

    def as_victim(self) -> None:
        self.monkeypatch.chdir(self.victim)

    def publish(self, message: str) -> None:
        """The attacker commits and pushes to the git remote."""
        git(self.attacker, "add", "-A")
        git(self.attacker, "commit", "-qm", message)
        git(self.attacker, "push", "-q", "origin", "main")


@pytest.fixture
def team(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tether: Tether) -> Team:
    """A project on a bare git remote and a folder data remote, with two tracked folders
    (``good/``, ``data/``) the victim has pulled."""
    origin = tmp_path / "origin.git"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(origin))
    attacker = make_repo(tmp_path / "work" / "attacker")
    Project.init(attacker)
    t = Team(tmp_path, origin, attacker, tmp_path / "work" / "victim", monkeypatch)
    project = t.as_attacker()
    write_files(attacker, {"good/a.csv": "1,2\n", "good/b.csv": "3,4\n", "data/x.csv": "x\n"})
    project.add(["good", "data"])
    project.add_remote("origin", str(tmp_path / "data-remote"))
    project.push()
    git(attacker, "remote", "add", "origin", str(origin))
    t.publish("data")
    git(tmp_path, "clone", "-q", str(origin), str(t.victim))
    make_repo(t.victim)
    t.as_victim()
    tether("pull")
    assert (t.victim / "data/x.csv").read_text() == "x\n"
    return t


def _blob(project: Project, data: bytes) -> str:
    return project.ws.store.put_bytes(data)


def _plant_tree(project: Project, pointer: str, entries: list[TreeEntry], path: str) -> str:
    """The attacker's own Tether: a manifest and a pointer written as they like, pushed."""
    tree = Tree.build(entries)
    project.ws.store.put_bytes(tree.data, tree.id)
    project.ws.store.barrier()
    ptr = PointerFile(path=path, kind="dir", id=tree.id, size=tree.size, files=len(entries))
    write_pointer(project.ws.root / pointer, ptr)
    push_ids(project.ws, {tree.id})
    return tree.id


def _also_change_good(project: Project) -> None:
    """A legitimate change to the other tracked folder, published with the attack."""
    write_files(project.ws.root, {"good/c.csv": "5,6\n"})
    (added,) = project.add(["good"])
    push_ids(project.ws, {added.id})


def _untouched(t: Team) -> dict[str, object]:
    """What must not change: everything beside the work tree, and the victim's .git/hooks."""
    return {
        "outside": sorted(p.name for p in t.tmp.iterdir()),
        "beside": sorted(p.name for p in (t.tmp / "work").iterdir()),
        "hooks": snapshot(t.victim / ".git/hooks"),
    }


def test_a_manifest_entry_cannot_write_outside_the_repository(team: Team, tether: Tether) -> None:
    project = team.as_attacker()
    blob = _blob(project, b"written outside\n")
    _plant_tree(project, "data.tether", [TreeEntry("../../outside.txt", blob, 16)], "data")
    _also_change_good(project)
    team.publish("data: update")

    team.as_victim()
    git(team.victim, "pull", "-q", "origin", "main")
    before = _untouched(team)
    out = tether("pull", expect=4).output
    assert "data.tether" in out and "'../../outside.txt'" in out and "climbs out" in out
    assert not (team.tmp / "outside.txt").exists()
    assert not (team.tmp / "work/outside.txt").exists()
    assert _untouched(team) == before
    # the refused folder is left as it was; the other pointer was still checked out
    assert (team.victim / "data/x.csv").read_text() == "x\n"
    assert (team.victim / "good/c.csv").read_text() == "5,6\n"

    out = tether("checkout", "--force", expect=4).output
    assert "'../../outside.txt'" in out
    assert not (team.tmp / "outside.txt").exists()
    assert (team.victim / "data/x.csv").read_text() == "x\n"
    assert _untouched(team) == before

    out = tether("fsck", expect=1).output
    assert "refused" in out and "data.tether" in out and "'../../outside.txt'" in out


def test_a_pointer_cannot_reach_into_git_hooks(team: Team, tether: Tether) -> None:
    """``path: .git/hooks`` once wrote an executable pre-commit hook, and with --force deleted
    git's sample hooks. A pointer governs only its sibling: this one is refused whole."""
    project = team.as_attacker()
    blob = _blob(project, HOOK)
    _plant_tree(
        project, "data.tether", [TreeEntry("pre-commit", blob, len(HOOK), 0o755)], ".git/hooks"
    )
    team.publish("data: update")

    team.as_victim()
    git(team.victim, "pull", "-q", "origin", "main")
    hooks = snapshot(team.victim / ".git/hooks")
    assert hooks  # git's sample hooks: what --force used to delete
    for command in (["pull"], ["pull", "--force"], ["checkout", "--force"]):
        out = tether(*command, expect=4).output
        assert "data.tether says path '.git/hooks'" in out and "governs only the 'data'" in out
        assert snapshot(team.victim / ".git/hooks") == hooks
        assert not (team.victim / ".git/hooks/pre-commit").exists()
        assert (team.victim / "data/x.csv").read_text() == "x\n"
        assert (team.victim / "good/a.csv").read_text() == "1,2\n"
    out = tether("checkout", "--dry-run", expect=4).output
    assert "refused" in out and ".git/hooks" in out
    out = tether("fsck", expect=1).output
    assert "unreadable" in out and "data.tether says path '.git/hooks'" in out
    git(team.victim, "commit", "-q", "--allow-empty", "-m", "no hook runs")
    assert not (team.victim / "pwned").exists()


@pytest.mark.parametrize(
    "entry",
    [".git/hooks/pre-commit", "sub/.GIT/config", ".git./hooks/x", "GIT~1/hooks/x", ".tether/x"],
)
def test_a_manifest_cannot_write_into_a_git_folder_in_any_spelling(
    team: Team, tether: Tether, entry: str
) -> None:
    project = team.as_attacker()
    blob = _blob(project, HOOK)
    _plant_tree(project, "data.tether", [TreeEntry(entry, blob, len(HOOK), 0o755)], "data")
    team.publish("data: update")

    team.as_victim()
    git(team.victim, "pull", "-q", "origin", "main")
    out = tether("pull", expect=4).output
    assert f"{entry!r}" in out and "reserved for git and Tether" in out
    assert snapshot(team.victim / "data") == {"x.csv": (b"x\n", 0)}
    assert tether("fsck", expect=1).output.count("refused") == 1


@pytest.mark.parametrize("target", ["/etc", "../../..", "../data-remote", "sub/up/../.."])
def test_a_symlink_in_a_manifest_cannot_point_outside(
    team: Team, tether: Tether, target: str
) -> None:
    """``sub/up -> ..`` stays inside on its own; ``sub/up/../..`` through it leads out."""
    project = team.as_attacker()
    link = target.encode()
    entries = [TreeEntry("link", _blob(project, link), len(link), SYMLINK_MODE, target)]
    if target.startswith("sub/up"):
        entries.append(TreeEntry("sub/up", _blob(project, b".."), 2, SYMLINK_MODE, ".."))
    _plant_tree(project, "data.tether", entries, "data")
    team.publish("data: update")

    team.as_victim()
    git(team.victim, "pull", "-q", "origin", "main")
    out = tether("pull", expect=4).output
    assert "data.tether" in out and f"symlink 'link' to {target!r}" in out
    assert snapshot(team.victim / "data") == {"x.csv": (b"x\n", 0)}
    assert "refused" in tether("fsck", expect=1).output


def test_two_entries_that_are_one_file_on_macos_and_windows_are_refused(
    team: Team, tether: Tether
) -> None:
    project = team.as_attacker()
    entries = [
        TreeEntry("README.md", _blob(project, b"one"), 3),
        TreeEntry("readme.md", _blob(project, b"two"), 3),
    ]
    _plant_tree(project, "data.tether", entries, "data")
    team.publish("data: update")

    team.as_victim()
    git(team.victim, "pull", "-q", "origin", "main")
    out = tether("pull", expect=4).output
    assert "'README.md' and 'readme.md'" in out and "same file" in out
    assert snapshot(team.victim / "data") == {"x.csv": (b"x\n", 0)}


def test_a_malformed_manifest_is_a_clear_error_not_a_crash(team: Team, tether: Tether) -> None:
    project = team.as_attacker()
    data = b'{"tether":"tree","format":1,"entries":[["a.csv",{"id":1},1,420]]}'
    oid = project.ws.store.put_bytes(data)
    project.ws.store.barrier()
    write_pointer(team.attacker / "data.tether", PointerFile("data", "dir", oid, 1, 1))
    push_objects(project.ws.store, open_remote(project.ws), {oid}, **PUSH)
    _also_change_good(project)
    team.publish("data: update")

    team.as_victim()
    git(team.victim, "pull", "-q", "origin", "main")
    out = tether("pull", expect=4).output
    assert f"data.tether: folder manifest {oid} is corrupt: 'a.csv' has id a dict" in out
    assert (team.victim / "good/c.csv").read_text() == "5,6\n"
    assert (team.victim / "data/x.csv").read_text() == "x\n"
    assert f"folder manifest {oid} is corrupt" in tether("fsck", expect=1).output


def test_a_tracked_folder_committed_as_a_symlink_is_not_written_through(
    team: Team, tether: Tether
) -> None:
    """git checks out a symlink ``data -> ../outside`` committed in place of the folder: the
    pointer beside it must not fill, or empty, what the link points at."""
    outside = team.tmp / "work" / "outside"
    write_files(outside, {"precious.txt": "mine\n"})
    project = team.as_attacker()
    git(team.attacker, "rm", "-q", "--cached", "-r", "--ignore-unmatch", "data")
    (team.attacker / ".gitignore").write_text(
        (team.attacker / ".gitignore").read_text().replace("/data\n", "")
    )
    os.rename(team.attacker / "data", team.tmp / "attacker-data")
    os.symlink("../outside", team.attacker / "data")
    del project
    team.publish("data: a link")

    team.as_victim()
    (team.victim / "data/x.csv").unlink()
    (team.victim / "data").rmdir()
    git(team.victim, "pull", "-q", "origin", "main")
    assert os.readlink(team.victim / "data") == "../outside"
    for command in (["pull"], ["checkout", "--force"]):
        out = tether(*command, expect=4).output
        assert "data is a symlink" in out
        assert snapshot(outside) == {"precious.txt": (b"mine\n", 0)}
    assert (team.victim / "good/a.csv").read_text() == "1,2\n"


def test_a_symlinked_folder_planted_in_the_tracked_folder_is_not_written_through(
    repo: Path, project: Project, tmp_path: Path, tether: Tether
) -> None:
    """Refused, and only that folder: the other tracked path is still checked out."""
    write_files(repo, {"data/sub/a.csv": "a\n", "data/top.csv": "t\n", "models/m.bin": "w"})
    project.add(["data", "models/m.bin"])
    outside = tmp_path / "outside"
    write_files(outside, {"a.csv": "theirs\n"})
    (repo / "data/sub/a.csv").unlink()
    (repo / "data/sub").rmdir()
    (repo / "data/top.csv").unlink()
    (repo / "models/m.bin").unlink()
    os.symlink(outside, repo / "data/sub")
    out = tether("checkout", "--force", expect=4).output
    assert "data/sub" in out and "outside the tracked folder" in out
    assert snapshot(outside) == {"a.csv": (b"theirs\n", 0)}
    assert not (repo / "data/top.csv").exists()  # the refused folder is left as it is
    assert (repo / "models/m.bin").read_text() == "w"


def test_a_symlinked_folder_planted_between_plan_and_write_redirects_nothing(
    repo: Path, project: Project, tmp_path: Path
) -> None:
    """The write-time guard: the plan saw real folders; by the time it is applied, one is a
    link to somewhere else. Neither a write nor a delete goes through it."""
    write_files(repo, {"data/new/a.csv": "a\n", "data/old/z.csv": "z\n", "data/top.csv": "t\n"})
    project.add(["data"])
    (repo / "data/new/a.csv").unlink()
    (repo / "data/new").rmdir()
    (repo / "data/top.csv").unlink()
    write_files(repo, {"data/old/extra.csv": "to delete\n"})
    plan = project.plan_checkout()
    assert {(a.op, a.path) for a in plan.actions} == {
        ("write", "data/new/a.csv"),
        ("write", "data/top.csv"),
        ("delete", "data/old/extra.csv"),
    }
    outside = tmp_path / "outside"
    write_files(outside, {"new/keep.txt": "k\n", "old/extra.csv": "theirs\n"})
    os.symlink(outside / "new", repo / "data/new")
    os.rename(repo / "data/old", tmp_path / "moved-old")
    os.symlink(outside / "old", repo / "data/old")

    with pytest.raises(UnsafePathError, match="data/new is a symlink") as info:
        apply_checkout(project.ws, plan, force=True)
    assert "data/old is a symlink" in str(info.value)
    assert snapshot(outside) == {"new/keep.txt": (b"k\n", 0), "old/extra.csv": (b"theirs\n", 0)}
    assert (repo / "data/top.csv").read_text() == "t\n"  # the rest was written


def test_a_renamed_pointer_is_refused_with_the_way_out(
    repo: Path, project: Project, tether: Tether
) -> None:
    write_files(repo, {"data/a": "1", "models/m.bin": "w"})
    project.add(["data", "models/m.bin"])
    assert "path: m.bin" in (repo / "models/m.bin.tether").read_text()
    os.rename(repo / "data.tether", repo / "dataset.tether")
    out = tether("status", expect=4).output
    assert "dataset.tether says path 'data'" in out and "governs only the 'dataset'" in out
    os.rename(repo / "dataset.tether", repo / "data.tether")
    tether("status")


def test_add_refuses_a_folder_a_checkout_would_refuse(
    repo: Path, project: Project, tether: Tether
) -> None:
    """A manifest that no teammate could check out is never published."""
    write_files(repo, {"data/README.md": "1", "data/readme.md": "2"})
    out = tether("add", "data", expect=4).output
    assert "'README.md' and 'readme.md'" in out
    assert not (repo / "data.tether").exists()
    write_files(repo, {"lib/vendor/.git/config": "[core]\n", "lib/a.py": "x"})
    out = tether("add", "lib", expect=4).output
    assert "'vendor/.git/config'" in out and "reserved" in out
    assert not (repo / "lib.tether").exists()


def test_a_refused_pointer_does_not_stop_a_checkout_of_another_path(
    team: Team, tether: Tether
) -> None:
    project = team.as_attacker()
    _also_change_good(project)
    _plant_tree(project, "data.tether", [TreeEntry("x", _blob(project, b"x"), 1)], ".git/hooks")
    team.publish("data: update")

    team.as_victim()
    git(team.victim, "pull", "-q", "origin", "main")
    tether("pull", "good")  # the refused pointer is not one of the paths asked for
    assert (team.victim / "good/c.csv").read_text() == "5,6\n"
    out = tether("checkout", "data", "good", expect=4).output
    assert "data.tether says path '.git/hooks'" in out
    assert "data.tether" in tether("fetch", expect=4).output


def test_restoring_a_folder_by_id_checks_its_manifest_and_its_path(
    repo: Path, project: Project, tmp_path: Path
) -> None:
    """What a pipeline's run cache or a reproduction restores by id is checked as a checkout
    is: nothing is removed or written when the manifest or the path is refused."""
    store = project.ws.store
    blob = store.put_bytes(b"x")
    bad = Tree.build([TreeEntry("ok.txt", blob, 1), TreeEntry("../../escape.txt", blob, 1)])
    good = Tree.build([TreeEntry("ok.txt", blob, 1)])
    for tree in (bad, good):
        store.put_bytes(tree.data, tree.id)
    write_files(repo, {"out/mine.txt": "mine"})
    with pytest.raises(UnsafePathError, match=r"'\.\./\.\./escape\.txt'"):
        materialize(project.ws, "out", bad.id)
    assert (repo / "out/mine.txt").read_text() == "mine"
    assert not (tmp_path / "escape.txt").exists()
    for rel in ("../out", ".git/hooks", "out/../.git"):
        with pytest.raises(UnsafePathError, match="a restore of"):
            materialize(project.ws, rel, good.id)
    outside = tmp_path / "outside"
    outside.mkdir()
    os.symlink(outside, repo / "linked")
    with pytest.raises(UnsafePathError, match="linked is a symlink"):
        materialize(project.ws, "linked/out", good.id)
    assert list(outside.iterdir()) == []
    materialize(project.ws, "out", good.id)
    assert snapshot(repo / "out") == {"ok.txt": (b"x", 0)}
