"""The dashboard's ASGI application: routes per area, authentication on everything, templates."""

import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from redis.asyncio import Redis
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles

from db.engines import pickatale_engine, pinteach_engine
from jobfleet.connect import connect
from jobfleet.settings import Settings
from jobs.deps import Deps
from ops.dashboard import rendering
from ops.dashboard.auth import AuthMiddleware, Credentials
from ops.dashboard.routes import failed, fleet, health, jobs, login, overview, schedules
from ops.health_queries import DomainHealthCache
from workers.scheduler import load_schedules

STATIC_DIR = Path(__file__).resolve().parent / "static"


def credentials_from(settings: Settings) -> Credentials:
    return Credentials(
        token=settings.dashboard_token.get_secret_value() if settings.dashboard_token else None,
        user=settings.dashboard_user,
        password=settings.dashboard_password.get_secret_value() if settings.dashboard_password else None,
    )


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return rendering.page(request, "error.html", status_code=exc.status_code, message=exc.detail)


def create_app(
    settings: Settings,
    *,
    credentials: Credentials | None = None,
    redis_factory: Callable[[], Redis] | None = None,
    login_link: str | None = None,
) -> Starlette:
    """``redis_factory`` lets a test count the commands a page view costs; ``login_link`` is a
    one-time token that signs in at ``/login/link?token=...`` (the demo prints that link)."""
    credentials = credentials or credentials_from(settings)
    configured_schedules = load_schedules(settings.schedules_file)  # a bad file fails at start-up

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        redis = redis_factory() if redis_factory else connect(settings.redis_target)
        # a dashboard asks little of the databases: small pools
        deps = Deps(
            settings,
            pinteach_engine(settings.pinteach_dsn, pool_size=2),
            pickatale_engine(settings.pickatale_dsn, prefix=settings.pickatale_db_prefix, pool_size=2),
        )
        app.state.redis = redis
        app.state.settings = settings
        app.state.schedules = configured_schedules
        app.state.health = DomainHealthCache(
            deps,
            ttl_s=settings.domain_health_cache_s,
            grace_s=settings.auto_complete_grace_s,
            timeout_s=settings.domain_health_timeout_s,
            retention_file=settings.retention_file,
        )
        try:
            yield
        finally:
            await redis.aclose()
            await deps.close()

    routes = [
        *login.routes,
        *overview.routes,
        *jobs.routes,
        *failed.routes,
        *fleet.routes,
        *schedules.routes,
        *health.routes,
        Mount("/static", StaticFiles(directory=STATIC_DIR), name="static"),
    ]
    app = Starlette(
        routes=routes,
        middleware=[Middleware(AuthMiddleware, credentials=credentials)],
        exception_handlers={HTTPException: _http_error},
        lifespan=lifespan,
    )
    app.state.credentials = credentials
    app.state.login_links = {login_link} if login_link else set()
    return app
