"""What every model provider shares: a request, its response, the ``Provider`` protocol, and
answering many requests on threads or one by one. A provider never raises for one failing case:
the case's ``Response`` carries ``error`` and counts as a failure, never as a pass."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Protocol

from tether.errors import UsageError
from tether.hashing import hash_bytes

if TYPE_CHECKING:
    from concurrent.futures import Future

Message = tuple[str, str]
OnDone = Callable[[int, "Response"], None]
RESERVED_PARAMS = frozenset({"model", "messages", "stream"})


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


def in_threads(
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


def one_by_one(
    answer: Callable[[Request], Response], requests: Sequence[Request], on_done: OnDone | None
) -> list[Response]:
    out = []
    for i, request in enumerate(requests):
        out.append(answer(request))
        if on_done is not None:
            on_done(i, out[-1])
    return out


def shifted(on_done: OnDone, offset: int) -> OnDone:
    return lambda i, response: on_done(i + offset, response)


def parse_completion(doc: Any, model: str) -> Response:
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
