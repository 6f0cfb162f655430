"""``jobfleet demo``: fresh demo databases with realistic data, a worker sweeping them, a trickle of
jobs from a pretend backend, and the dashboard beside them.

It uses the configured servers but its own databases (PostgreSQL ``jobfleet_demo``, MariaDB/MySQL
databases prefixed ``jobfleet_demo_``, Redis database 9; ``--name`` and ``--redis-db`` choose
others), recreated on every start, so it never touches real data. Ctrl-C stops all of it.
"""

import argparse
import asyncio
import contextlib
import secrets
import socket

import asyncpg
from sqlalchemy import update
from sqlalchemy.engine import make_url

from cli import demo_traffic
from db.engines import pickatale_engine, pinteach_engine, pinteach_url
from db.pickatale import DATABASES
from db.pinteach import scheduled_messages
from db.schema import create_pickatale, create_pinteach
from demo import (
    calendar,
    credits,
    gdpr,
    learners,
    licenses,
    lifecycle,
    messages,
    payments,
    retention,
    reviews,
    sessions,
    teacher_retention,
    waitlist,
)
from jobfleet import keys
from jobfleet.connect import connect
from jobfleet.settings import Settings
from ops.dashboard.auth import Credentials
from workers import connections
from workers.fleet import Fleet
from workers.logging import configure

DEMO_DATABASE = "jobfleet_demo"
DEMO_REDIS_DB = 9
DASHBOARD_PORT = 8765
# long enough for a short job to finish, short enough that Ctrl-C feels immediate
DEMO_SHUTDOWN_GRACE_S = 3


def demo_settings(settings: Settings, name: str = DEMO_DATABASE, redis_db: int = DEMO_REDIS_DB) -> Settings:
    pinteach = pinteach_url(settings.pinteach_dsn).set(database=name)
    redis = make_url(settings.redis_url.replace("rediss://", "redis://", 1))
    redis_url = (
        settings.redis_url.rsplit("/", 1)[0] if redis.database is not None else settings.redis_url.rstrip("/")
    )
    return settings.model_copy(
        update={
            "pinteach_dsn": pinteach.set(drivername="postgresql").render_as_string(hide_password=False),
            "pickatale_db_prefix": f"{name}_",
            "redis_url": f"{redis_url}/{redis_db}",
            "shutdown_grace_s": DEMO_SHUTDOWN_GRACE_S,
        }
    )


async def reset_databases(settings: Settings) -> None:
    url = pinteach_url(settings.pinteach_dsn)
    name, prefix = url.database, settings.pickatale_db_prefix
    admin = await asyncpg.connect(
        host=url.host, port=url.port or 5432, user=url.username, password=url.password, database="postgres"
    )
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    pg = pinteach_engine(settings.pinteach_dsn, pool_size=1)
    my = pickatale_engine(settings.pickatale_dsn, pool_size=1)
    try:
        await create_pinteach(pg)
        async with my.begin() as conn:
            for name in DATABASES:
                await conn.exec_driver_sql(f"DROP DATABASE IF EXISTS `{prefix}{name}`")
        await create_pickatale(my, prefix)
    finally:
        await pg.dispose()
        await my.dispose()
    redis = connect(settings.redis_target)
    await redis.flushdb()
    await redis.aclose()


async def load_data(settings: Settings) -> None:
    pg = pinteach_engine(settings.pinteach_dsn, pool_size=1)
    my = pickatale_engine(settings.pickatale_dsn, prefix=settings.pickatale_db_prefix, pool_size=1)
    try:
        async with pg.begin() as conn:
            demos = (
                sessions,
                credits,
                waitlist,
                payments,
                gdpr,
                calendar,
                lifecycle,
                reviews,
                teacher_retention,
            )
            for seed in demos:
                await seed.seed_demo(conn)
            demo_messages = await messages.seed_demo(conn)
        async with my.begin() as conn:
            await licenses.seed_demo(conn)
            await retention.seed_demo(conn)
            await learners.seed_demo(conn)
        # as the backend does: the message's own deferred job, its id stored on the message
        message_id, scheduled_for = demo_messages.deferred
        async with connections.producer(settings) as producer:
            job_id = await producer.enqueue(
                "messages.deliver", {"message_id": message_id}, key=str(message_id), defer_until=scheduled_for
            )
        async with pg.begin() as conn:
            await conn.execute(
                update(scheduled_messages).where(scheduled_messages.c.id == message_id).values(job_id=job_id)
            )
    finally:
        await pg.dispose()
        await my.dispose()


def dashboard_socket(port: int = DASHBOARD_PORT) -> socket.socket:
    """A listening socket on loopback: the usual port, or any free one when it is taken."""
    sock = socket.socket()
    try:
        sock.bind(("127.0.0.1", port))
    except OSError:
        sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    return sock


class _QuietServer:
    """uvicorn serving in the fleet's event loop; the fleet owns the signals (Ctrl-C stops both)."""

    def __init__(self, app: object, sock: socket.socket) -> None:
        import uvicorn

        class Server(uvicorn.Server):
            @contextlib.contextmanager
            def capture_signals(self):  # type: ignore[no-untyped-def]
                yield

        self.sock = sock
        self.server = Server(uvicorn.Config(app, log_level="warning", lifespan="on", server_header=False))

    async def serve(self) -> None:
        await self.server.serve(sockets=[self.sock])

    def stop(self) -> None:
        self.server.should_exit = True


def main(args: argparse.Namespace, settings: Settings) -> int:
    from ops.dashboard.app import create_app

    settings = demo_settings(settings, args.name, args.redis_db)
    if "log_format" not in settings.model_fields_set:
        settings = settings.model_copy(update={"log_format": "console"})
    configure(settings.log_level, settings.log_format)
    name = pinteach_url(settings.pinteach_dsn).database
    print(
        f"jobfleet demo: PostgreSQL database {name}, Pickatale databases {settings.pickatale_db_prefix}*, "
        f"Redis database {args.redis_db}; recreating them with demo data...",
        flush=True,
    )

    async def run() -> int:
        await reset_databases(settings)
        await load_data(settings)
        fleet = Fleet(settings, list(keys.ALL_QUEUES))
        background: list[asyncio.Task] = []
        dashboard = None
        if not args.no_dashboard:
            sock = dashboard_socket(args.port)
            link = secrets.token_urlsafe(24)
            app = create_app(
                settings, credentials=Credentials(token=secrets.token_urlsafe(24)), login_link=link
            )
            dashboard = _QuietServer(app, sock)
            background.append(asyncio.create_task(dashboard.serve()))
            while not dashboard.server.started:
                if background[0].done():
                    background[0].result()  # it failed to start: say why
                await asyncio.sleep(0.05)
            port = sock.getsockname()[1]
            print(
                f"jobfleet demo: dashboard on http://127.0.0.1:{port}/ - open "
                f"http://127.0.0.1:{port}/login/link?token={link} to sign in (the link works once)",
                flush=True,
            )
        print(
            "jobfleet demo: data loaded; a worker runs the schedules and a pretend backend enqueues a few "
            "jobs a second (Ctrl-C stops everything).",
            flush=True,
        )
        engine = pinteach_engine(settings.pinteach_dsn, pool_size=2)
        producer = connections.producer(settings)
        background.append(asyncio.create_task(demo_traffic.run(engine, producer, fleet.stopping)))
        try:
            await fleet.run()
        finally:
            if dashboard is not None:
                dashboard.stop()
            fleet.stopping.set()
            await asyncio.gather(*background, return_exceptions=True)
            await producer.close()
            await engine.dispose()
        return 0

    return asyncio.run(run())
