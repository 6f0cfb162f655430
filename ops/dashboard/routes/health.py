"""Domain health in PinTeach and Pickatale, and /metrics for Prometheus."""

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ops import metrics
from ops.dashboard import rendering


async def health(request: Request) -> Response:
    return rendering.page(request, "health.html", health=await request.app.state.health.get())


async def metrics_endpoint(request: Request) -> Response:
    state = request.app.state
    snap = await metrics.snapshot(state.redis, state.schedules, state.health)
    return Response(metrics.render(snap), media_type=metrics.CONTENT_TYPE)


routes = [
    Route("/health", health, methods=["GET"]),
    Route("/metrics", metrics_endpoint, methods=["GET"]),
]
