"""LISTEN ``job_outbox`` on a connection of its own, and wake the relay on every notification.

The table's trigger NOTIFYs at commit, so a wake-up follows each committing transaction within a
round trip. A notification sent while the connection is down is lost: after every (re)connect the
relay is woken once to catch up, and its periodic sweep covers the rest. An idle connection may
be dead without knowing it (a restarted server, a dropped route): it is asked ``SELECT 1`` every
``check_s`` and replaced when it does not answer.
"""

import asyncio
import contextlib

import asyncpg
import structlog

from jobfleet.outbox import CHANNEL

log = structlog.get_logger("jobfleet.outbox")
CONNECT_TIMEOUT_S = 10
MAX_RECONNECT_DELAY_S = 30
# InternalClientError: a connection the server closed under it (a restart) can be left in a state
# asyncpg refuses the next query on
LISTEN_ERRORS = (
    OSError,
    TimeoutError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
)


class ConnectionLost(ConnectionError):
    pass


class OutboxListener:
    def __init__(self, dsn: str, wake: asyncio.Event, *, check_s: float = 15) -> None:
        self.dsn = dsn
        self.wake = wake
        self.check_s = check_s
        self.listening = asyncio.Event()  # for tests and the benchmark: LISTEN is in place

    def _notified(self, *_: object) -> None:
        self.wake.set()

    async def run(self) -> None:
        delay_s = 1.0
        while True:
            try:
                conn = await asyncpg.connect(
                    self.dsn,
                    timeout=CONNECT_TIMEOUT_S,
                    server_settings={"application_name": "jobfleet-outbox-listen"},
                )
            except LISTEN_ERRORS as e:
                log.warning("outbox_listen_unavailable", error=one_line(e), retry_in_s=delay_s)
                await asyncio.sleep(delay_s)
                delay_s = min(delay_s * 2, MAX_RECONNECT_DELAY_S)
                continue
            delay_s = 1.0
            try:
                await self._listen(conn)
            except LISTEN_ERRORS as e:
                log.warning("outbox_listen_lost", error=one_line(e))
            finally:
                self.listening.clear()
                with contextlib.suppress(Exception):
                    conn.terminate()

    async def _listen(self, conn: asyncpg.Connection) -> None:
        lost = asyncio.Event()
        conn.add_termination_listener(lambda _: lost.set())
        await conn.add_listener(CHANNEL, self._notified)
        self.listening.set()
        self.wake.set()  # rows committed while nobody listened
        log.info("outbox_listening")
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.check_s):
                    await lost.wait()
            if lost.is_set() or conn.is_closed():
                raise ConnectionLost("the LISTEN connection closed")
            await conn.fetchval("SELECT 1", timeout=CONNECT_TIMEOUT_S)


def one_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0]}" if text else type(e).__name__
