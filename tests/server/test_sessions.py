"""Browser sessions (for the web UI): a cookie that is HttpOnly and SameSite=Strict, writes that
must echo a CSRF token, and a schema that moves only through `tether server migrate`."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from tests.server.conftest import Server, blake

pytestmark = pytest.mark.slow


def test_a_browser_session_needs_its_csrf_token_to_write(any_server: Server) -> None:
    project = any_server.new_project()
    base = f"/api/v1/projects/{project}"
    with httpx.Client(base_url=any_server.url) as browser:
        opened = browser.post("/api/v1/session", json={"token": any_server.admin_token})
        assert opened.status_code == 201
        cookie = opened.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=strict" in cookie
        assert any_server.admin_token not in opened.headers["set-cookie"]
        csrf = opened.json()["csrf"]
        assert browser.get("/api/v1/whoami").json()["user"] == "root"
        forged = browser.post(f"{base}/objects/missing", json={"ids": [blake(b"s")]})
        assert forged.status_code == 403 and "X-CSRF-Token" in forged.json()["message"]
        wrong = browser.post(
            f"{base}/objects/missing", json={"ids": []}, headers={"X-CSRF-Token": "guess"}
        )
        assert wrong.status_code == 403
        ok = browser.post(
            f"{base}/objects/missing", json={"ids": []}, headers={"X-CSRF-Token": csrf}
        )
        assert ok.status_code == 200
        browser.delete("/api/v1/session", headers={"X-CSRF-Token": csrf})
        assert browser.get("/api/v1/whoami").status_code == 401
        bad = browser.post("/api/v1/session", json={"token": "tth_000000000000_" + "x" * 43})
        assert bad.status_code == 401 and "set-cookie" not in bad.headers


def test_an_older_schema_is_refused_until_migrate(tmp_path: Path) -> None:
    from alembic import command
    from alembic.config import Config
    from sqlalchemy import create_engine

    import tether.team.db as db
    from tether.api import Hub, ServerSettings
    from tether.errors import IndexStoreError

    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = create_engine(url)
    with engine.begin() as conn:
        cfg = Config()
        cfg.set_main_option("script_location", str(Path(db.__file__).with_name("migrations")))
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "s0001")
    engine.dispose()
    settings = ServerSettings(url, str(tmp_path / "store"))
    with pytest.raises(IndexStoreError, match="tether server migrate"):
        Hub(settings)
    Hub(settings, upgrade=True).close()
    Hub(settings).close()
