"""Prometheus metrics: requests, their latency, runs logged and objects stored.

With several uvicorn workers, ``tether server`` points ``PROMETHEUS_MULTIPROC_DIR`` at a folder
of its own, and ``/metrics`` adds up every worker's numbers.
"""

from __future__ import annotations

import os
import time

from fastapi import Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from starlette.types import ASGIApp, Message, Receive, Scope, Send

REQUESTS = Counter(
    "tether_http_requests_total", "HTTP requests answered", ["method", "route", "status"]
)
LATENCY = Histogram(
    "tether_http_request_seconds",
    "Time to answer an HTTP request, by route",
    ["method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
RUNS = Counter("tether_runs_logged_total", "Runs accepted into a project's index")
OBJECTS = Counter("tether_objects_stored_total", "Objects received, verified and stored")
OBJECT_BYTES = Counter("tether_object_bytes_stored_total", "Bytes of objects stored")


class Measure:
    """Count each request and time it, by route template (pure ASGI: a body that streams, or
    is refused midway, passes through untouched)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = [500]

        async def noted(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, noted)
        finally:
            path = getattr(scope.get("route"), "path", "unmatched")
            LATENCY.labels(scope["method"], path).observe(time.perf_counter() - start)
            REQUESTS.labels(scope["method"], path, str(status[0])).inc()


def exposition() -> Response:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        data = generate_latest(registry)
    else:
        data = generate_latest()
    return Response(data, media_type=CONTENT_TYPE_LATEST)
