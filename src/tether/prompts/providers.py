"""Model providers for prompt evaluation, and the cache that makes re-asking unchanged cases free.

Three kinds, named by ``type`` in a suite's provider config (``provider_from_config``):

- ``openai``: any OpenAI-compatible chat-completions endpoint over HTTP (OpenAI, vLLM, Ollama,
  llama.cpp's server, LiteLLM). Concurrent, rate-limited, retried with backoff.
- ``scripted``: a stand-in for a model, for tests and the demo. No model runs: answers come from
  rules written in the suite. Results it produces say nothing about any real model.
- ``llama-cpp``: a local GGUF file through llama-cpp-python (optional, installed separately).

A provider never raises for one failing case: the case's ``Response`` carries ``error`` and counts
as a failure, never as a pass. It raises only for what stops every case (a missing API key).

Concurrency for ``openai`` is threads sharing one ``httpx.Client``. Measured against ``fakeserver``
answering in 50 ms, 1,000 requests at 32 jobs on 2 cores: threads 598 requests/s at 0.54 ms of
client CPU per request; ``httpx.AsyncClient`` with asyncio 564 requests/s at 1.0 ms (2.6 ms when
the server answers at once). Threads also work when the caller already runs an event loop.
"""

from __future__ import annotations

import importlib
import json
import os
import random
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from tether._fs import atomic_write
from tether.errors import ConfigError, UsageError
from tether.hashing import PREFIX, hash_bytes, is_object_id

if TYPE_CHECKING:
    from concurrent.futures import Future

    import httpx

Message = tuple[str, str]
OnDone = Callable[[int, "Response"], None]
RESERVED_PARAMS = frozenset({"model", "messages", "stream"})
CACHE_VERSION = 1
OPENAI_URL = "https://api.openai.com/v1"


@dataclass(frozen=True)
class Request:
    """One chat completion to ask for. ``params`` are sampling parameters (temperature, max_tokens,
    seed, ...), kept sorted by name; ``repeat`` tells apart the K asks of one case under
    ``--repeat K``. ``Request.build`` takes a plain mapping of params."""

    model: str
    messages: tuple[Message, ...]
    params: tuple[tuple[str, Any], ...] = ()
    repeat: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "messages", tuple((r, c) for r, c in self.messages))
        object.__setattr__(self, "params", tuple(sorted(dict(self.params).items())))
        clash = RESERVED_PARAMS.intersection(dict(self.params))
        if clash:
            raise UsageError(
                f"{', '.join(sorted(clash))} cannot be a sampling parameter: remove it"
            )
        if self.repeat < 0:
            raise UsageError(f"repeat index {self.repeat} is negative: count repeats from 0")
        try:
            json.dumps(self.params)
        except (TypeError, ValueError) as exc:
            raise UsageError(f"sampling parameters must be JSON values: {exc}") from exc

    @classmethod
    def build(
        cls,
        model: str,
        messages: Iterable[Message],
        params: Mapping[str, Any] | None = None,
        repeat: int = 0,
    ) -> Request:
        return cls(model, tuple(messages), tuple((params or {}).items()), repeat)

    def body(self) -> dict[str, Any]:
        """The JSON body of a chat-completions call."""
        messages = [{"role": role, "content": content} for role, content in self.messages]
        return {"model": self.model, "messages": messages, **dict(self.params)}

    @property
    def last_user_message(self) -> str:
        return next((c for r, c in reversed(self.messages) if r == "user"), "")

    def key(self, scope: str = "") -> str:
        """A blake3 id of everything that determines the answer, and the repeat index. ``scope``
        names what else does (``Provider.fingerprint``: the endpoint, the rules, the model file)."""
        doc = {"v": 1, "scope": scope, "body": self.body(), "repeat": self.repeat}
        canonical = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return hash_bytes(canonical.encode())


@dataclass(frozen=True)
class Response:
    """A model's answer, or why there is none (``error``: never a pass). ``latency_s`` is the last
    attempt's; ``cached`` says it came from the ``ResponseCache``."""

    text: str
    tokens_in: int = 0
    tokens_out: int = 0
    latency_s: float = 0.0
    model: str = ""
    error: str | None = None
    cached: bool = False

    @property
    def ok(self) -> bool:
        return self.error is None

    @classmethod
    def failed(cls, model: str, error: str, latency_s: float = 0.0) -> Response:
        return cls("", latency_s=latency_s, model=model, error=error)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> Response:
        return cls(
            text=str(doc["text"]),
            tokens_in=int(doc["tokens_in"]),
            tokens_out=int(doc["tokens_out"]),
            latency_s=float(doc["latency_s"]),
            model=str(doc["model"]),
            error=None if doc.get("error") is None else str(doc["error"]),
            cached=bool(doc.get("cached", False)),
        )


class Provider(Protocol):
    """Answers requests. ``complete_many`` returns one ``Response`` per request, in request order,
    and calls ``on_done(index, response)`` once per request as each finishes, on the calling
    thread. ``fingerprint`` names what besides a request determines its answer."""

    @property
    def name(self) -> str: ...

    @property
    def model(self) -> str: ...

    @property
    def fingerprint(self) -> str: ...

    def complete_many(
        self, requests: Sequence[Request], *, jobs: int = 1, on_done: OnDone | None = None
    ) -> list[Response]: ...


# -- openai: any OpenAI-compatible endpoint ------------------------------------------------------
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
class _Retry:
    """A failed attempt worth repeating."""

    error: str
    retry_after: float | None = None


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
    errors and malformed answers are retried ``max_retries`` times with exponential backoff and
    jitter (a ``Retry-After`` is honoured, up to ``max_backoff_s``)."""

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
            return _in_threads(lambda r: self._complete_one(call, r), requests, jobs, on_done)

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """Vectors for ``texts`` from ``{base_url}/embeddings`` with this provider's model (for
        the ``similar`` assertion); retried like completions, an error raised when it fails."""
        import httpx

        secret = self._api_key()
        headers = {**self.headers, "Content-Type": "application/json"}
        if secret is not None:
            headers["Authorization"] = f"Bearer {secret}"
        payload = {"model": self.model, "input": list(texts)}
        problem = ""
        with httpx.Client(timeout=self.timeout, headers=headers) as client:
            for attempt in range(self.max_retries + 1):
                try:
                    reply = client.post(f"{self.base_url}/embeddings", json=payload)
                except httpx.RequestError as exc:
                    problem = f"{type(exc).__name__}: {exc}"
                else:
                    if reply.status_code == 200:
                        rows = sorted(reply.json()["data"], key=lambda d: d["index"])
                        return [[float(x) for x in row["embedding"]] for row in rows]
                    problem = f"HTTP {reply.status_code}{_detail(reply.content, secret)}"
                    if reply.status_code < 500 and reply.status_code not in (408, 429):
                        break
                if attempt < self.max_retries:
                    time.sleep(self._backoff(attempt, None))
        raise UsageError(f"provider {self.name}: embeddings failed: {problem}")

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
        attempt = 0
        while True:
            if call.limit is not None:
                call.limit.wait()
            start = time.perf_counter()
            outcome = self._attempt(call, payload, request.model)
            latency = time.perf_counter() - start
            if isinstance(outcome, Response):
                return replace(outcome, latency_s=latency)
            if attempt >= self.max_retries:
                tries = f"{attempt + 1} attempt" + ("s" if attempt else "")
                return Response.failed(request.model, f"{outcome.error} (after {tries})", latency)
            time.sleep(self._backoff(attempt, outcome.retry_after))
            attempt += 1

    def _attempt(self, call: _Call, payload: bytes, model: str) -> Response | _Retry:
        import httpx

        try:
            reply = call.client.post(f"{self.base_url}/chat/completions", content=payload)
        except httpx.TimeoutException as exc:
            return _Retry(f"timed out after {self.timeout:g} s ({type(exc).__name__})")
        except httpx.RequestError as exc:
            return _Retry(f"request failed: {type(exc).__name__}: {exc}")
        status = reply.status_code
        if status in (408, 429) or status >= 500:
            retry_after = _seconds(reply.headers.get("Retry-After"))
            return _Retry(f"HTTP {status}{_detail(reply.content, call.secret)}", retry_after)
        if status >= 400:
            return Response.failed(
                model,
                f"HTTP {status}{_detail(reply.content, call.secret)}: check the model name, "
                "the parameters and the API key",
            )
        try:
            return _parse_completion(json.loads(reply.content), model)
        except ValueError as exc:
            return _Retry(f"malformed answer: {exc}")

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, self.max_backoff_s)
        ceiling = min(self.max_backoff_s, self.backoff_s * 2**attempt)
        return random.uniform(ceiling / 2, ceiling)


def _in_threads(
    answer: Callable[[Request], Response],
    requests: Sequence[Request],
    jobs: int,
    on_done: OnDone | None,
) -> list[Response]:
    """``answer`` each request on ``jobs`` threads; ``on_done`` runs on the calling thread."""
    from concurrent.futures import ThreadPoolExecutor, as_completed

    out: list[Response | None] = [None] * len(requests)
    pool = ThreadPoolExecutor(jobs, thread_name_prefix="tether-provider")
    try:
        futures: dict[Future[Response], int] = {
            pool.submit(answer, r): i for i, r in enumerate(requests)
        }
        for future in as_completed(futures):
            i = futures[future]
            out[i] = response = future.result()
            if on_done is not None:
                on_done(i, response)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return [r for r in out if r is not None]


def _one_by_one(
    answer: Callable[[Request], Response], requests: Sequence[Request], on_done: OnDone | None
) -> list[Response]:
    out = []
    for i, request in enumerate(requests):
        out.append(answer(request))
        if on_done is not None:
            on_done(i, out[-1])
    return out


def _shifted(on_done: OnDone, offset: int) -> OnDone:
    return lambda i, response: on_done(i + offset, response)


def _parse_completion(doc: Any, model: str) -> Response:
    """``choices[0].message.content`` and the usage counts of a chat completion."""
    if not isinstance(doc, dict):
        raise ValueError("the answer is not a JSON object")
    try:
        text = doc["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError) as exc:
        raise ValueError("the answer has no choices[0].message.content") from exc
    if not isinstance(text, str):
        raise ValueError("choices[0].message.content is not text")
    usage = doc.get("usage")
    usage = usage if isinstance(usage, dict) else {}
    return Response(
        text,
        tokens_in=int(usage.get("prompt_tokens") or 0),
        tokens_out=int(usage.get("completion_tokens") or 0),
        model=str(doc.get("model") or model),
    )


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


# -- scripted: a stand-in for tests and the demo -------------------------------------------------
@dataclass(frozen=True)
class _Rule:
    answer: str
    contains: tuple[str, ...] = ()
    regex: re.Pattern[str] | None = None

    def matches(self, text: str) -> bool:
        folded = text.casefold()
        if self.contains and not any(word in folded for word in self.contains):
            return False
        return self.regex is None or self.regex.search(text) is not None


class ScriptedProvider:
    """A stand-in for a model: no model runs, and scores it earns say nothing about any model.

    Rules from the suite are tried in order against the last user message; the first that matches
    gives the answer::

        [{"when": {"contains": "great"}, "answer": "positive"},     # any of a word or a list,
         {"when": {"regex": "\\bbad\\b"}, "answer": "negative"},   # ignoring case; re.search
         {"default": "neutral"}]                                   # matches anything

    A request no rule matches is an error. Tokens are estimated as characters // 4; ``latency_ms``
    simulates a model's delay per round of ``jobs`` requests. Deterministic.
    """

    def __init__(
        self,
        rules: Sequence[Mapping[str, Any]],
        *,
        name: str = "scripted",
        model: str = "scripted",
        latency_ms: float = 0.0,
    ) -> None:
        self.name, self.model = name, model
        self.rules = tuple(_compile_rule(name, i, rule) for i, rule in enumerate(rules))
        self.latency_s = latency_ms / 1000
        canonical = json.dumps(list(rules), sort_keys=True, separators=(",", ":"), default=str)
        self._fingerprint = "scripted:" + hash_bytes(canonical.encode())

    @property
    def fingerprint(self) -> str:
        return self._fingerprint

    def complete_many(
        self, requests: Sequence[Request], *, jobs: int = 1, on_done: OnDone | None = None
    ) -> list[Response]:
        if self.latency_s <= 0:
            return _one_by_one(self.answer, requests, on_done)
        out: list[Response] = []
        for start in range(0, len(requests), max(1, jobs)):  # one delay per round of jobs
            time.sleep(self.latency_s)
            chunk = requests[start : start + max(1, jobs)]
            done = None if on_done is None else _shifted(on_done, start)
            out += _one_by_one(self.answer, chunk, done)
        return out

    def answer(self, request: Request) -> Response:
        text = request.last_user_message
        rule = next((r for r in self.rules if r.matches(text)), None)
        if rule is None:
            return Response.failed(
                request.model, "no scripted rule matched: add a {default: ...} rule last"
            )
        return Response(
            rule.answer,
            tokens_in=sum(len(content) for _, content in request.messages) // 4,
            tokens_out=len(rule.answer) // 4,
            latency_s=self.latency_s,
            model=request.model,
        )


def _compile_rule(provider: str, index: int, rule: Mapping[str, Any]) -> _Rule:
    where = f"provider {provider}, rule {index + 1}"
    if not isinstance(rule, Mapping):
        raise ConfigError(f"{where}: a rule is a mapping, not {rule!r}")
    if set(rule) == {"default"}:
        return _Rule(str(rule["default"]))
    when = rule.get("when")
    if set(rule) != {"when", "answer"} or not isinstance(when, Mapping) or not when:
        raise ConfigError(
            f"{where}: write {{when: {{contains: ...}} or {{regex: ...}}, answer: ...}} "
            f"or {{default: ...}} (got {dict(rule)!r})"
        )
    unknown = set(when) - {"contains", "regex"}
    if unknown:
        raise ConfigError(f"{where}: unknown condition {sorted(unknown)}: use contains or regex")
    words = when.get("contains", ())
    words = (words,) if isinstance(words, str) else tuple(str(w) for w in words)
    try:
        regex = re.compile(when["regex"]) if "regex" in when else None
    except re.error as exc:
        raise ConfigError(f"{where}: the regex does not compile ({exc}): fix it") from exc
    return _Rule(str(rule["answer"]), tuple(w.casefold() for w in words), regex)


# -- llama-cpp: a local GGUF file ----------------------------------------------------------------
class LlamaCppProvider:
    """A GGUF model run in this process by llama-cpp-python, one request at a time (``jobs`` is
    ignored: one model instance is not thread-safe). The model loads on first use."""

    def __init__(
        self,
        model_path: str | Path,
        *,
        name: str = "llama-cpp",
        model: str | None = None,
        n_ctx: int = 4096,
    ) -> None:
        try:
            self._module = importlib.import_module("llama_cpp")
        except ImportError as exc:
            raise UsageError(
                f"provider {name} runs a GGUF file through llama-cpp-python, which is not "
                "installed: pip install llama-cpp-python"
            ) from exc
        self.name, self.model_path, self.n_ctx = name, Path(model_path), n_ctx
        self.model = model or self.model_path.stem
        self._llm: Any = None

    @property
    def fingerprint(self) -> str:
        size = self.model_path.stat().st_size if self.model_path.exists() else 0
        return f"llama-cpp:{self.model_path.resolve()}:{size}"

    def complete_many(
        self, requests: Sequence[Request], *, jobs: int = 1, on_done: OnDone | None = None
    ) -> list[Response]:
        return _one_by_one(self._complete_one, requests, on_done)

    def _complete_one(self, request: Request) -> Response:
        llm = self._load()
        body = request.body()
        start = time.perf_counter()
        try:
            doc = llm.create_chat_completion(messages=body["messages"], **dict(request.params))
            response = _parse_completion(doc, request.model)
        except Exception as exc:  # one failing case is an error, never a pass
            return Response.failed(request.model, f"llama.cpp: {exc}", time.perf_counter() - start)
        return replace(response, latency_s=time.perf_counter() - start)

    def _load(self) -> Any:
        if self._llm is None:
            if not self.model_path.is_file():
                raise UsageError(f"provider {self.name}: no model file at {self.model_path}")
            self._llm = self._module.Llama(
                model_path=str(self.model_path), n_ctx=self.n_ctx, verbose=False
            )
        return self._llm


# -- the cache -----------------------------------------------------------------------------------
class ResponseCache:
    """Answers by request key, one small JSON file each under ``folder/<2 hex>/<64 hex>``.
    Errors are never cached. The cache is disposable: an unreadable entry is a miss."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)

    def path(self, key: str) -> Path:
        if not is_object_id(key):
            raise UsageError(f"{key!r} is not a request key: use Request.key()")
        digest = key.removeprefix(PREFIX)
        return self.folder / digest[:2] / digest

    def get(self, key: str) -> Response | None:
        try:
            doc = json.loads(self.path(key).read_bytes())
            if doc.get("version") != CACHE_VERSION:
                return None
            return replace(Response.from_dict(doc), cached=True)
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return None

    def put(self, key: str, response: Response) -> None:
        if response.error is not None:
            return
        path = self.path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        doc = {"version": CACHE_VERSION, **response.to_dict(), "cached": False}
        atomic_write(path, json.dumps(doc, ensure_ascii=False).encode(), durable=False)


def cached_complete(
    provider: Provider,
    cache: ResponseCache,
    requests: Sequence[Request],
    *,
    jobs: int = 1,
    on_done: OnDone | None = None,
) -> list[Response]:
    """Answers from the cache (``cached=True``), asking ``provider`` only for the misses; each new
    answer is cached as it arrives, so an interrupted run keeps what it paid for."""
    keys = [r.key(provider.fingerprint) for r in requests]
    out = [cache.get(k) for k in keys]
    misses = [i for i, response in enumerate(out) if response is None]
    if on_done is not None:
        for i, response in enumerate(out):
            if response is not None:
                on_done(i, response)

    if not misses:
        return [r for r in out if r is not None]
    # answers are written to the cache by one background thread as they arrive: the calling
    # thread keeps handing out requests instead of waiting on the disk
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1, thread_name_prefix="tether-cache") as writer:

        def done(j: int, response: Response) -> None:
            writer.submit(cache.put, keys[misses[j]], response)
            if on_done is not None:
                on_done(misses[j], response)

        answers = provider.complete_many([requests[i] for i in misses], jobs=jobs, on_done=done)
    for i, response in zip(misses, answers, strict=True):
        out[i] = response
    return [r for r in out if r is not None]


# -- from a suite's config -----------------------------------------------------------------------
_KINDS: dict[str, tuple[Callable[..., Provider], frozenset[str]]] = {
    "openai": (
        OpenAIProvider,
        frozenset(
            [
                "base_url",
                "api_key_env",
                "model",
                "timeout",
                "max_retries",
                "rate_limit_per_s",
                "headers",
            ]
        ),
    ),
    "scripted": (ScriptedProvider, frozenset({"rules", "model", "latency_ms"})),
    "llama-cpp": (LlamaCppProvider, frozenset({"model_path", "model", "n_ctx"})),
}


def check_endpoint(
    name: str,
    config: Mapping[str, Any],
    trusted: Any,
    trusted_from: str,
    environ: Mapping[str, str] | None = None,
) -> None:
    """Refuse an ``openai`` provider whose API-key variable is set while its endpoint (where
    requests go, and which variable's key they carry) is not the one the trusted config gives
    (``trusted``: the provider's table there, or None): content a pull request changed must not
    send the key to an address it chose."""
    environ = os.environ if environ is None else environ
    key_env = config.get("api_key_env")
    if config.get("type") != "openai" or not key_env or not environ.get(str(key_env)):
        return  # no key would be sent
    if isinstance(trusted, Mapping) and _endpoint(trusted) == _endpoint(config):
        return
    url = _endpoint(config)[1]
    raise ConfigError(
        f"provider {name} would send ${key_env} to {url}, which {trusted_from} does not give "
        f"it: the key was not sent. A pull request cannot choose where a key goes; set the "
        f"endpoint in .tether/config.toml or TETHER_PROMPTS__PROVIDERS__{name.upper()}__BASE_URL "
        "where this job runs, or merge the change to tether.toml first"
    )


def _endpoint(config: Mapping[str, Any]) -> tuple[Any, str, Any]:
    url = str(config.get("base_url") or OPENAI_URL).strip().rstrip("/")
    return config.get("type"), url, config.get("api_key_env")


def provider_from_config(name: str, config: Mapping[str, Any]) -> Provider:
    """A provider from a suite's config: ``{"type": "openai", "base_url": ..., "api_key_env":
    "OPENAI_API_KEY", "model": ...}``, ``{"type": "scripted", "rules": [...]}`` or
    ``{"type": "llama-cpp", "model_path": ...}``. The keys are the constructors' arguments."""
    kind = config.get("type")
    if kind not in _KINDS:
        raise ConfigError(
            f"provider {name}: unknown type {kind!r}: use one of {', '.join(sorted(_KINDS))}"
        )
    if "api_key" in config:
        raise ConfigError(
            f"provider {name}: never write an API key into config; put it in an environment "
            "variable and name that variable in api_key_env"
        )
    build, allowed = _KINDS[kind]
    settings = {k: v for k, v in config.items() if k != "type"}
    unknown = set(settings) - allowed
    if unknown:
        raise ConfigError(
            f"provider {name}: unknown keys {', '.join(sorted(unknown))}; "
            f"a {kind} provider takes {', '.join(sorted(allowed))}"
        )
    try:
        return build(name=name, **settings)
    except (TypeError, ValueError, AttributeError) as exc:
        raise ConfigError(f"provider {name}: {exc}: fix the provider's config") from exc
