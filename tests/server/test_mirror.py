"""A project bound to its git repository: the server reads commits and the tracked data from its
own bare mirror, brought up to date on request; hostile URLs and revisions are refused."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from tests.conftest import Tether, git
from tests.server.conftest import Server

pytestmark = pytest.mark.slow


def test_the_tracked_data_at_a_commit_comes_from_the_servers_mirror(
    sqlite_server: Server, repo: Path, tether: Tether
) -> None:
    (repo / "data").mkdir()
    (repo / "data" / "a.csv").write_text("x\n1\n")
    tether("add", "data")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "first data")
    first = git(repo, "rev-parse", "HEAD").strip()
    name = f"g-{uuid.uuid4().hex[:8]}"
    with sqlite_server.http() as http:
        made = http.post("/api/v1/projects", json={"name": name, "git": str(repo)})
        assert made.status_code == 201, made.text
        base = f"/api/v1/projects/{name}/git"
        at = http.get(f"{base}/data", params={"rev": "main"}).json()
        assert at["commit"] == first
        (entry,) = at["data"]
        assert (entry["path"], entry["kind"], entry["files"]) == ("data", "dir", 1)

        (repo / "data" / "b.csv").write_text("y\n2\n")
        tether("add", "data")
        git(repo, "commit", "-qam", "more data")
        assert http.get(f"{base}/data", params={"rev": "main"}).json()["commit"] == first
        assert http.post(f"{base}/fetch").status_code == 200
        now = http.get(f"{base}/data", params={"rev": "main"}).json()
        assert now["commit"] != first and now["data"][0]["files"] == 2
        assert http.get(f"{base}/commit", params={"rev": first[:10]}).json()["subject"] == (
            "first data"
        )
        for hostile in ("--upload-pack=touch /tmp/pwned", "main..HEAD", "-h", "nope"):
            refused = http.get(f"{base}/data", params={"rev": hostile})
            assert refused.status_code == 400, hostile


def test_a_git_url_that_would_run_a_command_makes_no_project(sqlite_server: Server) -> None:
    name = f"h-{uuid.uuid4().hex[:8]}"
    with sqlite_server.http() as http:
        for url in ("ext::sh -c touch% /tmp/pwned", "--upload-pack=evil"):
            refused = http.post("/api/v1/projects", json={"name": name, "git": url})
            assert refused.status_code in (400, 503), refused.text
        names = [p["name"] for p in http.get("/api/v1/projects").json()["projects"]]
    assert name not in names
    assert not Path("/tmp/pwned").exists()
