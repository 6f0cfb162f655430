"""The overview: queues, throughput and failure rate, workers, schedules and domain health at a glance."""

import time

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from jobfleet import keys
from ops import queries
from ops.dashboard import rendering
from ops.dashboard.charts import throughput_chart


async def overview(request: Request) -> Response:
    redis = request.app.state.redis
    states = await queries.workers(redis)
    queue_states = await queries.queues(redis, states)
    flow = await queries.throughput(redis)
    schedule_states = await queries.schedules(redis, request.app.state.schedules)
    now = time.time()
    late = [
        s
        for s in schedule_states
        if (s.last_run and s.last_run["outcome"] != "succeeded")
        or (s.last_success_at is not None and now - s.last_success_at > 2 * s.period_s)
    ]
    return rendering.page(
        request,
        "overview.html",
        queues=queue_states,
        totals={
            attr: sum(getattr(q, attr) for q in queue_states)
            for attr in ("queued", "deferred", "in_progress")
        },
        failed_recorded=await redis.zcard(keys.FAILED_INDEX),
        hour=flow.rate("hour"),
        day=flow.rate("day"),
        hour_chart=throughput_chart(
            flow.minutes, label_every=10, time_format="%H:%M", title="Jobs per minute, last hour"
        ),
        day_chart=throughput_chart(
            flow.hours, label_every=4, time_format="%H:00", title="Jobs per hour, last day"
        ),
        per_job=sorted(flow.per_job_hour.items()),
        workers_alive=sum(1 for w in states if w.alive),
        running=len(queries.running_jobs(states)),
        late_schedules=late,
        health=await request.app.state.health.get(),
    )


routes = [Route("/", overview, methods=["GET"])]
