"""The response cache: re-asking an unchanged case is free."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from tether._fs import atomic_write
from tether.errors import UsageError
from tether.hashing import PREFIX, is_object_id
from tether.prompts.calls import OnDone, Provider, Request, Response

CACHE_VERSION = 1


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
