# ruff: noqa: F811  (fixtures are imported)
"""Decisions made in the browser, in a real Chromium: a writer promotes and rolls back a
prompt's label; an approver makes a signing key in the browser (WebCrypto Ed25519, never
exported), an admin trusts it, and the approver approves a request with it; a reader is offered
neither. Each test decides on a project of its own, so the seeded one stays as the other tests
read it."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Tether
from tests.prompts.test_labels import versions  # noqa: F401
from tests.registry.conftest import trained  # noqa: F401
from tests.registry.test_root_of_trust import Use, keys, rooted, use  # noqa: F401
from tests.ui.conftest import SHOTS, Seeded, logged_in
from tether.api import Project

pytestmark = pytest.mark.slow


EXTRACTABLE = """async () => {
  const db = await new Promise((r) => { const q = indexedDB.open("tether-keys");
                                        q.onsuccess = () => r(q.result); });
  const pair = await new Promise((r) => {
    const q = db.transaction("keys").objectStore("keys").get(document.body.dataset.user);
    q.onsuccess = () => r(q.result); });
  return pair.privateKey.extractable; }"""


def _project_for(seeded: Seeded, tether: Tether, role: str) -> str:
    """A new project on the seeded server, this test's clone logged in to it with ``role``."""
    project = seeded.server.new_project()
    token = seeded.server.token_for(f"clone{time.time_ns()}", role, project)
    tether("server", "login", seeded.server.url, "--project", project, "--token", token)
    return project


def _done(tab: Any, name: str, errors: list[str]) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    tab.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)
    tab.context.close()
    assert errors == [], f"console errors: {errors}"


def test_a_writer_promotes_and_rolls_back_a_prompt_and_a_reader_cannot(
    browser: Any, seeded: Seeded, versions: Path, tether: Tether
) -> None:
    project = _project_for(seeded, tether, "writer")
    tether("prompt", "promote", "sentiment@v1.0.0", "--label", "production")  # from the clone
    user = f"writer{time.time_ns()}"
    token = seeded.server.token_for(user, "writer", project)
    _, tab, errors = logged_in(browser, seeded, token, project)
    tab.goto(f"{seeded.server.url}/p/{project}/prompts")
    form = tab.locator("form.decision[aria-label='sentiment#production']")
    form.locator("select[name=version]").select_option("v1.1.0")
    form.locator("button[value=promote]").click()
    tab.locator("#decided").wait_for()
    assert tab.locator("#decided").inner_text() == "Decided: sentiment#production -> v1.1.0"
    assert "production → v1.1.0" in tab.locator("tr:has(th:text-is('sentiment'))").inner_text()
    newest = tab.locator("ol.timeline li").first.inner_text()
    assert "sentiment#production#2 → v1.1.0 by " + user in newest

    back = tab.locator("form.decision[aria-label='Roll sentiment#production back'] button")
    assert back.inner_text() == "Roll production back to v1.0.0"  # the page says what returns
    back.click()
    tab.locator("#decided:has-text('rolled back to v1.0.0')").wait_for()
    assert "production → v1.0.0" in tab.locator("tr:has(th:text-is('sentiment'))").inner_text()
    # the clone sees what the browser decided
    Project.open(versions).prompts.pull("tether")
    history, problems = Project.open(versions).prompts.history("sentiment")
    assert problems == [] and [a.version for a in history] == ["v1.0.0", "v1.1.0", "v1.0.0"]
    _done(tab, "prompt-decided", errors)

    reader = seeded.server.token_for(f"reader{time.time_ns()}", "reader", project)
    _, tab, errors = logged_in(browser, seeded, reader, project)
    tab.goto(f"{seeded.server.url}/p/{project}/prompts")
    assert tab.locator("form.decision").count() == 0
    assert "needs the writer role on this server; you are reader" in tab.inner_text("main")
    _done(tab, "prompt-reader", errors)


def test_an_approver_approves_with_a_key_made_in_the_browser(
    browser: Any, seeded: Seeded, rooted: str, repo: Path, use: Use, tether: Tether, tmp_path: Path
) -> None:
    project = _project_for(seeded, tether, "admin")  # alice's clone: the root's admin
    tether("sync")
    use("ci")
    tether("model", "attest", "model@v1")
    use("alice")
    tether("model", "request", "model@v1", "--to", "production")
    bob = seeded.server.token_for(f"bob{time.time_ns()}", "approver", project)
    _, tab, errors = logged_in(browser, seeded, bob, project)

    tab.goto(f"{seeded.server.url}/p/{project}/models")
    assert "Gates pass." in tab.inner_text("ul.requests")  # clean tree, accuracy, as ci attested
    decide = tab.locator("form.decision[aria-label='Decide model@v1 → production']")
    decide.locator("button[value=approve]").click()  # no key in this browser yet
    status = decide.locator(".decision-status")
    decide.locator(".decision-status.error").wait_for()
    assert "the browser sent none: make one on the UI's signing key page" in status.inner_text()
    refused = "Failed to load resource: the server responded with a status of 403 (Forbidden)"
    assert errors == [refused]  # the refusal the browser logs, and nothing else
    errors.clear()

    tab.click("a:text-is('signing key')")
    tab.click("#make-key")
    tab.locator("#key-held").wait_for()
    public = tab.input_value("#key-pem")
    assert public.startswith("-----BEGIN PUBLIC KEY-----")
    key_id = tab.inner_text("#key-id")
    SHOTS.mkdir(parents=True, exist_ok=True)
    tab.screenshot(path=str(SHOTS / "signing-key.png"), full_page=True)
    assert tab.evaluate(EXTRACTABLE) is False  # WebCrypto will not give the private half out
    (tmp_path / "bob.pub").write_text(public)
    added = tether(
        "trust",
        "add",
        str(tmp_path / "bob.pub"),
        "--identity",
        "bob@example.com",
        "--role",
        "approver",
    ).output  # fmt: skip  (alice trusts bob's browser key)
    assert "root version 2 is in force" in added
    assert Project.open(repo).trust.current().keys[key_id]  # type: ignore[union-attr]

    tab.goto(f"{seeded.server.url}/p/{project}/models")
    decide = tab.locator("form.decision[aria-label='Decide model@v1 → production']")
    # a server that asks for a signature over another decision gets none
    other = json.dumps({"event": "model.approve", "body": {"request": "blake3:someone-else"}})
    message = b"DSSEv1 42 application/vnd.tether.registry-event+json %d %b" % (
        len(other),
        other.encode(),
    )
    forged = json.dumps({"sign": base64.b64encode(message).decode(), "time": time.time()})
    answer = {"status": 200, "body": forged, "content_type": "application/json"}
    tab.route("**/decisions", lambda route: route.fulfill(**answer))
    decide.locator("button[value=approve]").click()
    decide.locator(".decision-status.error").wait_for()
    assert "asked to sign something else" in decide.locator(".decision-status").inner_text()
    tab.unroute("**/decisions")
    decide.locator("input[name=comment]").fill("holdout is fine")
    decide.locator("button[value=approve]").click()
    tab.locator("#decided").wait_for()
    assert tab.inner_text("#decided") == "Decided: model@v1 -> production approved (approved)"
    assert "production" in tab.locator("table.versions").inner_text()
    audit = tab.locator("table.audit").inner_text()
    assert "model.approve" in audit and "bob@example.com" in audit
    _done(tab, "model-approved", errors)
    Project.open(repo).models.pull("tether")
    assert Project.open(repo).models.state().resolve("model@v1").stage == ("production")
