"""Schemathesis fuzzes every operation of the server's OpenAPI document against the real server:
whatever it sends, the server answers with no 500 (bad input is a 4xx that says why)."""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from tests.server.conftest import Server

pytestmark = pytest.mark.slow


def test_no_request_makes_the_server_fail(sqlite_server: Server) -> None:
    project = sqlite_server.new_project()
    schema = schemathesis.openapi.from_url(f"{sqlite_server.url}/api/v1/openapi.json")
    auth = {"Authorization": f"Bearer {sqlite_server.admin_token}"}
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 12
    for operation in operations:
        if operation.method.upper() == "DELETE":
            continue  # revoking random tokens is test_http's; here it would revoke the admin's

        @given(case=operation.as_strategy())
        @settings(
            max_examples=25,
            deadline=None,
            derandomize=True,
            suppress_health_check=list(HealthCheck),
        )
        def fuzz(case: Any) -> None:
            params = case.path_parameters or {}
            if "project" in params and not params["project"].startswith("x"):
                params["project"] = project  # mostly a project that exists
            case.call_and_validate(headers=auth, checks=[not_a_server_error])

        fuzz()
