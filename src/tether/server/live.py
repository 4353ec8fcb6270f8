"""``GET /api/v1/projects/{project}/runs/live``: running runs as server-sent events, for the
runs table and a running run's charts."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from tether import api
from tether.server.routes import ProjectName, Who, project_hub

router = APIRouter(prefix="/api/v1")

LIVE_EVERY_S = 2.0
LIVE_FOR_S = 15 * 60.0


@router.get("/projects/{project}/runs/live")
async def live_runs(
    request: Request,
    who: Who,
    project: ProjectName,
    ids: Annotated[str, Query(max_length=20_000)],
) -> StreamingResponse:
    """Server-sent events: every 2 s, the status and last metric values (and their steps) of
    these runs (ids comma-separated, 200 at most) while any is running (15 minutes at most)."""
    hub = project_hub(request, who, project, "reader")
    wanted = [i for i in ids.split(",") if i][:200]

    async def events() -> Any:
        until = time.monotonic() + LIVE_FOR_S
        while time.monotonic() < until and not await request.is_disconnected():
            rows = await run_in_threadpool(hub.get_runs, project, wanted)
            doc = [api.run_document(r) for r in rows]
            shown = [
                {"id": d["id"], "status": d["status"],
                 "metrics": {k: m["last"] for k, m in d["metrics"].items()},
                 "steps": {k: m["step"] for k, m in d["metrics"].items()}}
                for d in doc
            ]  # fmt: skip
            yield f"data: {json.dumps({'runs': shown})}\n\n"
            if not any(d["status"] == "running" for d in doc):
                yield "event: done\ndata: {}\n\n"
                return
            await asyncio.sleep(LIVE_EVERY_S)

    return StreamingResponse(
        events(), media_type="text/event-stream", headers={"Cache-Control": "no-store"}
    )
