"""``openai``: any OpenAI-compatible chat-completions endpoint over HTTP (OpenAI, vLLM, Ollama,
llama.cpp's server, LiteLLM). Concurrent, rate-limited, and retried under one policy
(:mod:`tether.prompts.retry`).

Concurrency is threads sharing one ``httpx.Client``. Measured against ``fakeserver`` answering in
50 ms, 1,000 requests at 32 jobs on 2 cores: threads 598 requests/s at 0.54 ms of client CPU per
request; ``httpx.AsyncClient`` with asyncio 564 requests/s at 1.0 ms (2.6 ms when the server
answers at once). Threads also work when the caller already runs an event loop.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, TypeVar

from tether.errors import ConfigError, UsageError
from tether.prompts.calls import OnDone, Request, Response, in_threads, parse_completion
from tether.prompts.retry import Retry, attempts

if TYPE_CHECKING:
    import httpx

T = TypeVar("T")

OPENAI_URL = "https://api.openai.com/v1"


class RateLimit:
    """A token bucket holding one token, refilled ``per_s`` times a second, shared by the workers:
    each ``wait`` takes the next free slot and sleeps until it comes."""

    def __init__(self, per_s: float) -> None:
        self.interval = 1.0 / per_s
        self._next = 0.0
        self._lock = threading.Lock()

    def wait(self) -> None:
        with self._lock:
            now = time.monotonic()
            slot = max(now, self._next)
            self._next = slot + self.interval
        if slot > now:
            time.sleep(slot - now)


@dataclass(frozen=True)
class _Call:
    """What one ``complete_many`` shares between its workers (the key lives only here)."""

    client: httpx.Client
    limit: RateLimit | None
    secret: str | None


class OpenAIProvider:
    """POST ``{base_url}/chat/completions``. The API key is read from the environment variable
    named ``api_key_env`` at each ``complete_many`` and sent as a bearer token; it is never
    stored on the provider nor written into a ``Response``. 429, 408, 5xx, timeouts, connection
    errors and malformed answers are retried ``max_retries`` times under the one policy of
    :mod:`tether.prompts.retry` (backoff with jitter, or the server's ``Retry-After``, up to
    ``max_backoff_s``)."""

    def __init__(
        self,
        base_url: str = OPENAI_URL,
        api_key_env: str | None = None,
        timeout: float = 60.0,
        max_retries: int = 4,
        rate_limit_per_s: float | None = None,
        headers: Mapping[str, str] | None = None,
        *,
        name: str = "openai",
        model: str = "",
        backoff_s: float = 0.5,
        max_backoff_s: float = 30.0,
    ) -> None:
        if not re.match(r"^https?://[^/\s]+", base_url):
            raise ConfigError(f"provider {name}: base_url {base_url!r} must start with http(s)://")
        if any(h.lower() in ("authorization", "api-key", "x-api-key") for h in headers or {}):
            raise ConfigError(
                f"provider {name}: an API key does not belong in headers; put it in an "
                "environment variable and name that variable in api_key_env"
            )
        if rate_limit_per_s is not None and rate_limit_per_s <= 0:
            raise ConfigError(f"provider {name}: rate_limit_per_s must be above 0, or left out")
        self.name, self.model = name, model
        self.base_url = base_url.rstrip("/")
        self.api_key_env = api_key_env
        self.timeout, self.max_retries = timeout, max_retries
        self.rate_limit_per_s = rate_limit_per_s
        self.headers = dict(headers or {})
        self.backoff_s, self.max_backoff_s = backoff_s, max_backoff_s

    @property
    def fingerprint(self) -> str:
        return f"openai:{self.base_url}"

    def complete_many(
        self, requests: Sequence[Request], *, jobs: int = 1, on_done: OnDone | None = None
    ) -> list[Response]:
        import httpx

        if not requests:
            return []
        secret = self._api_key()
        headers = {**self.headers, "Content-Type": "application/json"}
        if secret is not None:
            headers["Authorization"] = f"Bearer {secret}"
        jobs = max(1, min(jobs, len(requests)))
        limits = httpx.Limits(max_connections=jobs, max_keepalive_connections=jobs)
        limit = RateLimit(self.rate_limit_per_s) if self.rate_limit_per_s else None
        with httpx.Client(timeout=self.timeout, limits=limits, headers=headers) as client:
            call = _Call(client, limit, secret)
            return in_threads(lambda r: self._complete_one(call, r), requests, jobs, on_done)

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """Vectors for ``texts`` from ``{base_url}/embeddings`` with this provider's model (for
        the ``similar`` assertion); retried like completions, an error raised when it fails."""
        import httpx

        secret = self._api_key()
        headers = {**self.headers, "Content-Type": "application/json"}
        if secret is not None:
            headers["Authorization"] = f"Bearer {secret}"
        payload = {"model": self.model, "input": list(texts)}
        with httpx.Client(timeout=self.timeout, headers=headers) as client:

            def once() -> list[list[float]] | Retry:
                try:
                    reply = client.post(f"{self.base_url}/embeddings", json=payload)
                except httpx.RequestError as exc:
                    return Retry(f"{type(exc).__name__}: {exc}")
                if reply.status_code == 200:
                    rows = sorted(reply.json()["data"], key=lambda d: d["index"])
                    return [[float(x) for x in row["embedding"]] for row in rows]
                problem = f"HTTP {reply.status_code}{_detail(reply.content, secret)}"
                if reply.status_code in (408, 429) or reply.status_code >= 500:
                    return Retry(problem, _seconds(reply.headers.get("Retry-After")))
                raise UsageError(f"provider {self.name}: embeddings failed: {problem}")

            out, _n = self._retried(once)
        if isinstance(out, Retry):
            raise UsageError(f"provider {self.name}: embeddings failed: {out.error}")
        return out

    def _api_key(self) -> str | None:
        if self.api_key_env is None:
            return None
        value = os.environ.get(self.api_key_env)
        if not value:
            raise UsageError(
                f"provider {self.name} reads its API key from ${self.api_key_env}, which is not "
                f"set: export {self.api_key_env}=... and run again"
            )
        return value

    def _complete_one(self, call: _Call, request: Request) -> Response:
        payload = json.dumps(request.body(), ensure_ascii=False).encode()
        latency = [0.0]  # the last attempt's

        def once() -> Response | Retry:
            if call.limit is not None:
                call.limit.wait()
            start = time.perf_counter()
            try:
                return self._attempt(call, payload, request.model)
            finally:
                latency[0] = time.perf_counter() - start

        outcome, tries = self._retried(once)
        if isinstance(outcome, Response):
            return replace(outcome, latency_s=latency[0])
        said = f"{tries} attempt" + ("s" if tries > 1 else "")
        return Response.failed(request.model, f"{outcome.error} (after {said})", latency[0])

    def _retried(self, once: Callable[[], T | Retry]) -> tuple[T | Retry, int]:
        return attempts(
            once, retries=self.max_retries, backoff_s=self.backoff_s, max_wait_s=self.max_backoff_s
        )

    def _attempt(self, call: _Call, payload: bytes, model: str) -> Response | Retry:
        import httpx

        try:
            reply = call.client.post(f"{self.base_url}/chat/completions", content=payload)
        except httpx.TimeoutException as exc:
            return Retry(f"timed out after {self.timeout:g} s ({type(exc).__name__})")
        except httpx.RequestError as exc:
            return Retry(f"request failed: {type(exc).__name__}: {exc}")
        status = reply.status_code
        if status in (408, 429) or status >= 500:
            retry_after = _seconds(reply.headers.get("Retry-After"))
            return Retry(f"HTTP {status}{_detail(reply.content, call.secret)}", retry_after)
        if status >= 400:
            return Response.failed(
                model,
                f"HTTP {status}{_detail(reply.content, call.secret)}: check the model name, "
                "the parameters and the API key",
            )
        try:
            return parse_completion(json.loads(reply.content), model)
        except ValueError as exc:
            return Retry(f"malformed answer: {exc}")


def _seconds(retry_after: str | None) -> float | None:
    """A ``Retry-After`` header (seconds, or an HTTP date) in seconds from now."""
    if not retry_after:
        return None
    try:
        return max(0.0, float(retry_after))
    except ValueError:
        pass
    import email.utils

    try:
        when = email.utils.parsedate_to_datetime(retry_after)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _detail(body: bytes, secret: str | None) -> str:
    """The server's error message, short, with the API key masked should the server echo it."""
    text = body[:300].decode("utf-8", "replace").strip()
    try:
        message = json.loads(body)["error"]["message"]
        text = str(message)[:300]
    except (ValueError, KeyError, TypeError):
        pass
    if secret:
        text = text.replace(secret, "***")
    return f": {text}" if text else ""
