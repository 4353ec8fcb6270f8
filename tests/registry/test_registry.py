"""The registry through the CLI: register, signed requests and approvals under a policy,
release gates, stages as git tags, get with verification, signing, and the audit trail."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.conftest import BIN, Tether, git
from tests.registry.conftest import People
from tether.api import Project
from tether.runs import live


def to_production(tether: Tether, people: People, trained: str) -> None:
    """model@v1 registered by alice, requested for production, approved by bob (a lead)."""
    tether("model", "register", "model", "--run", trained, "--path", "model.pkl")
    tether("model", "policy", "apply")
    tether("model", "request", "model@v1", "--to", "production")
    people.use("bob")
    tether("model", "approve", "model@v1")


def test_a_transition_needs_an_allowed_second_identity(
    trained: str, people: People, repo: Path, tether: Tether
) -> None:
    assert (
        "registered model@v1"
        in tether("model", "register", "model", "--run", trained, "--path", "model.pkl").output
    )
    out = tether("model", "request", "model@v1", "--to", "production", expect=4).output
    assert "policy in tether.toml differs from the last one recorded" in out
    tether("model", "policy", "apply")
    out = tether("model", "request", "model@v1", "--to", "production", "--comment", "first").output
    assert "by alice@example.com, waiting for approval" in out

    assert (
        "forbids approving your own request"
        in tether("model", "approve", "model@v1", expect=4).output
    )
    people.use("carol")  # an approver, but not a lead
    assert (
        "allows only group:leads, ci@example.com"
        in tether("model", "approve", "model@v1", expect=4).output
    )
    people.use("mallory")  # a key nobody trusted
    assert (
        "is not trusted in tether.toml" in tether("model", "approve", "model@v1", expect=4).output
    )
    people.use("bob")
    assert (
        "approved: model@v1 is now in production" in tether("model", "approve", "model@v1").output
    )
    shown = tether("model", "show", "model@production").output
    assert "stage: production" in shown and "approved by bob@example.com" in shown
    assert git(repo, "rev-parse", "model#production#1^{}") == git(repo, "rev-parse", "HEAD")
    log = tether("audit", "log", "--model", "model").output
    assert "model.approve" in log and "bob@example.com" in log
    assert "audit log verified" in tether("audit", "verify").output


def test_release_gates_refuse_with_the_rule(
    trained: str, people: People, repo: Path, tether: Tether, project: Project
) -> None:
    tether("model", "register", "model", "--run", trained, "--path", "model.pkl")
    toml = (repo / "tether.toml").read_text()
    (repo / "tether.toml").write_text(
        toml.replace('"metric:accuracy>=0.8"]', '"metric:accuracy>=0.95", "reproduced", "signed"]')
    )
    tether("model", "policy", "apply")
    out = tether("model", "request", "model@v1", "--to", "production", expect=4).output
    assert "metric:accuracy>=0.95: the run's accuracy is 0.9" in out
    assert "reproduced: no `tether reproduce` of its run said REPRODUCED" in out
    assert "signed: the version has no signature by a trusted key" in out


def test_get_sign_and_verify_catch_a_changed_byte(
    trained: str, people: People, repo: Path, tether: Tether, project: Project, tmp_path: Path
) -> None:
    tether("model", "register", "model", "--run", trained, "--path", "model.pkl")
    out_dir = tmp_path / "serving"
    assert "hashes verified" in tether("model", "get", "model@v1", "-o", str(out_dir)).output
    assert (out_dir / "model.pkl").read_bytes() == (repo / "model.pkl").read_bytes()
    people.use("bob")
    assert "signed model@v1 by bob@example.com" in tether("model", "sign", "model", "1").output
    assert (
        "1 file(s) match" in tether("model", "verify", "model", "1", "--dir", str(out_dir)).output
    )
    with (out_dir / "model.pkl").open("r+b") as f:  # one byte of the served copy
        f.write(b"W")
    assert (
        "model.pkl differs from what was signed"
        in tether("model", "verify", "model", "1", "--dir", str(out_dir), expect=1).output
    )
    v_object = project.ws.refs.get("registry/model/v1")[0]  # type: ignore[index]
    stored = project.ws.store.loose_path(v_object)
    assert stored is not None
    os.chmod(stored, 0o644)
    with open(stored, "r+b") as f:  # one byte of the cached object
        f.write(b"X")
    assert (
        "do not match their id"
        in tether("model", "get", "model@v1", "-o", str(tmp_path / "again"), expect=4).output
    )
    assert not (tmp_path / "again" / "model.pkl").exists()  # nothing half-checked is left
    # verifying the damaged cache copy is a failed check (1), not an error (4)
    out = tether("model", "verify", "model", "1", expect=1).output
    assert "the cached bytes do not match their id" in out


def test_the_audit_trail_catches_an_edited_or_cut_log(
    trained: str, people: People, repo: Path, tether: Tether, project: Project
) -> None:
    to_production(tether, people, trained)
    assert "audit log verified: 5 events" in tether("audit", "verify").output
    head = project.ws.refs.get("events/registry")
    events = tether("audit", "log").output.splitlines()
    assert len(events) == 5  # register, policy, request, approve, transition
    # cut the newest event off: the chain itself is fine, the signed head is not
    from tether.registry.store import event_log

    older = event_log(project.ws).events()[-2].id
    project.ws.refs.set("events/registry", [older])
    out = tether("audit", "verify", expect=1).output
    assert "the newest events were cut off" in out
    project.ws.refs.set("events/registry", list(head or ()))
    # edit one event's bytes in the store
    first = event_log(project.ws).events()[1].id
    path = project.ws.store.loose_path(first)
    assert path is not None
    os.chmod(path, 0o644)
    path.write_bytes(path.read_bytes().replace(b"alice@example.com", b"alice@example.org"))
    assert "was changed" in tether("audit", "verify", expect=1).output


def test_two_approvals_racing_make_one_transition(
    trained: str, people: People, repo: Path, tether: Tether
) -> None:
    tether("model", "register", "model", "--run", trained, "--path", "model.pkl")
    tether("model", "policy", "apply")
    tether("model", "request", "model@v1", "--to", "production")
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    procs = [
        subprocess.Popen(
            [str(BIN / "tether"), "model", "approve", "model@v1"],
            cwd=repo,
            env={**env, "TETHER_SIGNING_KEY": str(people.keys[who].private_path)},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for who in ("bob", "ci")
    ]
    outputs = [p.communicate()[0] for p in procs]
    won = [o for o in outputs if "is now in production" in o]
    lost = [o for o in outputs if "has no open transition request" in o]
    assert len(won) == 1 and len(lost) == 1, outputs
    log = tether("audit", "log").output
    assert log.count("model.transition") == 1 and log.count("model.approve") == 1


def test_ci_approves_what_is_ready_and_the_registry_travels_with_git(
    trained: str, people: People, repo: Path, tether: Tether, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    tether("model", "register", "model", "--run", trained, "--path", "model.pkl")
    tether("model", "register", "model", "--run", trained, "--path", "model.pkl")
    tether("model", "policy", "apply")
    tether("model", "request", "model@v1", "--to", "production")
    tether("model", "request", "model@v2", "--to", "staging")  # no policy: any approver
    people.use("ci")
    out = tether("model", "approve", "--ready").output
    assert "model@v1 is now in production" in out and "model@v2 is now in staging" in out
    assert "no open request is ready" in tether("model", "approve", "--ready").output

    origin = tmp_path / "origin.git"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(origin))
    git(repo, "remote", "add", "origin", str(origin))
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "chore: trust keys")
    git(repo, "push", "-q", "origin", "main")
    assert "pushed the registry to origin" in tether("model", "push").output
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(origin), str(clone))
    monkeypatch.chdir(clone)
    Project.init(clone)
    assert "9 new registry events" in tether("model", "pull").output
    assert "audit log verified: 9 events, head signed by" in tether("audit", "verify").output
    assert git(clone, "rev-parse", "model#production#1^{}") == git(repo, "rev-parse", "HEAD~1")


def test_load_stamp_and_trace_a_served_model_back_to_its_run(
    trained: str, people: People, repo: Path, tether: Tether, tmp_path: Path
) -> None:
    from tether import models

    to_production(tether, people, trained)
    path, provenance = models.load("model", "production", out=tmp_path / "served")
    assert path.read_bytes() == (repo / "model.pkl").read_bytes()
    assert provenance["run"] == trained and provenance["stage"] == "production"
    stamped = models.stamp({"label": "yes"}, provenance)
    for target in ("model@production", "model@v1", stamped["tether_model"]):
        out = tether("lineage", target, "--format", "json").output
        assert trained in out, target  # every way of naming it leads back to the run


def test_a_signature_by_an_untrusted_key_and_a_removed_event_are_reported(
    trained: str, people: People, repo: Path, tether: Tether, project: Project
) -> None:
    from tether.registry.store import event_log

    tether("model", "register", "model", "--run", trained, "--path", "model.pkl")
    people.use("mallory")  # not trusted: may not sign a release
    assert "is not trusted in tether.toml" in tether("model", "sign", "model", "1", expect=4).output
    people.use("alice")
    tether("model", "policy", "apply")
    tether("model", "request", "model@v1", "--to", "production")
    events = event_log(project.ws).events()
    middle = project.ws.store.loose_path(events[1].id)  # the policy change
    assert middle is not None
    os.chmod(middle, 0o644)
    middle.unlink()
    out = tether("audit", "verify", expect=1).output
    assert "event 1" in out and ("missing" in out or "gone" in out)


def test_audit_rechecks_signatures_when_the_trusted_keys_change(
    trained: str, people: People, repo: Path, tether: Tether
) -> None:
    to_production(tether, people, trained)
    assert "audit log verified" in tether("audit", "verify").output
    assert "audit log verified" in tether("audit", "verify").output  # from the cache
    toml = (repo / "tether.toml").read_text()
    bob = people.keys["bob"].keyid
    start = toml.index(f'[keys."{bob}"]')
    end = toml.index("[keys.", start + 5) if "[keys." in toml[start + 5 :] else len(toml)
    (repo / "tether.toml").write_text(toml[:start] + toml[end:])  # bob's key is no longer trusted
    out = tether("audit", "verify", expect=1).output
    assert f"{bob} is not a trusted key" in out
    assert "is not a trusted key" in tether("audit", "verify", "--full", expect=1).output


def test_a_reordered_log_is_reported(
    trained: str, people: People, repo: Path, tether: Tether, project: Project
) -> None:
    from tether.registry.store import event_log

    to_production(tether, people, trained)
    log = event_log(project.ws)
    events = log.events()
    project.ws.refs.delete(log.ref)  # rebuild the chain with two events swapped
    for ev in (events[0], events[2], events[1], *events[3:]):
        log.append(ev.kind, ev.body, actor=ev.actor, time=ev.time)
    assert log.verify().ok  # a well-formed chain, every signature still good ...
    out = tether("audit", "verify", expect=1).output
    assert "is not in the log" in out  # ... but not the one whose head was signed


def test_a_request_is_named_by_at_least_four_characters_of_its_id(
    trained: str, people: People, project: Project, tether: Tether
) -> None:
    tether("model", "register", "model", "--run", trained, "--path", "model.pkl")
    tether("model", "policy", "apply")
    tether("model", "request", "model@v1", "--to", "production")
    (req,) = Project.open(project.root).models.state().requests.values()
    bare = req.id.removeprefix("blake3:")
    people.use("bob")
    out = tether("model", "approve", bare[:3], expect=4).output
    assert "shorter than 4 characters" in out
    assert "now in production" in tether("model", "approve", bare[:4]).output


def test_a_verdict_tagged_on_afterwards_does_not_pass_the_reproduced_gate(
    trained: str, people: People, repo: Path, tether: Tether, project: Project
) -> None:
    tether("model", "register", "model", "--run", trained, "--path", "model.pkl")
    toml = (repo / "tether.toml").read_text()
    (repo / "tether.toml").write_text(toml.replace('"metric:accuracy>=0.8"]', '"reproduced"]'))
    tether("model", "policy", "apply")
    with live.start(project.ws, name="not-a-reproduction") as run:  # any finished run
        other = run.id
    tether("runs", "tag", other, "verdict=REPRODUCED", f"reproduction_of={trained}")
    out = tether("model", "request", "model@v1", "--to", "production", expect=4).output
    assert "reproduced: no `tether reproduce` of its run said REPRODUCED" in out


def test_audit_says_when_unsigned_events_stand_with_no_root_to_refuse_them(
    trained: str, tether: Tether
) -> None:
    tether("model", "register", "model", "--run", trained, "--path", "model.pkl")
    out = tether("audit", "verify").output
    assert "audit log verified: 1 events" in out
    assert "1 event(s) are unsigned, and no root of trust guards this log" in out
