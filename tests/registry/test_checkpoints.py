# ruff: noqa: F811  (the root-of-trust fixtures are imported from test_root_of_trust)
"""Signed checkpoints of the registry's fold: a clone without a fold of its own starts from the
newest one an admin or CI key signed, and one that does not hold is ignored and reported."""

from __future__ import annotations

import base64
import json
import subprocess
from pathlib import Path

import pytest

from tests.conftest import Tether, git
from tests.registry.test_root_of_trust import Use, keys, rooted, use  # noqa: F401
from tether import signing
from tether.api import Project
from tether.events import trusted
from tether.registry import checkpoint, store
from tether.registry.state import _VERSION, to_doc


@pytest.fixture
def every(monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setattr(checkpoint, "EVERY", 3)
    return 3


def blob_of(repo: Path, text: str) -> str:
    out = subprocess.run(["git", "hash-object", "-w", "--stdin"], cwd=repo, input=text,
                         capture_output=True, text=True, check=True)  # fmt: skip
    return out.stdout.strip()


def drop_cache(project: Project) -> None:
    (project.ws.dot / "cache" / "registry-state.json").unlink()


def aliases(tether: Tether, n: int) -> None:
    for i in range(n):
        tether("model", "alias", "model@v1", f"a{i}")


def test_a_clone_without_a_fold_verifies_only_the_events_after_the_checkpoint(
    every: int, rooted: str, project: Project, tether: Tether, monkeypatch: pytest.MonkeyPatch
) -> None:
    aliases(tether, 4)  # events 2-5 by alice (an admin): a checkpoint at event 3
    assert git(project.root, "rev-parse", "--verify", checkpoint.REF).strip()
    whole = store.load_state(project.ws, full=True)
    checked: list[str] = []
    real = trusted.check_signed

    def counting(*args: object, **kw: object) -> signing.TrustedKey:
        checked.append(args[1].id)  # type: ignore[attr-defined]
        return real(*args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr("tether.registry.fold.check_signed", counting)
    drop_cache(project)
    cold = store.load_state(project.ws)
    events = len(store.event_log(project.ws).events())
    assert 0 < len(checked) < every < events  # only the events after the newest checkpoint
    assert to_doc(cold) == to_doc(whole)
    assert "a3" in Project.open(project.root).models.state().resolve("model@v1").aliases


def forge_checkpoint(project: Project, signer: signing.Signer, stage: str) -> None:
    """A checkpoint whose state puts model@v1 in ``stage``, signed by ``signer``."""
    state = store.load_state(project.ws)
    state.version("model", 1).stage = stage
    checkpoint.write(project.ws, state, 10_000, signer)


def test_a_checkpoint_signed_by_an_approver_is_ignored_and_reported(
    every: int, rooted: str, project: Project, tether: Tether, keys: dict[str, signing.KeyInfo]
) -> None:
    forge_checkpoint(project, signing.load_signer(str(keys["bob"].private_path)), "production")
    drop_cache(project)
    assert store.load_state(project.ws).version("model", 1).stage is None
    out = tether("audit", "verify", expect=1).output
    assert "checkpoint" in out and "none of the roles admin, ci" in out


def test_a_checkpoint_by_a_key_outside_the_root_is_ignored(
    every: int, rooted: str, project: Project, tether: Tether, keys: dict[str, signing.KeyInfo]
) -> None:
    forge_checkpoint(project, signing.load_signer(str(keys["mallory"].private_path)), "production")
    drop_cache(project)
    assert store.load_state(project.ws).version("model", 1).stage is None
    assert "is not signed by a key of root version 1" in tether("audit", "verify", expect=1).output


def test_a_checkpoint_changed_after_signing_is_ignored(
    every: int, rooted: str, project: Project, tether: Tether, keys: dict[str, signing.KeyInfo]
) -> None:
    aliases(tether, 3)
    raw = git(project.root, "cat-file", "blob", checkpoint.REF)
    envelope = json.loads(raw)
    doc = json.loads(base64.b64decode(envelope["payload"]))
    doc["state"]["models"]["model"][0][_VERSION.index("stage")] = "production"
    envelope["payload"] = base64.b64encode(json.dumps(doc).encode()).decode()
    blob = blob_of(project.root, json.dumps(envelope))
    git(project.root, "update-ref", checkpoint.REF, blob)
    drop_cache(project)
    assert store.load_state(project.ws).version("model", 1).stage is None
    assert "signature" in tether("audit", "verify", expect=1).output


def test_full_audit_folds_every_event_and_never_reads_a_checkpoint(
    every: int, rooted: str, project: Project, tether: Tether, repo: Path
) -> None:
    aliases(tether, 4)
    assert "audit log verified" in tether("audit", "verify", "--full").output
    git(project.root, "update-ref", checkpoint.REF, blob_of(repo, "not a checkpoint"))
    drop_cache(project)
    out = tether("audit", "verify", "--full", expect=1).output
    assert "cannot be read" in out  # reported, never used
    assert Project.open(repo).models.state().resolve("model@v1").aliases >= {"a3"}


def packed_event(project: Project) -> tuple[Path, str, bytes]:
    """A pack an audit wrote, the id of an event in it, and its bytes."""
    store_ = project.ws.store
    store_.packs.refresh()
    oid, (name, _, _) = next(iter(store_.packs.index().items()))
    return store_.packs.folder / f"{name}.pack", oid, store_.read_bytes(oid)


def test_an_audit_packs_the_events_and_the_next_one_still_sees_a_changed_byte(
    rooted: str, project: Project, tether: Tether
) -> None:
    aliases(tether, 2)
    assert "audit log verified" in tether("audit", "verify").output
    pack, oid, data = packed_event(project)
    assert project.ws.store.loose_path(oid) is None  # moved into the pack
    assert "audit log verified" in tether("audit", "verify").output  # from the packs, unchanged
    raw = pack.read_bytes()
    at = raw.index(data) + data.index(b'"actor":"') + 9
    pack.chmod(0o644)
    pack.write_bytes(raw[:at] + b"m" + raw[at + 1 :])  # one letter of the actor's name
    assert "was changed" in tether("audit", "verify", expect=1).output


def test_a_loose_copy_beside_a_packed_event_is_not_taken_on_trust(
    rooted: str, project: Project, tether: Tether
) -> None:
    tether("audit", "verify")
    _, oid, data = packed_event(project)
    planted = project.ws.store.path(oid)
    planted.parent.mkdir(parents=True, exist_ok=True)
    planted.write_bytes(data.replace(b'"actor":"', b'"actor":"m', 1))
    assert "was changed" in tether("audit", "verify", expect=1).output


def test_events_written_after_an_audit_are_checked_by_the_next(
    rooted: str, project: Project, tether: Tether
) -> None:
    from tests.registry.test_root_of_trust import forge

    tether("audit", "verify")
    forge(project, "model.alias", {"name": "model", "alias": "x", "version": 1}, "bob@example.com")
    assert "not signed" in tether("audit", "verify", expect=1).output


def test_a_fresh_clone_starts_from_the_pushed_checkpoint(
    every: int, rooted: str, project: Project, tether: Tether, repo: Path, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    aliases(tether, 4)
    origin = tmp_path / "origin.git"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(origin))
    git(repo, "remote", "add", "origin", str(origin))
    git(repo, "push", "-q", "origin", "main")
    tether("model", "push")
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(origin), str(clone))
    monkeypatch.chdir(clone)
    Project.init(clone)
    folded: list[str] = []
    real = trusted.check_signed
    monkeypatch.setattr(
        "tether.registry.fold.check_signed",
        lambda *a: folded.append(a[1].id) or real(*a),  # type: ignore[func-returns-value]
    )
    tether("model", "pull")  # verifies what arrives from the remote's checkpoint on
    assert git(clone, "rev-parse", checkpoint.REF) == git(repo, "rev-parse", checkpoint.REF)
    assert "a3" in Project.open(clone).models.state().resolve("model@v1").aliases
    assert len(folded) == 2  # the two events after the checkpoint at event 3, checked once
    assert "audit log verified" in tether("audit", "verify").output
