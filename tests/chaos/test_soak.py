"""Four worker processes on every queue, with the scheduler ticking every two seconds, while a writer
keeps booking sessions, enrolling students, queueing for seats and scheduling messages as the
backend would: at the end every invariant holds and nothing is lost.

Runs ``JOBFLEET_CHAOS_SOAK_S`` seconds (60 by default; set it to a few hundred for a longer soak).
"""

import asyncio
import os
import random
import time
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
from redis.asyncio import Redis

from jobfleet import keys
from jobfleet.producer import Producer
from ops.audit import audit_pinteach
from tests.chaos.processes import log_events, start_worker, stop_worker

SOAK_S = float(os.environ.get("JOBFLEET_CHAOS_SOAK_S", "60"))
WORKERS = 4
SEATS = 3

SCHEDULES = """
["sessions.auto_complete"]
cron = "*/2 * * * * *"
["waitlist.expire_offers"]
cron = "*/2 * * * * *"
["messages.deliver_due"]
cron = "*/2 * * * * *"
["credits.expire"]
cron = "*/2 * * * * *"
"""

TEACHERS = """
INSERT INTO teachers (id, email, name, slug, timezone, completion_mode)
VALUES ($1, 'auto@t.test', 'Auto', 'auto', 'UTC', 'AUTO_COMPLETE'),
       ($2, 'manual@t.test', 'Manual', 'manual', 'UTC', 'MANUAL');
"""
SERVICE = """
INSERT INTO services (id, teacher_id, name, slug, delivery_mode, group_type, structure, pricing_model,
                      max_participants, status)
VALUES ($1, $2, $3, $3, 'live', $4, 'package', 'credits', $5, 'active')
"""


class World:
    """The backend's side: what it writes, in the transactions it would use, consistently (an
    enrollment's sessions_scheduled counts exactly the sessions booked with it)."""

    def __init__(self, conn: asyncpg.Connection, producer: Producer, rng: random.Random) -> None:
        self.conn = conn
        self.producer = producer
        self.rng = rng
        self.auto, self.manual = uuid.uuid4(), uuid.uuid4()
        self.services = {self.auto: uuid.uuid4(), self.manual: uuid.uuid4()}
        self.group = uuid.uuid4()  # capped: seats are offered to its waitlist
        self.position = 0
        self.messages: list[uuid.UUID] = []

    async def setup(self) -> None:
        await self.conn.execute(TEACHERS, self.auto, self.manual)
        for teacher, service in self.services.items():
            await self.conn.execute(SERVICE, service, teacher, f"s-{service}", "individual", None)
        await self.conn.execute(SERVICE, self.group, self.auto, "group", "group", SEATS)
        await self.producer.enqueue("waitlist.offer_next", {"service_id": str(self.group)})

    async def student(self, teacher: uuid.UUID) -> uuid.UUID:
        return await self.conn.fetchval(
            "INSERT INTO students (teacher_id, email, name, timezone) VALUES ($1, $2, 'S', 'UTC') RETURNING id",
            teacher,
            f"{uuid.uuid4().hex}@t.test",
        )

    async def book(self, i: int) -> None:
        """A student enrols and books sessions ending over the next seconds (due at once: grace 0);
        every fourth enrollment runs out a few seconds later, so credits.expire gets its share."""
        teacher = self.manual if i % 5 == 0 else self.auto
        sessions = self.rng.randint(1, 3)
        async with self.conn.transaction():
            student = await self.student(teacher)
            enrollment = await self.conn.fetchval(
                """INSERT INTO enrollments (service_id, student_id, teacher_id, status, sessions_total,
                                            sessions_scheduled, valid_from, valid_until)
                   VALUES ($1, $2, $3, 'active', 5, $4, now() - interval '1 day',
                           CASE WHEN $5 THEN now() + interval '4 seconds' END) RETURNING id""",
                self.services[teacher],
                student,
                teacher,
                sessions,
                i % 4 == 0,
            )
            await self.conn.execute(
                """INSERT INTO class_sessions (enrollment_id, service_id, teacher_id, student_id, starts_at,
                                               ends_at, timezone, status)
                   SELECT $1, $2, $3, $4, now() - interval '1 hour' + k * interval '1 second',
                          now() + k * interval '1 second', 'UTC', 'scheduled'
                   FROM generate_series(0, $5 - 1) k""",
                enrollment,
                self.services[teacher],
                teacher,
                student,
                sessions,
            )
        await self.queue_for_a_seat(student if teacher == self.auto else await self.student(self.auto))

    async def queue_for_a_seat(self, student: uuid.UUID) -> None:
        self.position += 1
        await self.conn.execute(
            "INSERT INTO waitlist_entries (teacher_id, service_id, student_id, position) VALUES ($1, $2, $3, $4)",
            self.auto,
            self.group,
            student,
            self.position,
        )

    async def message(self) -> None:
        """A message scheduled a few seconds ahead; the backend enqueues its deferred job for most,
        and the deliver_due sweep is the safety net for the rest."""
        student = await self.student(self.auto)
        scheduled_for = datetime.now(UTC) + timedelta(seconds=self.rng.uniform(0, 3))
        message = await self.conn.fetchval(
            """INSERT INTO scheduled_messages (teacher_id, student_id, channel, body, scheduled_for)
               VALUES ($1, $2, 'email', 'Hello', $3) RETURNING id""",
            self.auto,
            student,
            scheduled_for,
        )
        self.messages.append(message)
        if self.rng.random() < 0.7:
            await self.producer.enqueue(
                "messages.deliver", {"message_id": str(message)}, key=str(message), defer_until=scheduled_for
            )

    async def seat_changes(self) -> None:
        """Someone takes an offered seat (the offer becomes an enrollment; those at odd positions
        never answer, so their offers run out), or someone leaves the group (a seat frees and the
        backend asks for the next offer)."""
        if self.rng.random() < 0.5:
            async with self.conn.transaction():
                offer = await self.conn.fetchrow(
                    """SELECT id, student_id FROM waitlist_entries
                       WHERE service_id = $1 AND status = 'notified' AND position % 2 = 0
                       ORDER BY position LIMIT 1
                       FOR UPDATE SKIP LOCKED""",
                    self.group,
                )
                if offer is None:
                    return
                await self.conn.execute(
                    "UPDATE waitlist_entries SET status = 'enrolled', updated_at = now() WHERE id = $1",
                    offer["id"],
                )
                await self.conn.execute(
                    """INSERT INTO enrollments (service_id, student_id, teacher_id, status, sessions_total,
                                                valid_from) VALUES ($1, $2, $3, 'active', 5, now())""",
                    self.group,
                    offer["student_id"],
                    self.auto,
                )
        else:
            left = await self.conn.fetchval(
                """UPDATE enrollments SET status = 'cancelled', updated_at = now()
                   WHERE id = (SELECT id FROM enrollments WHERE service_id = $1 AND status = 'active'
                               ORDER BY created_at LIMIT 1 FOR UPDATE SKIP LOCKED) RETURNING id""",
                self.group,
            )
            if left:
                await self.producer.enqueue("waitlist.offer_next", {"service_id": str(self.group)})

    async def run(self, until: float) -> int:
        i = 0
        while time.monotonic() < until:
            i += 1
            await self.book(i)
            await self.message()
            if i % 3 == 0:
                await self.seat_changes()
            await asyncio.sleep(self.rng.uniform(0, 0.1))
        return i


async def outstanding(conn: asyncpg.Connection) -> tuple[int, int]:
    """Sessions and messages not yet handled. The writer's last sessions end, and its last messages
    fall due, a few seconds after it stops, so the wait counts them whether due yet or not."""
    sessions = await conn.fetchval(
        "SELECT count(*) FROM class_sessions WHERE status IN ('scheduled', 'in_progress')"
    )
    messages = await conn.fetchval("SELECT count(*) FROM scheduled_messages WHERE status = 'pending'")
    return sessions, messages


@pytest.mark.slow
async def test_four_workers_on_every_queue_under_a_steady_writer(settings, env, pg, redis: Redis, tmp_path):
    schedules = tmp_path / "schedules.toml"
    schedules.write_text(SCHEDULES)
    worker_env = {
        **env,
        "JOBFLEET_SCHEDULES_FILE": str(schedules),
        "JOBFLEET_AUTO_COMPLETE_GRACE_S": "0",
        "JOBFLEET_WAITLIST_OFFER_HOURS": str(3 / 3600),  # offers run out in 3 s and pass the seat on
        "JOBFLEET_SWEEP_BATCH_SIZE": "20",
        "JOBFLEET_WORKER_MAX_JOBS": "10",
        "JOBFLEET_SHUTDOWN_GRACE_S": "10",
        "JOBFLEET_LOG_LEVEL": "INFO",
    }
    logs = [tmp_path / f"worker-{n}.log" for n in range(WORKERS)]
    conn = await asyncpg.connect(settings.pinteach_dsn)
    producer = Producer(redis)
    world = World(conn, producer, random.Random(20261122))
    await world.setup()
    workers = [await start_worker(worker_env, log, scheduler=True) for log in logs]
    try:
        iterations = await world.run(until=time.monotonic() + SOAK_S)
        # the writer stops; everything it made comes due within seconds and the sweeps finish it
        deadline = time.monotonic() + 60
        while (left := await outstanding(conn)) != (0, 0) or not await nothing_queued(redis):
            assert time.monotonic() < deadline, (
                f"still due after the writer stopped: {left} (sessions, messages)"
            )
            assert all(w.returncode is None for w in workers), "a worker process died"
            await asyncio.sleep(0.5)
    finally:
        codes = [await stop_worker(w) for w in workers]
        await conn.close()
    assert codes == [0] * WORKERS, "every worker stops cleanly on SIGTERM"

    conn = await asyncpg.connect(settings.pinteach_dsn)
    try:
        await check_nothing_lost(conn, world, iterations)
    finally:
        await conn.close()
    assert await audit_pinteach(pg) == []
    failures = await redis.zrange(keys.FAILED_INDEX, 0, -1)
    assert failures == [], f"jobs failed: {failures}"
    events = [e for log in logs for e in log_events(log)]
    assert not [e for e in events if e["level"] in ("error", "critical")], "no worker logged an error"
    sweeps = {e["job"] for e in events if e["event"] == "job_succeeded" and ":tick-" in e["job_id"]}
    assert sweeps == {
        "sessions.auto_complete",
        "waitlist.expire_offers",
        "messages.deliver_due",
        "credits.expire",
    }


async def nothing_queued(redis: Redis) -> bool:
    """No job due now is waiting in any queue (deferred messages not yet due may be)."""
    now_ms = time.time() * 1000
    for queue in keys.ALL_QUEUES:
        if await redis.zcount(queue, "-inf", now_ms):
            return False
    return True


async def check_nothing_lost(conn: asyncpg.Connection, world: World, iterations: int) -> None:
    # every booked session was handled once: completed with one CONSUME, or sent to review
    handled = await conn.fetch("SELECT status, count(*) AS n FROM class_sessions GROUP BY status")
    assert {r["status"] for r in handled} <= {"completed", "pending_review"}, handled
    completed = await conn.fetchval("SELECT count(*) FROM class_sessions WHERE status = 'completed'")
    consumed = await conn.fetchval("SELECT count(*) FROM credit_ledger WHERE action = 'CONSUME'")
    assert consumed == completed > 0
    reviews = await conn.fetchval("SELECT count(*) FROM notifications WHERE type = 'session.review_needed'")
    assert (
        reviews
        == await conn.fetchval("SELECT count(*) FROM class_sessions WHERE status = 'pending_review'")
        > 0
    )
    # credits.expire (or auto_complete's closing rule) ran out the short enrollments
    assert await conn.fetchval("SELECT count(*) FROM credit_ledger WHERE action = 'EXPIRE'") > 0

    # every message was delivered, once
    statuses = await conn.fetch(
        "SELECT status, count(*) AS n FROM scheduled_messages WHERE id = ANY($1::uuid[]) GROUP BY status",
        world.messages,
    )
    assert (
        [(r["status"], r["n"]) for r in statuses] == [("sent", len(world.messages))] == [("sent", iterations)]
    )
    assert await conn.fetchval("SELECT count(*) FROM contact_log") == iterations
    assert (
        await conn.fetchval(
            "SELECT count(DISTINCT payload->>'scheduled_message_id') FROM notifications WHERE type = 'scheduled_message.due'"
        )
        == await conn.fetchval("SELECT count(*) FROM notifications WHERE type = 'scheduled_message.due'")
        == iterations
    )

    # the waitlist moved: offers were made, some taken, some ran out and passed on
    waitlist = dict(await conn.fetch("SELECT status::text, count(*) FROM waitlist_entries GROUP BY 1"))
    assert waitlist.get("enrolled", 0) > 0 and waitlist.get("expired", 0) > 0, waitlist
