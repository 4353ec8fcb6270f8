"""The one retry policy for calls to a model endpoint (completions, embeddings), on tenacity:
an attempt returns its result or a :class:`Retry` saying why it is worth repeating; attempts stop
after ``retries`` more, waiting an exponential backoff with full jitter between them, or what the
server's ``Retry-After`` asked (both capped at ``max_wait_s``). The last ``Retry`` is returned,
never raised: one failing case is an error row, not an aborted eval."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import tenacity

T = TypeVar("T")


@dataclass(frozen=True)
class Retry:
    """A failed attempt worth repeating, and how long the server asked to wait (seconds)."""

    error: str
    retry_after: float | None = None


def nap(seconds: float) -> None:
    """How the policy waits (a test replaces it to see the waits without spending them)."""
    time.sleep(seconds)


def attempts(
    attempt: Callable[[], T | Retry], *, retries: int, backoff_s: float, max_wait_s: float
) -> tuple[T | Retry, int]:
    """The first result of ``attempt`` that is not a :class:`Retry`, else the last ``Retry``;
    and how many attempts were made."""
    backoff = tenacity.wait_random_exponential(multiplier=backoff_s, max=max_wait_s)

    def wait(state: tenacity.RetryCallState) -> float:
        outcome = state.outcome.result() if state.outcome is not None else None
        if isinstance(outcome, Retry) and outcome.retry_after is not None:
            return min(outcome.retry_after, max_wait_s)
        return float(backoff(state))

    retrying = tenacity.Retrying(
        stop=tenacity.stop_after_attempt(retries + 1),
        wait=wait,
        retry=tenacity.retry_if_result(lambda r: isinstance(r, Retry)),
        retry_error_callback=lambda state: state.outcome.result() if state.outcome else None,
        sleep=lambda s: nap(s),
    )
    result = retrying(attempt)
    return result, int(retrying.statistics.get("attempt_number", 1))
