"""The fleet itself: jobs in progress (who runs what since when), jobs orphaned by a worker whose
lease lapsed and their recoveries, and the worker processes."""

import time

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ops import queries
from ops.dashboard import rendering


async def running(request: Request) -> Response:
    redis = request.app.state.redis
    states = await queries.workers(redis)
    return rendering.page(
        request,
        "running.html",
        jobs=queries.running_jobs(states),
        recoveries=await queries.recoveries(redis, states),
        now_s=time.time(),
    )


async def workers(request: Request) -> Response:
    states = await queries.workers(request.app.state.redis)
    return rendering.page(request, "workers.html", workers=states, now_s=time.time())


routes = [
    Route("/running", running, methods=["GET"]),
    Route("/workers", workers, methods=["GET"]),
]
