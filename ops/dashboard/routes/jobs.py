"""Jobs: search by name, id, status and time; one job's page; abort a running job, cancel a waiting one."""

from datetime import UTC, datetime
from urllib.parse import quote, urlencode

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from jobfleet import keys, wire
from jobfleet.catalog import CATALOG
from jobfleet.producer import Producer
from ops import queries
from ops.dashboard import rendering
from ops.dashboard.csrf import checked_form
from workers.history import STATUSES

WAITING = ("queued", "deferred")
ALL_STATUSES = ("finished", *STATUSES, *WAITING, "in_progress")


def _time_ms(value: str | None, what: str) -> int | None:
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise HTTPException(400, f"{what} {value!r} is not a time like 2026-11-22T10:00 (UTC)") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


async def job_list(request: Request) -> Response:
    params = request.query_params
    if job_id := params.get("id", "").strip():
        return RedirectResponse(f"/jobs/{quote(job_id, safe='')}", status_code=303)
    status = params.get("status") or "finished"
    if status not in ALL_STATUSES:
        raise HTTPException(400, f"unknown status {status!r}; one of: {', '.join(ALL_STATUSES)}")
    job = params.get("job") or None
    queue_name = params.get("queue") or "default"
    if queue_name not in keys.QUEUE_ALIASES:
        raise HTTPException(400, f"unknown queue {queue_name!r}; one of: {', '.join(keys.QUEUE_ALIASES)}")
    since_ms, until_ms = _time_ms(params.get("since"), "since"), _time_ms(params.get("until"), "until")
    number, offset = rendering.page_args(request)
    redis = request.app.state.redis
    if status in WAITING:
        result = await queries.waiting_jobs(
            redis,
            queue=keys.QUEUE_ALIASES[queue_name],
            deferred=status == "deferred",
            job=job,
            offset=offset,
            limit=rendering.PAGE_SIZE,
        )
    elif status == "in_progress":
        running = [
            r for r in queries.running_jobs(await queries.workers(redis)) if job is None or r["job"] == job
        ]
        rows = [
            queries.JobRow(
                r["job_id"],
                r["job"],
                "in_progress",
                queries.QUEUE_NAMES.get(r["queue"]),
                int(r["since"] * 1000),
                r["try"],
            )
            for r in running
        ]
        result = queries.JobPage(len(rows), rows[offset : offset + rendering.PAGE_SIZE])
    else:
        result = await queries.finished_jobs(
            redis,
            job=job,
            status=None if status == "finished" else status,
            since_ms=since_ms,
            until_ms=until_ms,
            offset=offset,
            limit=rendering.PAGE_SIZE,
        )
    query = {k: v for k, v in params.items() if k != "page" and v}
    return rendering.page(
        request,
        "jobs.html",
        result=result,
        status=status,
        job=job,
        queue=queue_name,
        since=params.get("since", ""),
        until=params.get("until", ""),
        statuses=ALL_STATUSES,
        names=sorted({*CATALOG, *([job] if job else [])}),
        queues=list(keys.QUEUE_ALIASES),
        page_number=number,
        pages=max((result.total + rendering.PAGE_SIZE - 1) // rendering.PAGE_SIZE, 1),
        base_query=urlencode(query),
    )


async def job_page(request: Request) -> Response:
    job_id = request.path_params["job_id"]
    redis = request.app.state.redis
    detail = await queries.job_detail(redis, job_id, await queries.workers(redis))
    if detail is None:
        raise HTTPException(404, f"no job {job_id!r}: never enqueued, or finished before the history kept it")
    return rendering.page(request, "job.html", job=detail)


async def abort(request: Request) -> Response:
    await checked_form(request)
    job_id = request.path_params["job_id"]
    redis = request.app.state.redis
    if not await redis.exists(keys.in_progress_key_prefix + job_id):
        return rendering.back(f"/jobs/{quote(job_id, safe='')}", f"{job_id} is not running: nothing to abort")
    # arq's own mechanism: the worker running it cancels the task at its next poll
    await redis.zadd(keys.ABORT_JOBS, {job_id: wire.now_ms()})
    return rendering.back(f"/jobs/{quote(job_id, safe='')}", f"abort requested for {job_id}")


async def cancel(request: Request) -> Response:
    await checked_form(request)
    job_id = request.path_params["job_id"]
    cancelled = await Producer(request.app.state.redis).cancel(job_id)
    message = (
        f"cancelled {job_id}"
        if cancelled
        else f"{job_id} is not waiting (running or finished): not cancelled"
    )
    return rendering.back(f"/jobs/{quote(job_id, safe='')}", message)


routes = [
    Route("/jobs", job_list, methods=["GET"]),
    Route("/jobs/{job_id:path}/abort", abort, methods=["POST"]),
    Route("/jobs/{job_id:path}/cancel", cancel, methods=["POST"]),
    Route("/jobs/{job_id:path}", job_page, methods=["GET"]),
]
