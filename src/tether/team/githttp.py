"""git's smart HTTP for a project's repository on the server, through ``git http-backend`` (the
CGI program git ships): clones fetch from it and push registry and prompt events to it, and
every push passes the door (:mod:`tether.team.door`) before a ref moves. Who may fetch or push
is decided before git runs: a reader fetches, a writer pushes."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from tether.errors import ServerUnavailableError

TIMEOUT_S = 600


@dataclass
class Answer:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


def is_push(path: str, query: str) -> bool:
    return path.endswith("git-receive-pack") or "service=git-receive-pack" in query


def serve(
    folder: Path,
    repo: str,
    path: str,
    *,
    method: str,
    query: str,
    headers: dict[str, str],
    body: bytes,
    user: str,
    role: str,
) -> Answer:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "GIT_PROJECT_ROOT": str(folder),
        "GIT_HTTP_EXPORT_ALL": "1",
        "PATH_INFO": f"/{repo}/{path}",
        "REQUEST_METHOD": method,
        "QUERY_STRING": query,
        "CONTENT_TYPE": headers.get("content-type", ""),
        "CONTENT_LENGTH": str(len(body)),
        "REMOTE_USER": user,
        "TETHER_PUSHER": user,  # for the door (tether.team.door): who pushes, with which role
        "TETHER_PUSHER_ROLE": role,
        "REMOTE_ADDR": "127.0.0.1",
        "GIT_ALLOW_PROTOCOL": "file:git:http:https:ssh",
    }
    for name in ("content-encoding", "git-protocol"):
        if name in headers:
            env["HTTP_" + name.upper().replace("-", "_")] = headers[name]
    try:
        done = subprocess.run(
            ["git", "http-backend"], input=body, env=env, capture_output=True, timeout=TIMEOUT_S
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ServerUnavailableError(f"git on the server did not answer ({exc})") from exc
    head, _, rest = done.stdout.partition(b"\r\n\r\n")
    if not _:
        head, _, rest = done.stdout.partition(b"\n\n")
    answer = Answer(200, body=rest)
    for line in head.decode("latin-1").splitlines():
        name, _, value = line.partition(":")
        if name.lower() == "status":
            answer.status = int(value.strip().split()[0])
        elif name:
            answer.headers[name.strip()] = value.strip()
    return answer
