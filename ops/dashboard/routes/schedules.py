"""Periodic sweeps: last run, next run, and "run now"."""

import time
from urllib.parse import quote

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from jobfleet.producer import Producer
from ops import queries
from ops.dashboard import rendering
from ops.dashboard.csrf import checked_form


async def schedule_list(request: Request) -> Response:
    states = await queries.schedules(request.app.state.redis, request.app.state.schedules)
    return rendering.page(request, "schedules.html", schedules=states, now_s=time.time())


async def run_now(request: Request) -> Response:
    await checked_form(request)
    name = request.path_params["name"]
    if name not in {s.name for s in request.app.state.schedules}:
        raise HTTPException(404, f"no schedule {name!r}")
    # a fresh id: runs beside (not instead of) the scheduler's ticks; the sweep locks what it takes
    job_id = await Producer(request.app.state.redis).enqueue(name)
    return rendering.back(f"/jobs/{quote(job_id, safe='')}", f"enqueued {name} now as {job_id}")


routes = [
    Route("/schedules", schedule_list, methods=["GET"]),
    Route("/schedules/{name}/run", run_now, methods=["POST"]),
]
