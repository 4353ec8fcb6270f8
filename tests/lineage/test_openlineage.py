"""OpenLineage export: events checked against the spec's schema, and sent to a local HTTP server."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from click.testing import Result

from tests.lineage.conftest import Chain
from tether.api import Project
from tether.errors import RemoteError
from tether.lineage import openlineage_events, send_events
from tether.lineage.openlineage import remote_uri

SCHEMA = json.loads((Path(__file__).parent / "openlineage_runevent.schema.json").read_text())
VALIDATOR = jsonschema.Draft202012Validator(
    SCHEMA, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
)


def validate(events: list[dict[str, Any]]) -> None:
    for event in events:
        errors = [e.message for e in VALIDATOR.iter_errors(event)]
        assert not errors, (errors, event)


def test_each_run_is_a_start_and_an_end_event_valid_under_the_spec(
    project: Project, chain: Chain
) -> None:
    events = openlineage_events(project.ws)
    validate(events)
    assert [(e["run"]["runId"], e["eventType"]) for e in events] == [
        (chain.prep, "START"),
        (chain.prep, "COMPLETE"),
        (chain.train, "START"),
        (chain.train, "COMPLETE"),
    ]
    start, end = events[:2]
    assert start["job"] == end["job"]
    assert start["job"]["namespace"] == "tether://repo" and start["job"]["name"] == "demo/prep"
    assert start["eventTime"] < end["eventTime"]
    assert start["outputs"] == [] and [d["name"] for d in end["outputs"]] == ["clean.csv"]
    (raw,) = end["inputs"]
    assert raw["namespace"] == "tether" and raw["name"] == "raw.csv"
    assert raw["facets"]["version"]["datasetVersion"] == chain.raw
    code = end["job"]["facets"]["sourceCodeLocation"]
    record = project.get_run(chain.prep)
    assert code["type"] == "git" and code["version"] == record["code"]["commit"]
    assert code["url"] == f"file://{project.root}"  # no remote: the repository folder
    own = end["run"]["facets"]["tether"]
    assert own["environment"] == record["env"] and own["params"] == {"rows": "2", "sep": ","}
    assert own["record"] == record["record_id"]


def test_the_schema_bites() -> None:
    event = {"eventTime": "2024-01-01T00:00:00Z", "producer": "https://x", "run": {}, "job": {}}
    messages = " ".join(e.message for e in VALIDATOR.iter_errors(event))
    assert "'schemaURL' is a required property" in messages
    assert "'runId' is a required property" in messages and "'namespace'" in messages


def test_failed_runs_and_pipeline_stages(project: Project, repo: Path, pipeline_run: str) -> None:
    with pytest.raises(ZeroDivisionError), project.start_run(name="broken") as run:
        1 / 0  # noqa: B018
    events = openlineage_events(project.ws)
    validate(events)
    ends = {e["run"]["runId"]: e for e in events if e["eventType"] != "START"}
    assert ends[run.id]["eventType"] == "FAIL"
    count = project.get_run("count")["id"]
    parent = ends[count]["run"]["facets"]["parent"]
    assert parent["run"]["runId"] == pipeline_run
    assert parent["job"] == {"namespace": "tether://repo", "name": "default/repro"}
    assert ends[count]["job"]["name"] == "default/count"
    # only some runs, by name or id prefix
    some = openlineage_events(project.ws, ["count", run.id[:13]])
    assert {e["run"]["runId"] for e in some} == {count, run.id}


def test_remotes_become_uris() -> None:
    assert remote_uri("git@github.com:org/repo.git") == "ssh://git@github.com/org/repo.git"
    assert remote_uri("https://github.com/org/repo.git") == "https://github.com/org/repo.git"
    assert remote_uri("/srv/git/repo.git") == "file:///srv/git/repo.git"


class _Recorder(BaseHTTPRequestHandler):
    seen: list[tuple[str, dict[str, str], Any]]
    status = 201

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.seen.append((self.path, dict(self.headers), json.loads(body)))
        self.send_response(self.status)
        self.end_headers()
        self.wfile.write(b"{}" if self.status < 300 else b"bad event")

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def endpoint() -> Iterator[tuple[str, type[_Recorder]]]:
    """An OpenLineage endpoint on loopback that records what it is sent."""
    handler = type("Recorder", (_Recorder,), {"seen": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", handler
    finally:
        server.shutdown()
        server.server_close()


def test_events_are_posted_to_the_endpoint(
    project: Project, chain: Chain, endpoint: tuple[str, type[_Recorder]]
) -> None:
    url, handler = endpoint
    events = openlineage_events(project.ws)
    assert send_events(url + "/", events, api_key="s3cret") == 4
    assert [path for path, _h, _b in handler.seen] == ["/api/v1/lineage"] * 4
    assert [body for _p, _h, body in handler.seen] == events
    headers = handler.seen[0][1]
    assert headers["Content-Type"] == "application/json"
    assert headers["Authorization"] == "Bearer s3cret"
    handler.status = 400
    with pytest.raises(RemoteError, match=r"refused event 1 of 4 \(HTTP 400: 'bad event'\)"):
        send_events(url + "/api/v1/lineage", events)


def test_nothing_listening_is_a_clear_error(project: Project, chain: Chain) -> None:
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(RemoteError, match="could not reach the OpenLineage endpoint"):
        send_events(f"http://127.0.0.1:{port}", openlineage_events(project.ws), timeout=2)


def test_cli_writes_json_lines_and_posts(
    cli: Callable[..., Result], chain: Chain, repo: Path, endpoint: tuple[str, type[_Recorder]]
) -> None:
    url, handler = endpoint
    result = cli("export", "--openlineage", "events.jsonl", "--url", url)
    assert "wrote 4 OpenLineage events to events.jsonl" in result.output
    lines = (repo / "events.jsonl").read_text().splitlines()
    events = [json.loads(line) for line in lines]
    validate(events)
    assert [body for _p, _h, body in handler.seen] == events
    one = cli("export", "train", "--openlineage", "-")
    assert [json.loads(x)["run"]["runId"] for x in one.stdout.splitlines()] == [chain.train] * 2
