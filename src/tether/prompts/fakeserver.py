"""A small OpenAI-compatible chat-completions server on loopback, for tests, the demo and the
benchmarks. Standard library only.

``serve()`` runs it on a background thread and yields a ``FakeServer`` whose ``base_url`` is what
an ``openai`` provider is pointed at. It answers ``POST /v1/chat/completions`` deterministically
(``Behaviour.answer`` of the last user message; by default "positive" when the text says "good"
or "great", else "negative"), reports usage tokens (characters // 4), and counts what it received.

It can be told to fail, to exercise a provider's retries (``Fault``):

- ``"429"``: Too Many Requests with ``Retry-After: 0``
- ``"500"``: an internal server error
- ``"hang"``: no answer until ``Behaviour.hang_s`` has passed (past the client's timeout)
- ``"malformed"``: a 200 whose body is not JSON

for every request, for the first N requests, or only for requests whose last user message contains
some text. Run it by hand with ``python -m tether.prompts.fakeserver --latency 0.05``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

FAULT_KINDS = ("429", "500", "hang", "malformed")
PATHS = ("/v1/chat/completions", "/chat/completions")
EMBEDDINGS = ("/v1/embeddings", "/embeddings")
DIMENSIONS = 64


def sentiment_answer(text: str) -> str:
    """The default answer: a keyword rule, so tests know what to expect."""
    lowered = text.lower()
    return "positive" if "good" in lowered or "great" in lowered else "negative"


@dataclass(frozen=True)
class Fault:
    """Fail with ``kind`` for the ``first`` N matching requests (None: every one); a request
    matches when ``when`` is None or its last user message contains ``when``."""

    kind: str
    first: int | None = None
    when: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault {self.kind!r}: use one of {', '.join(FAULT_KINDS)}")


@dataclass(frozen=True)
class Behaviour:
    answer: Callable[[str], str] = sentiment_answer
    faults: tuple[Fault, ...] = ()
    hang_s: float = 30.0
    # answer as the dated snapshot of the model asked for, as OpenAI does: "-2024-07-18"
    snapshot: str = ""


@dataclass(frozen=True)
class Seen:
    """One request as the server received it."""

    body: dict[str, Any]
    authorization: str | None


@dataclass
class FakeServer:
    """A running server: where it listens and what it has received."""

    base_url: str
    latency_s: float
    behaviour: Behaviour
    seen: list[Seen] = field(default_factory=list)
    received: list[tuple[str, str | None]] = field(default_factory=list)  # (path, Authorization)
    _fired: dict[int, int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stopping: threading.Event = field(default_factory=threading.Event)

    @property
    def requests(self) -> int:
        """How many chat-completion requests arrived (failed ones included)."""
        with self._lock:
            return len(self.seen)

    def _receive(self, body: dict[str, Any], authorization: str | None, text: str) -> str | None:
        """Record a request; the fault to answer it with, if any."""
        with self._lock:
            self.seen.append(Seen(body, authorization))
            for i, fault in enumerate(self.behaviour.faults):
                if fault.when is not None and fault.when not in text:
                    continue
                fired = self._fired.get(i, 0)
                if fault.first is None or fired < fault.first:
                    self._fired[i] = fired + 1
                    return fault.kind
        return None


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024
    allow_reuse_address = True
    state: FakeServer


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: one connection per client worker
    disable_nagle_algorithm = True  # headers and body go out as separate writes
    server: _Server

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        with self.server.state._lock:  # every request, whatever its route: what a server learns
            self.server.state.received.append((self.path, self.headers.get("Authorization")))
        if self.path in EMBEDDINGS:
            self._send(200, _embeddings(json.loads(raw)))
            return
        if self.path not in PATHS:
            self._send(404, {"error": {"message": f"no route {self.path}"}})
            return
        try:
            body = json.loads(raw)
            text = _last_user_message(body)
        except (ValueError, TypeError, KeyError) as exc:
            self._send(400, {"error": {"message": f"bad request: {exc}"}})
            return
        state = self.server.state
        fault = state._receive(body, self.headers.get("Authorization"), text)
        if fault == "hang":
            state._stopping.wait(state.behaviour.hang_s)
            self.close_connection = True
            return
        if state.latency_s > 0:
            time.sleep(state.latency_s)
        if fault == "429":
            self._send(429, {"error": {"message": "rate limited"}}, {"Retry-After": "0"})
        elif fault == "500":
            self._send(500, {"error": {"message": "internal error"}})
        elif fault == "malformed":
            self._send_raw(200, b'{"choices": [{"message": ')
        else:
            reply = _completion(body, state.behaviour.answer(text))
            reply["model"] += state.behaviour.snapshot
            self._send(200, reply)

    def _send(
        self, status: int, doc: dict[str, Any], headers: dict[str, str] | None = None
    ) -> None:
        self._send_raw(status, json.dumps(doc).encode(), headers)

    def _send_raw(self, status: int, data: bytes, headers: dict[str, str] | None = None) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)
        except OSError:  # the client gave up first
            self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:
        pass


def _last_user_message(body: dict[str, Any]) -> str:
    users = [m["content"] for m in body["messages"] if m["role"] == "user"]
    return str(users[-1]) if users else ""


def _embeddings(body: dict[str, Any]) -> dict[str, Any]:
    """A bag of words hashed into a fixed number of dimensions: texts sharing words are close."""
    texts = body["input"] if isinstance(body["input"], list) else [body["input"]]
    data = []
    for i, text in enumerate(texts):
        vector = [0.0] * DIMENSIONS
        for word in str(text).lower().split():
            digest = hashlib.blake2b(word.strip(".,!?;:").encode(), digest_size=2).digest()
            vector[int.from_bytes(digest, "big") % DIMENSIONS] += 1.0
        data.append({"object": "embedding", "index": i, "embedding": vector})
    return {"object": "list", "data": data, "model": body.get("model", "fake-embed")}


def _completion(body: dict[str, Any], answer: str) -> dict[str, Any]:
    prompt_chars = sum(len(str(m.get("content") or "")) for m in body["messages"])
    prompt_tokens, completion_tokens = max(1, prompt_chars // 4), max(1, len(answer) // 4)
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": 0,
        "model": body.get("model", "fake"),
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": answer},
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


@contextmanager
def serve(
    latency_s: float = 0.05, behaviour: Behaviour | None = None, port: int = 0
) -> Iterator[FakeServer]:
    """Run the server on 127.0.0.1 (an ephemeral port unless ``port`` is given) until the block
    ends; hanging requests are released when it does."""
    server = _Server(("127.0.0.1", port), _Handler)
    host, bound = server.server_address[:2]
    state = FakeServer(f"http://{host!s}:{bound}/v1", latency_s, behaviour or Behaviour())
    server.state = state
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield state
    finally:
        state._stopping.set()
        server.shutdown()
        server.server_close()
        thread.join()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="A fake OpenAI-compatible chat server.")
    parser.add_argument("--latency", type=float, default=0.05, help="seconds per answer")
    parser.add_argument("--port", type=int, default=0, help="0: any free port")
    args = parser.parse_args(argv)
    with serve(args.latency, port=args.port) as server:
        print(server.base_url, flush=True)  # a script entry point: the one place that prints
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
