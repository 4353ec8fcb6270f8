"""OIDC bearer tokens from a configured issuer, mapped to users by claim: the issuer's keys are
served over HTTP on loopback as an identity provider would, and the server fetches them."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm
from tests.server.conftest import Server, launch

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def issuer() -> Iterator[tuple[str, Any]]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = json.loads(RSAAlgorithm.to_jwk(key.public_key()))
    jwks = json.dumps({"keys": [{**public, "kid": "k1", "use": "sig", "alg": "RS256"}]}).encode()

    class Keys(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200 if self.path == "/.well-known/jwks.json" else 404)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(jwks)

        def log_message(self, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Keys)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", key
    httpd.shutdown()


@pytest.fixture(scope="module")
def oidc_server(
    issuer: tuple[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    folder: Path = tmp_path_factory.mktemp("oidc")
    env = {**os.environ, "TETHER_TOKEN": ""}
    server = launch(
        f"sqlite:///{folder / 'server.db'}", str(folder / "store"), env,
        "--oidc-issuer", issuer[0], "--oidc-audience", "tether",
    )  # fmt: skip
    with server.http() as http:
        http.post(
            "/api/v1/users", json={"name": "dana", "role": "reader", "oidc": "dana@example.com"}
        ).raise_for_status()
    yield server
    server.stop()


def _token(key: Any, **claims: Any) -> str:
    now = int(time.time())
    body = {"iss": "", "aud": "tether", "exp": now + 300, "iat": now, "email": "dana@example.com"}
    return jwt.encode({**body, **claims}, key, algorithm="RS256", headers={"kid": "k1"})


def _whoami(server: Server, token: str) -> httpx.Response:
    return httpx.get(f"{server.url}/api/v1/whoami", headers={"Authorization": f"Bearer {token}"})


def test_a_token_from_the_issuer_logs_in_as_the_mapped_user(
    oidc_server: Server, issuer: tuple[str, Any]
) -> None:
    ok = _whoami(oidc_server, _token(issuer[1], iss=issuer[0]))
    assert ok.status_code == 200 and ok.json()["user"] == "dana"
    assert ok.json()["roles"] == {"*": "reader"}


def test_tokens_the_server_must_refuse(oidc_server: Server, issuer: tuple[str, Any]) -> None:
    url, key = issuer
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    refused = {
        "expired": _token(key, iss=url, exp=int(time.time()) - 3600),
        "another issuer": _token(key, iss="https://evil.example.com"),
        "another audience": _token(key, iss=url, aud="mlflow"),
        "another key": _token(other, iss=url),
        "nobody mapped": _token(key, iss=url, email="eve@example.com"),
        "no claim": _token(key, iss=url, email=None),
        "alg none": jwt.encode(
            {
                "iss": url,
                "aud": "tether",
                "exp": int(time.time()) + 60,
                "email": "dana@example.com",
            },
            None,
            algorithm="none",
            headers={"kid": "k1"},
        ),
    }
    for why, token in refused.items():
        answer = _whoami(oidc_server, token)
        assert answer.status_code == 401, why
        assert answer.json()["message"], why
    assert (
        "tether server user add" in _whoami(oidc_server, refused["nobody mapped"]).json()["message"]
    )
