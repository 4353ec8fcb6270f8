"""deploy/: the team server's image and compose stack, checked by parsing (no container engine).

What a user would check before running them: the image builds from what the repository holds,
runs as a non-root user with the server extra, answers its health check; compose starts the
server only after its database, store and migration, publishes it on loopback only, and keeps
every credential out of the file.
"""

from __future__ import annotations

import http.server
import io
import json
import re
import shlex
import subprocess
import sys
import threading
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from dockerfile_parse import DockerfileParser

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
DOCKERFILE = DEPLOY / "Dockerfile"
COMPOSE = DEPLOY / "compose.yaml"

# Environment keys whose values are secrets (MinIO's root user is the store's access key).
CREDENTIAL_KEY = re.compile(r"PASSWORD|SECRET|TOKEN|KEY|CREDENTIAL|ROOT_USER")
# `${VAR:?message}`: compose refuses to start while VAR is unset or empty.
REQUIRED_VARIABLE = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*):\?[^}]+\}")
URL_PASSWORD = re.compile(r"://[^/:@\s]+:(?P<password>\$\{[^}]*\}|[^@/\s]+)@")
HEALTH_URL = re.compile(r"http://(?:127\.0\.0\.1|localhost):8080/health\b")


@cache
def instructions() -> tuple[tuple[str, str], ...]:
    parser = DockerfileParser(fileobj=io.BytesIO(DOCKERFILE.read_bytes()))
    return tuple((i["instruction"], i["value"]) for i in parser.structure)


def values(name: str) -> list[str]:
    return [value for instruction, value in instructions() if instruction == name]


@cache
def compose() -> dict[str, Any]:
    document = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(document, dict)
    return document


def services() -> dict[str, dict[str, Any]]:
    return compose()["services"]  # type: ignore[no-any-return]


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.partition("=")[::2] for item in env)
    return {str(key): "" if value is None else str(value) for key, value in env.items()}


def strings(node: Any) -> Iterator[str]:
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for key, value in node.items():
            yield str(key)
            yield from strings(value)
    elif isinstance(node, list):
        for item in node:
            yield from strings(item)


# The Dockerfile


def test_the_base_image_is_python_3_11() -> None:
    (base,) = values("FROM")
    assert re.fullmatch(r"python:3\.11(\.\d+)?(-slim)?", base), base


def test_the_image_runs_as_a_user_it_creates_who_is_not_root() -> None:
    users = values("USER")
    assert users, "no USER: the server would run as root"
    user = users[-1].split(":")[0]
    assert user not in {"root", "0"}
    if not user.isdigit():
        created = [
            shlex.split(command)[-1]
            for run in values("RUN")
            for command in run.split("&&")
            if shlex.split(command)[:1] == ["useradd"]
        ]
        assert user in created, f"USER {user} is never created by useradd"


def test_git_is_installed() -> None:
    assert any(
        "apt-get" in run and "install" in run and "git" in shlex.split(run) for run in values("RUN")
    )


def test_the_package_is_installed_with_the_server_extra() -> None:
    installs = [run for run in values("RUN") if re.search(r"\bpip\b.*\binstall\b", run)]
    assert any(re.search(r"\[[^\]]*\bserver\b[^\]]*\]", run) for run in installs), installs


def test_port_8080_is_exposed_and_served() -> None:
    exposed = {port.split("/")[0] for value in values("EXPOSE") for port in value.split()}
    assert "8080" in exposed
    (cmd,) = values("CMD")
    assert "--port 8080" in cmd and "--host 0.0.0.0" in cmd


def test_the_command_expands_the_server_variables() -> None:
    assert not values("ENTRYPOINT"), "an ENTRYPOINT would take the CMD below as its arguments"
    (cmd,) = values("CMD")
    if cmd.lstrip().startswith("["):  # exec form expands nothing unless it runs a shell
        assert json.loads(cmd)[0] in {"sh", "/bin/sh"}, cmd
    assert "tether server" in cmd
    assert '--index "$TETHER_SERVER_INDEX"' in cmd
    assert '--store "$TETHER_SERVER_STORE"' in cmd


def healthcheck_command() -> list[str]:
    (value,) = values("HEALTHCHECK")
    _, found, command = value.partition("CMD ")
    assert found, f"HEALTHCHECK without CMD: {value}"
    return json.loads(command)  # type: ignore[no-any-return]


def test_the_healthcheck_asks_health_with_python() -> None:
    argv = healthcheck_command()
    assert argv[:2] == ["python", "-c"], argv
    assert HEALTH_URL.search(argv[2]), argv[2]


class Health(http.server.BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        self.send_response(self.status if self.path == "/health" else 404)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@contextmanager
def answering(status: int) -> Iterator[int]:
    """A local server whose /health answers ``status``; yields its port."""
    handler = type("Answer", (Health,), {"status": status})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize(("status", "healthy"), [(200, True), (503, False)])
def test_the_healthcheck_passes_only_when_health_answers_200(status: int, healthy: bool) -> None:
    with answering(status) as port:
        code = HEALTH_URL.sub(f"http://127.0.0.1:{port}/health", healthcheck_command()[2])
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=10)
    assert (result.returncode == 0) is healthy, result.stderr


def copied_sources() -> list[str]:
    sources: list[str] = []
    for value in values("COPY") + values("ADD"):
        args = json.loads(value) if value.lstrip().startswith("[") else shlex.split(value)
        if any(arg.startswith("--from") for arg in args):
            continue
        sources += [arg for arg in args if not arg.startswith("--")][:-1]
    return sources


def test_every_copied_path_exists_in_the_repository() -> None:
    sources = copied_sources()
    assert sources
    for source in sources:
        assert ".." not in Path(source).parts, source
        assert list(ROOT.glob(source.rstrip("/"))), f"COPY {source}: not in {ROOT}"


def test_what_the_build_backend_reads_is_copied() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    needed = [
        "pyproject.toml",
        project["project"]["readme"],
        *project["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"],
    ]
    copied = [Path(source.rstrip("/")) for source in copied_sources()]
    for path in map(Path, needed):
        assert any(path == c or c in path.parents for c in copied), f"{path} is not copied"


# compose.yaml


def test_compose_has_the_server_its_database_and_its_store() -> None:
    assert {"db", "s3", "s3-init", "tether-migrate", "tether"} <= services().keys()


def test_the_server_starts_after_a_healthy_database_store_and_migration() -> None:
    depends = services()["tether"]["depends_on"]
    assert depends["db"]["condition"] == "service_healthy"
    assert depends["s3"]["condition"] == "service_healthy"
    assert depends["s3-init"]["condition"] == "service_completed_successfully"
    assert depends["tether-migrate"]["condition"] == "service_completed_successfully"
    assert "pg_isready" in " ".join(services()["db"]["healthcheck"]["test"])
    assert services()["s3"]["healthcheck"]["test"]
    migrate = services()["tether-migrate"]["command"]
    assert "tether server migrate" in " ".join(migrate if isinstance(migrate, list) else [migrate])


def test_the_database_and_the_store_keep_their_data_in_named_volumes() -> None:
    declared = set(compose().get("volumes") or {})
    for name in ("db", "s3"):
        mounted = {str(v).split(":")[0] for v in services()[name].get("volumes", [])}
        assert mounted & declared, f"{name} keeps its data in no named volume"


def host_ip(port: Any) -> str | None:
    if isinstance(port, dict):
        return port.get("host_ip")
    parts = str(port).split("/")[0].rsplit(":", 2)
    return parts[0].strip("[]") if len(parts) == 3 else None


def test_published_ports_bind_loopback_only() -> None:
    for name, service in services().items():
        for port in service.get("ports", []):
            assert host_ip(port) in {"127.0.0.1", "::1"}, f"{name} publishes {port} to all"
    assert [str(p).rsplit(":", 1)[-1] for p in services()["tether"]["ports"]] == ["8080"]


def test_every_credential_is_a_required_variable() -> None:
    checked = 0
    for name, service in services().items():
        for key, value in environment(service).items():
            if CREDENTIAL_KEY.search(key):
                checked += 1
                assert REQUIRED_VARIABLE.fullmatch(value), f"{name}: {key}={value!r}"
    assert checked >= 4  # the database password, the store's user and key, twice over
    for text in strings(compose()):
        for match in URL_PASSWORD.finditer(text):
            assert REQUIRED_VARIABLE.fullmatch(match["password"]), f"a password in {text!r}"


def image_tag(reference: str) -> str | None:
    name, digest, _ = reference.partition("@")
    if digest:
        return "@digest"
    return name.rsplit("/", 1)[-1].partition(":")[2] or None


def test_every_image_is_pinned_to_a_tag() -> None:
    for name, service in services().items():
        assert "image" in service, f"{name} names no image"
        assert image_tag(service["image"]) not in {None, "latest"}, service["image"]


def test_the_built_image_is_this_checkout_tagged_with_its_version() -> None:
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    built = [service for service in services().values() if "build" in service]
    assert {s["image"] for s in built} == {f"tether-ml:{version}"}
    for service in built:
        context = (DEPLOY / service["build"]["context"]).resolve()
        assert context == ROOT
        assert (context / service["build"]["dockerfile"]).resolve() == DOCKERFILE


def test_the_readme_sets_every_variable_compose_requires() -> None:
    readme = (DEPLOY / "README.md").read_text()
    required = {m["name"] for m in REQUIRED_VARIABLE.finditer(COMPOSE.read_text())}
    assert required
    for variable in required:
        assert f"{variable}=" in readme, variable
    for name in services():
        assert f"`{name}`" in readme, f"the README does not say what {name} is"
