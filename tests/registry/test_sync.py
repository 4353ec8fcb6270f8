# ruff: noqa: F811  (the root-of-trust fixtures are imported from test_root_of_trust)
"""Two clones of one registry through a bare remote: a pull while ahead loses nothing, two
clones that both registered reconcile with a merge event, the same version made on both sides
is refused with the way out, an event forged on the remote is refused by name, the signed head
is never taken from the remote unverified, and git's errors are shown whole."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import Tether, git
from tests.registry.test_root_of_trust import Use, forge, keys, rooted, use  # noqa: F401
from tether import signing
from tether.api import Project
from tether.events import gitmirror
from tether.gitio.repo import git as git_bytes
from tether.registry import store
from tether.registry.fold import LOG
from tether.registry.state import to_doc
from tether.runs import live


@dataclass
class Clones:
    a: Path  # the first clone (the `repo` fixture)
    b: Path  # a second clone of the same remote
    origin: Path
    monkeypatch: pytest.MonkeyPatch

    def at(self, where: Path) -> Project:
        self.monkeypatch.chdir(where)
        return Project.open(where)


def train(root: Path, weights: bytes) -> str:
    """A run in the clone at ``root`` that wrote model.pkl; its id."""
    (root / "model.pkl").write_bytes(weights * 20_000)
    with live.start(Project.open(root).ws, name="train", command=["python", "train.py"]) as run:
        run.log_output("model.pkl")
        run.log_metric("accuracy", 0.9)
        return run.id


def make_clones(repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Clones:
    origin = tmp_path / "origin.git"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(origin))
    git(repo, "remote", "add", "origin", str(origin))
    git(repo, "push", "-q", "origin", "main")
    other = tmp_path / "other"
    git(tmp_path, "clone", "-q", str(origin), str(other))
    for key, value in (("user.email", "bo@example.com"), ("user.name", "Bo")):
        git(other, "config", key, value)
    Project.init(other)
    return Clones(repo, other, origin, monkeypatch)


@pytest.fixture
def plain(trained: str, repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
          tether: Tether) -> Clones:  # fmt: skip
    """No root of trust: model@v1 registered and pushed from the first clone, pulled by the
    second."""
    tether("model", "register", "model", "--run", trained, "--path", "model.pkl")
    clones = make_clones(repo, tmp_path, monkeypatch)
    tether("model", "push")
    clones.at(clones.b)
    assert "1 new registry events" in tether("model", "pull").output
    return clones


@pytest.fixture
def pinned(rooted: str, repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
           tether: Tether) -> Clones:  # fmt: skip
    """Under a root of trust: model@v1 registered by alice and pushed; the second clone pins
    the root (TETHER_ROOT_KEY, as its admins told it) and pulls."""
    clones = make_clones(repo, tmp_path, monkeypatch)
    tether("model", "push")
    pin = json.loads((repo / ".tether" / "trust.json").read_text())
    monkeypatch.setenv("TETHER_ROOT_KEY", pin["fingerprint"])
    clones.at(clones.b)
    assert "fast-forwarded" in tether("model", "pull").output
    return clones


def state_of(root: Path) -> dict[str, object]:
    return to_doc(store.load_state(Project.open(root).ws))


def same_fold(root: Path) -> None:
    """The cached (incremental) fold and a whole fold from the first event agree."""
    ws = Project.open(root).ws
    assert to_doc(store.load_state(ws)) == to_doc(store.load_state(ws, full=True))


def head_ref(root: Path) -> str:
    return git(root, "rev-parse", store.HEAD_REF).strip()


def test_a_pull_while_ahead_fails_nothing_and_loses_nothing(
    plain: Clones, trained: str, tether: Tether
) -> None:
    project = plain.at(plain.a)
    tether("model", "register", "model", "--run", trained, "--path", "model.pkl")
    out = tether("model", "pull").output
    assert "ahead of origin by 1 event(s)" in out and "tether model push" in out
    assert project.models.state().resolve("model@v2").run == trained
    assert "pushed the registry to origin" in tether("model", "push").output
    plain.at(plain.b)
    assert "fast-forwarded" in tether("model", "pull").output
    assert "up to date" in tether("model", "pull").output
    assert Project.open(plain.b).models.state().resolve("model@v2").run == trained


def test_two_clones_that_registered_different_models_reconcile(
    plain: Clones, trained: str, tether: Tether
) -> None:
    plain.at(plain.a)
    tether("model", "register", "model", "--run", trained, "--path", "model.pkl")
    tether("model", "push")
    plain.at(plain.b)
    theirs = train(plain.b, b"other ")
    tether("model", "register", "other", "--run", theirs, "--path", "model.pkl")
    out = tether("model", "pull").output
    assert "1 new registry events" in out and "merge event" in out
    tether("model", "push")
    plain.at(plain.a)
    assert "fast-forwarded" in tether("model", "pull").output
    for clone in (plain.a, plain.b):
        plain.at(clone)
        assert {"model@v1", "model@v2", "other@v1"} <= set(tether("model", "list").output.split())
        assert "audit log verified" in tether("audit", "verify").output
        same_fold(clone)
    assert state_of(plain.a) == state_of(plain.b)
    assert git(plain.a, "rev-parse", "other@v1") == git(plain.b, "rev-parse", "other@v1")


def test_signed_clones_merge_and_audit_passes_in_both(
    pinned: Clones, rooted: str, tether: Tether
) -> None:
    pinned.at(pinned.a)
    tether("model", "register", "model", "--run", rooted, "--path", "model.pkl")  # model@v2
    tether("model", "push")
    b = pinned.at(pinned.b)
    tether("model", "register", "other", "--run", train(pinned.b, b"other "), "--path", "model.pkl")
    pulled = b.models.pull("origin")
    assert pulled.outcome == "merged" and pulled.arrived == 1 and pulled.merge
    merge = store.event_log(b.ws).event(pulled.merge)
    assert merge.kind == "log.merge" and merge.actor == "alice@example.com"
    assert "signed" in merge.body  # under a root, the merge is signed like every event
    tether("model", "push")
    pinned.at(pinned.a)
    tether("model", "pull")
    for clone in (pinned.a, pinned.b):
        pinned.at(clone)
        out = tether("audit", "verify").output
        assert "audit log verified" in out and "alice@example.com" in out
        same_fold(clone)
        assert head_ref(clone) == head_ref(pinned.b)  # the merge's signed head, taken verified
        events = store.event_log(Project.open(clone).ws).events()
        assert gitmirror.read_from_git(clone, LOG) == events  # the mirror reads the same order
    assert state_of(pinned.a) == state_of(pinned.b)
    # the fold after the merge goes on from the cache, as a whole fold would
    pinned.at(pinned.b)
    tether("model", "alias", "other@v1", "champion")
    same_fold(pinned.b)
    assert "audit log verified" in tether("audit", "verify").output  # from the packed audit on
    assert "audit log verified" in tether("audit", "verify", "--full").output


def test_the_same_version_made_on_both_sides_is_refused_with_the_way_out(
    pinned: Clones, rooted: str, tether: Tether
) -> None:
    pinned.at(pinned.a)
    tether("model", "register", "model", "--run", rooted, "--path", "model.pkl")
    tether("model", "push")
    b = pinned.at(pinned.b)
    mine = train(pinned.b, b"mine ")
    tether("model", "register", "model", "--run", mine, "--path", "model.pkl")
    before = store.event_log(b.ws).head()
    out = tether("model", "pull", expect=4).output
    assert "model@v2" in out and "tether model pull --discard-local" in out
    assert store.event_log(b.ws).head() == before  # nothing moved
    assert b.models.state().resolve("model@v2").run == mine
    out = tether("model", "pull", "--discard-local").output
    assert "dropped 1 local event(s)" in out
    assert Project.open(pinned.b).models.state().resolve("model@v2").run == rooted
    assert git(pinned.b, "rev-parse", "model@v2") == git(pinned.a, "rev-parse", "model@v2")
    assert "audit log verified" in tether("audit", "verify").output
    tether("model", "push")
    assert "up to date" in tether("model", "pull").output


def test_an_unsigned_event_forged_on_the_remote_is_refused_by_name(
    pinned: Clones, rooted: str, tether: Tether
) -> None:
    a = pinned.at(pinned.a)
    body = {"name": "model", "version": 1, "stage": "production", "request": None, "n": 1}
    forge(a, "model.transition", body, "alice@example.com")
    forged = store.event_log(a.ws).head() or ""
    refused = tether("model", "push", expect=4).output  # Tether will not hand it on
    assert "do not verify under the root of trust" in refused and "--discard-local" in refused
    ref = gitmirror.git_ref(LOG)  # but whoever can push to the remote can put it there
    git(pinned.a, "push", "-q", "origin", f"{ref}:{ref}")
    b = pinned.at(pinned.b)
    before = store.event_log(b.ws).head()
    result = tether("model", "pull", expect=1)
    assert f"refused 1 event(s): {forged[7:19]} model.transition: " in result.output
    assert "not signed" in result.output
    assert store.event_log(b.ws).head() == before  # never imported as the head
    assert b.models.state().resolve("model@v1").stage is None
    assert "production" not in tether("model", "list").output
    assert "audit log verified" in tether("audit", "verify").output


def test_the_signed_head_is_never_taken_unverified_from_the_remote(
    pinned: Clones, rooted: str, tether: Tether, keys: dict[str, signing.KeyInfo], use: Use
) -> None:
    b = pinned.at(pinned.b)
    tether("model", "alias", "model@v1", "mine")  # this clone is ahead: its own signed head
    ahead = head_ref(pinned.b)
    assert "ahead of origin by 1" in tether("model", "pull").output
    assert head_ref(pinned.b) == ahead and "audit log verified" in tether("audit", "verify").output
    tether("model", "push")
    # on the first clone, someone replaces the signed head with one mallory signed, and pushes
    a = pinned.at(pinned.a)
    tether("model", "pull")
    tether("model", "alias", "model@v1", "theirs")
    head = store.event_log(a.ws).head()
    doc = {"log": LOG, "head": head, "seq": 99, "time": 0}
    mallory = signing.load_signer(str(keys["mallory"].private_path))
    envelope = mallory.sign(store.HEAD_TYPE, json.dumps(doc, sort_keys=True).encode())
    blob = git_bytes(pinned.a, "hash-object", "-w", "--stdin", stdin=json.dumps(envelope).encode())
    blob = blob.decode().strip()
    git(pinned.a, "update-ref", store.HEAD_REF, blob)
    tether("model", "push")
    pinned.at(pinned.b)
    assert "fast-forwarded" in tether("model", "pull").output
    assert head_ref(pinned.b) != blob  # not mallory's: this clone signed the head it verified
    assert "audit log verified" in tether("audit", "verify").output
    assert b.models.state().resolve("model@theirs").number == 1


def test_a_merge_needs_a_key_that_may_merge(
    pinned: Clones, rooted: str, tether: Tether, use: Use
) -> None:
    pinned.at(pinned.a)
    tether("model", "alias", "model@v1", "theirs")
    tether("model", "push")
    b = pinned.at(pinned.b)
    tether("model", "alias", "model@v1", "mine")
    use("mallory")
    out = tether("model", "pull", expect=4).output
    assert "log.merge" in out and "tether model pull --discard-local" in out
    use("alice")
    assert b.models.pull("origin").outcome == "merged"


def test_git_errors_are_shown_whole_and_a_refused_push_says_to_pull(
    plain: Clones, trained: str, tether: Tether
) -> None:
    out = tether("model", "pull", "--remote", "nowhere", expect=4).output
    assert "'nowhere' does not appear to be a git repository" in out
    plain.at(plain.a)
    tether("model", "alias", "model@v1", "theirs")
    tether("model", "push")
    plain.at(plain.b)
    tether("model", "alias", "model@v1", "mine")
    out = tether("model", "push", expect=4).output
    assert "tether model pull" in out and "rejected" in out  # git's own words, in full
    assert "merge event" in tether("model", "pull").output
    assert "pushed the registry" in tether("model", "push").output
    assert git(plain.origin, "rev-parse", gitmirror.git_ref(LOG)) == git(
        plain.b, "rev-parse", gitmirror.git_ref(LOG)
    )


def test_a_mirror_whose_commit_does_not_carry_its_event_is_refused(
    plain: Clones, tether: Tether
) -> None:
    ref = gitmirror.git_ref(LOG)
    tip = git(plain.a, "rev-parse", ref).strip()
    tree = git(plain.a, "rev-parse", f"{tip}^{{tree}}").strip()
    fake = "blake3:" + "0" * 64
    message = f'tether event 1: model.transition\n\nid: {fake}\n{{"not":"it"}}\n'
    commit = git(plain.a, "commit-tree", tree, "-p", tip, "-m", message).strip()
    git(plain.a, "push", "-q", "origin", f"+{commit}:{ref}")  # a hand-made mirror on the remote
    b = plain.at(plain.b)
    before = store.event_log(b.ws).head()
    out = tether("model", "pull", expect=4).output
    assert "was not taken" in out and "does not carry an event that matches its id" in out
    assert store.event_log(b.ws).head() == before
    assert git(plain.b, "rev-parse", ref).strip() == tip  # the local mirror did not move


def test_a_refused_pull_leaves_the_pin_where_it_was(
    pinned: Clones, rooted: str, tether: Tether, use: Use
) -> None:
    """A pull that brings a newer root but is refused (no key here may sign the merge) must
    not raise the pinned root version: the clone goes on reading its own log."""
    pinned.at(pinned.a)
    tether("trust", "policy", "--threshold", "1")  # a new root version, published by alice
    tether("model", "push")
    pinned.at(pinned.b)
    tether("model", "alias", "model@v1", "mine")
    before = (pinned.b / ".tether" / "trust.json").read_bytes()
    use("mallory")
    tether("model", "pull", expect=4)
    assert (pinned.b / ".tether" / "trust.json").read_bytes() == before
    use("alice")
    assert "model@v1" in tether("model", "list").output
