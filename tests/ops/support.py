"""Running real arq workers and the dashboard app in tests, and counting Redis commands."""

import asyncio
import contextlib
import importlib
import re
from collections import Counter
from collections.abc import AsyncIterator
from html import unescape
from urllib.parse import quote

import httpx
from redis.asyncio import Connection, Redis

from jobfleet import keys
from jobfleet.catalog import JOBS, JobSpec
from jobfleet.settings import Settings
from jobs.deps import Deps
from ops.dashboard.app import create_app
from ops.dashboard.auth import Credentials
from workers.failures import FailureRecord
from workers.health import Heartbeat
from workers.last_runs import LastRuns
from workers.stats import Stats
from workers.worker import FleetWorker, build_worker

TOKEN = "test-token-0123456789"
CREDENTIALS = Credentials(token=TOKEN, user="ops", password="correct horse")
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def runnable_specs(queue: str) -> list[JobSpec]:
    """The catalog's jobs of a queue whose handler modules exist on this branch."""
    specs = []
    for spec in JOBS:
        if spec.queue != queue:
            continue
        try:
            importlib.import_module(spec.handler.partition(":")[0])
        except ModuleNotFoundError:
            continue
        specs.append(spec)
    return specs


def worker(
    settings: Settings, deps: Deps, redis: Redis, queue: str, stats: Stats, *, burst: bool
) -> FleetWorker:
    return build_worker(
        queue,
        deps=deps,
        failures=FailureRecord(redis),
        stats=stats,
        specs=runnable_specs(queue),
        burst=burst,
        redis_target=settings.redis_target,
        max_jobs=10,
        poll_delay_s=0.02,
        shutdown_grace_s=1,
        history_max_jobs=settings.history_max_jobs,
        last_runs=LastRuns(redis),
    )


async def run_burst(settings: Settings, deps: Deps, redis: Redis, queue: str = keys.QUEUE_DEFAULT) -> Stats:
    """Run every job due on ``queue`` with a real arq worker, then add its counts to Redis."""
    stats = Stats()
    w = worker(settings, deps, redis, queue, stats, burst=True)
    try:
        await w.async_run()
    finally:
        await w.close()
    await stats.flush(redis)
    return stats


@contextlib.asynccontextmanager
async def live_worker(settings: Settings, deps: Deps, redis: Redis, queue: str = keys.QUEUE_DEFAULT):
    """A worker serving ``queue`` with a fast heartbeat, as a worker process runs them."""
    stats = Stats()
    w = worker(settings, deps, redis, queue, stats, burst=False)
    heartbeat = Heartbeat(redis, "test-worker-1", [queue], 10, stats, interval_s=0.1)

    async def beat() -> None:
        while True:
            await heartbeat.beat()
            await asyncio.sleep(heartbeat.interval_s)

    tasks = [asyncio.create_task(w.async_run()), asyncio.create_task(beat())]
    try:
        yield heartbeat
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await w.close()
        await heartbeat.remove()


async def eventually(check, timeout_s: float = 10, interval_s: float = 0.05):
    """Poll ``check`` (async, returns truthy when done) until it holds; fail with its last value."""
    async with asyncio.timeout(timeout_s):
        while True:
            if result := await check():
                return result
            await asyncio.sleep(interval_s)


class CountingConnection(Connection):
    """A connection that counts the commands it sends, pipelined or not."""

    commands: Counter[str] = Counter()

    def pack_command(self, *args):
        # pipelines pack each of their commands through here too
        name = args[0].decode() if isinstance(args[0], bytes) else str(args[0])
        CountingConnection.commands[name.upper()] += 1
        return super().pack_command(*args)


@contextlib.asynccontextmanager
async def dashboard(
    settings: Settings, *, credentials: Credentials = CREDENTIALS, counting: bool = False, auth: bool = True
) -> AsyncIterator[httpx.AsyncClient]:
    factory = (
        (lambda: Redis.from_url(settings.redis_url, connection_class=CountingConnection))
        if counting
        else None
    )
    app = create_app(settings, credentials=credentials, redis_factory=factory)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://testserver", headers=AUTH if auth else {}
        ) as client:
            client.app = app  # type: ignore[attr-defined]
            yield client


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', html)
    assert match, "the page has no CSRF field"
    return match.group(1)


def form_csrf(html: str, action: str) -> str:
    """The CSRF token in the form that posts to ``action``."""
    forms = re.findall(
        r'<form method="post" action="([^"]+)"[^>]*>\s*<input type="hidden" name="csrf" value="([^"]*)"', html
    )
    tokens = [token for url, token in forms if unescape(url) == action]
    assert tokens, f"the page has no form posting to {action}"
    assert tokens[0], f"the form posting to {action} has an empty CSRF token"
    return tokens[0]


async def post(client: httpx.AsyncClient, url: str, page: str, data: dict | None = None) -> httpx.Response:
    """Submit the form of ``page`` that posts to ``url``, as a browser does."""
    html = (await client.get(page)).text
    return await client.post(url, data={"csrf": form_csrf(html, quote(url)), **(data or {})})
