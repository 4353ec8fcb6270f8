"""The registry under a root of trust, tried as a hostile teammate would: forged and unsigned
events, a policy edited in the work tree, keys without the role, evidence nobody signed, a key
revoked, a pin that does not match. Each promise is checked where state is read."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import Tether, git
from tests.registry.conftest import POLICY
from tether import keyconfig, signing
from tether.api import Project
from tether.errors import TrustError
from tether.events.gitmirror import record
from tether.registry import store

Use = Callable[[str], None]
ROLES = {
    "alice": ["admin", "promoter", "approver"],
    "bob": ["approver"],
    "carol": ["approver"],
    "ci": ["ci", "approver"],
}


@pytest.fixture
def keys(repo: Path, tmp_path: Path) -> dict[str, signing.KeyInfo]:
    out = {}
    for who in ("alice", "bob", "carol", "ci", "mallory"):
        out[who] = signing.generate(f"{who}@example.com", tmp_path / "keys" / who)
        if who in ROLES:
            email = f"{who}@example.com"
            keyconfig.trust_key(repo / "tether.toml", out[who].public_pem, email, ROLES[who])
    with (repo / "tether.toml").open("a") as f:
        f.write(POLICY)
    return out


@pytest.fixture
def use(keys: dict[str, signing.KeyInfo], monkeypatch: pytest.MonkeyPatch) -> Use:
    def act_as(who: str) -> None:
        monkeypatch.setenv("TETHER_SIGNING_KEY", str(keys[who].private_path))

    act_as("alice")
    return act_as


@pytest.fixture
def rooted(trained: str, use: Use, tether: Tether, repo: Path) -> str:
    """Root v1 made by alice from tether.toml; model@v1 registered by alice; its run id."""
    out = tether("trust", "init").output
    assert "root version 1 is in force" in out
    git(repo, "add", "tether.toml")
    git(repo, "commit", "-qm", "chore: trust")
    tether("model", "register", "model", "--run", trained, "--path", "model.pkl")
    return trained


def forge(project: Project, kind: str, body: dict[str, object], actor: str) -> None:
    """Write an event straight into the log, as someone with write access to it could."""
    log = store.event_log(project.ws)
    record(project.root, log, log.append(kind, body, actor=actor))


def stage_of(project: Project, spec: str = "model@v1") -> str | None:
    return Project.open(project.root).models.state().resolve(spec).stage


def test_an_unsigned_transition_moves_nothing_and_audit_names_it(
    rooted: str, project: Project, tether: Tether
) -> None:
    body = {"name": "model", "version": 1, "stage": "production", "request": None, "n": 1}
    forge(project, "model.transition", body, "alice@example.com")
    assert stage_of(project) is None
    assert "production" not in tether("model", "list").output
    out = tether("audit", "verify", "--full", expect=1).output
    assert "model.transition" in out and "not signed" in out


def test_a_transition_signed_by_a_trusted_key_without_a_request_is_refused(
    rooted: str, project: Project, use: Use, tether: Tether
) -> None:
    from tether.registry.fold import PAYLOAD_TYPE

    use("bob")  # an approver's real key: signed, but no request stands behind it
    signer = signing.load_signer()
    log = store.event_log(project.ws)
    body = {"name": "model", "version": 1, "stage": "production", "request": "blake3:" + "0" * 64}
    ev = log.append(
        "model.transition",
        body,
        actor="bob@example.com",
        sign=lambda data: signer.sign(PAYLOAD_TYPE, data),
    )
    record(project.root, log, ev)
    assert stage_of(project) is None
    assert "no request for model@v1 -> production" in tether("audit", "verify", expect=1).output


def test_a_policy_edited_in_the_work_tree_decides_nothing(
    rooted: str, project: Project, use: Use, tether: Tether, repo: Path
) -> None:
    text = (repo / "tether.toml").read_text().replace("approvals = 1", "approvals = 0")
    (repo / "tether.toml").write_text(text)  # not committed, not signed
    out = tether("model", "request", "model@v1", "--to", "production", expect=4).output
    assert "model attest" in out  # the gates are the root's: no evidence was signed yet
    use("ci")
    tether("model", "attest", "model@v1")
    use("alice")
    out = tether("model", "request", "model@v1", "--to", "production").output
    assert "waiting for approval" in out  # the root's policy needs one approval
    report = tether("audit", "verify").output
    assert "proposal" in report and "[registry.policy]" in report


def test_only_the_roles_the_root_gives_count(
    rooted: str, project: Project, use: Use, tether: Tether
) -> None:
    use("ci")
    tether("model", "attest", "model@v1")
    use("mallory")  # not in the root: nothing she writes is accepted
    out = tether("model", "request", "model@v1", "--to", "production", expect=4).output
    assert "not one" in out and "tether trust add" in out
    use("bob")  # an approver cannot request (promoter, ci or admin can)
    tether("model", "request", "model@v1", "--to", "production", expect=4)
    use("alice")
    tether("model", "request", "model@v1", "--to", "production")
    assert "forbids approving your own" in tether("model", "approve", "model@v1", expect=4).output
    use("carol")  # an approver, not a lead
    assert "allows only" in tether("model", "approve", "model@v1", expect=4).output
    use("bob")
    assert "now in production" in tether("model", "approve", "model@v1").output
    assert stage_of(project) == "production"
    assert project.ws.refs.get("registry/model/production") is not None
    tether("audit", "verify")


def test_a_forged_approval_by_a_key_outside_the_root_is_refused(
    rooted: str, project: Project, use: Use, tether: Tether
) -> None:
    use("ci")
    tether("model", "attest", "model@v1")
    use("alice")
    tether("model", "request", "model@v1", "--to", "production")
    req = next(iter(project.models.state().requests.values()))
    from tether.registry.fold import PAYLOAD_TYPE

    use("mallory")
    signer = signing.load_signer()
    log = store.event_log(project.ws)
    for kind, body in (
        ("model.approve", {"request": req.id, "name": "model", "version": 1, "to": "production"}),
        ("model.transition", {"name": "model", "version": 1, "stage": "production",
                              "request": req.id}),
    ):  # fmt: skip
        ev = log.append(
            kind, body, actor="bob@example.com", sign=lambda d: signer.sign(PAYLOAD_TYPE, d)
        )
        record(project.root, log, ev)
    state = Project.open(project.root).models.state()
    assert state.resolve("model@v1").stage is None
    assert state.requests[req.id].approvals == []
    out = tether("audit", "verify", expect=1).output
    assert out.count("was not applied") == 2


def test_approvals_count_only_under_the_policy_in_force(
    rooted: str, project: Project, use: Use, tether: Tether, repo: Path
) -> None:
    use("ci")
    tether("model", "attest", "model@v1")
    use("alice")
    tether("model", "request", "model@v1", "--to", "production")
    # alice signs a stricter policy in: the open request was made under the old one
    text = (repo / "tether.toml").read_text().replace("approvals = 1", "approvals = 2")
    (repo / "tether.toml").write_text(text)
    tether("trust", "policy")
    use("bob")
    out = tether("model", "approve", "model@v1", expect=4).output
    assert "policy changed since alice@example.com made this request" in out
    assert stage_of(project) is None
    state = project.models.state()
    assert all(not r.approvals for r in state.requests.values())


def test_a_revoked_key_approves_nothing(
    rooted: str, project: Project, use: Use, tether: Tether, keys: dict[str, signing.KeyInfo]
) -> None:
    use("ci")
    tether("model", "attest", "model@v1")
    use("alice")
    assert "root version 2 is in force" in tether("trust", "revoke", keys["bob"].keyid).output
    tether("model", "request", "model@v1", "--to", "production")
    use("bob")
    assert "not in the root" in tether("model", "approve", "model@v1", expect=4).output
    assert stage_of(project) is None


def test_a_root_that_is_not_the_pinned_one_is_refused(
    rooted: str, project: Project, tether: Tether, monkeypatch: pytest.MonkeyPatch
) -> None:
    pinned = json.loads((project.ws.dot / "trust.json").read_text())
    assert pinned["fingerprint"].startswith("sha256:") and pinned["version"] == 1
    monkeypatch.setenv("TETHER_ROOT_KEY", "sha256:" + "0" * 64)
    assert "not sha256:000" in tether("model", "list", expect=4).output
    monkeypatch.delenv("TETHER_ROOT_KEY")
    tether("model", "list")


def test_a_log_that_lost_its_root_is_refused(rooted: str, project: Project) -> None:
    # someone replaces the log with one that never had a root
    project.ws.refs.delete("events/registry")
    (project.ws.dot / "cache" / "registry-state.json").unlink()
    with pytest.raises(TrustError, match="has no root of trust now"):
        Project.open(project.root).models.state()


def test_an_archived_version_stops_being_production_in_lineage(
    rooted: str, project: Project, use: Use, tether: Tether, repo: Path
) -> None:
    use("ci")
    tether("model", "attest", "model@v1")
    use("alice")
    tether("model", "request", "model@v1", "--to", "production")
    use("bob")
    tether("model", "approve", "model@v1")
    assert project.ws.refs.get("registry/model/production") is not None
    use("alice")
    tether("model", "request", "model@v1", "--to", "archived")
    use("bob")
    tether("model", "approve", "model@v1")
    assert stage_of(project) == "archived"
    assert project.ws.refs.get("registry/model/production") is None
    assert project.ws.refs.get("registry/model/archived") is not None


def test_a_malformed_event_is_refused_not_a_traceback(
    rooted: str, project: Project, tether: Tether
) -> None:
    forge(project, "model.alias", {"alias": "champion"}, "alice@example.com")  # no name
    assert "model@v1" in tether("model", "list").output
    assert "was not applied" in tether("audit", "verify", expect=1).output


def test_keys_trust_under_a_root_points_at_trust_add(
    rooted: str, tether: Tether, keys: dict[str, signing.KeyInfo], repo: Path, use: Use
) -> None:
    pub = str(keys["mallory"].public_path)
    out = tether("keys", "trust", pub, "--identity", "mallory@example.com", expect=4).output
    assert "tether trust add" in out
    assert "mallory" not in (repo / "tether.toml").read_text()
    # --local trusts for verifying here, and decides nothing
    tether("keys", "trust", pub, "--identity", "mallory@example.com", "--role", "approver",
           "--local")  # fmt: skip
    tether("model", "request", "model@v1", "--to", "staging")
    use("mallory")
    assert "not in the root of trust" in tether("model", "approve", "model@v1", expect=4).output


def test_tether_toml_that_matches_the_root_proposes_nothing(
    rooted: str, keys: dict[str, signing.KeyInfo], tether: Tether, repo: Path
) -> None:
    assert "proposal" not in tether("audit", "verify").output
    email = "alice@example.com"  # naming alice an admin in tether.toml changes nothing
    keyconfig.trust_key(
        repo / "tether.toml", keys["alice"].public_pem, email, ["admin", *ROLES["alice"]]
    )
    assert "proposal" not in tether("audit", "verify").output
    keyconfig.trust_key(
        repo / "tether.toml", keys["bob"].public_pem, "bob@example.com", ["promoter"]
    )
    out = tether("audit", "verify").output
    assert out.count("proposal") == 1 and "bob@example.com" in out


def test_a_root_just_made_is_a_log_that_verifies(use: Use, tether: Tether) -> None:
    tether("trust", "init")
    assert "root of trust version 1" in tether("audit", "verify").output


def test_publishing_a_proposal_that_is_out_of_date_says_so(
    rooted: str, keys: dict[str, signing.KeyInfo], use: Use, tether: Tether, tmp_path: Path
) -> None:
    carol = tmp_path / "carol.pub"
    carol.write_text(keys["carol"].public_pem)
    proposal = tmp_path / "proposal.json"
    use("carol")  # not an admin: her proposal waits for an admin's signature
    args = ("trust", "add", str(carol), "--identity", "carol@example.com", "--role", "admin")
    tether(*args, "--out", str(proposal))
    use("alice")  # meanwhile alice publishes that version number herself
    tether("trust", "add", str(carol), "--identity", "carol@example.com", "--role", "promoter")
    out = tether("trust", "publish", str(proposal), expect=4).output
    assert "in force already" in out and "Traceback" not in out
