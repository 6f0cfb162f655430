"""The demo's backend: a few jobs a second through the producer library, as PinTeach's services
would enqueue them, so that every page of the dashboard has something on it within a minute.

- a scheduled message every couple of seconds, written and then enqueued deferred, keyed by its id
  (the backend's pattern: ``messages.deliver`` runs when the message comes due);
- a calendar sync of a demo lesson now and then (``calendar.sync_session``, keyed by session);
- probes (``fleet.noop``) and, every 10 seconds, a ``fleet.sleep`` of 8 seconds that the
  "In progress" page shows while it runs;
- once, a job that fails on purpose: a ``messages.deliver`` enqueued before the backend committed
  the message it names (the dual write the outbox exists to avoid). It lands in the failure record;
  the message commits a moment later, so retrying the job from the dashboard delivers it.
"""

import asyncio
import contextlib
import itertools
import uuid
from datetime import UTC, datetime, timedelta

import structlog
from sqlalchemy import exists, func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from db.pinteach import class_sessions, scheduled_messages, session_calendar_sync, students
from jobfleet.producer import Producer, ProducerUnavailable

log = structlog.get_logger("jobfleet.demo")
TICK_S = 1.0
LATE_COMMIT_S = 3.0


async def run(engine: AsyncEngine, producer: Producer, stopping: asyncio.Event) -> None:
    async with engine.connect() as conn:
        people = (await conn.execute(select(students.c.teacher_id, students.c.id).limit(20))).all()
        undisturbed = ~exists().where(  # the demo's failed sync stays failed, for the dashboard
            session_calendar_sync.c.session_id == class_sessions.c.id,
            session_calendar_sync.c.sync_status == "failed",
        )
        lessons = (
            await conn.scalars(
                select(class_sessions.c.id)
                .where(class_sessions.c.status == "scheduled", undisturbed)
                .limit(10)
            )
        ).all()
    failing = asyncio.create_task(fail_on_purpose(engine, producer, *people[0]))
    try:
        await _trickle(engine, producer, stopping, people, lessons)
    finally:
        failing.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await failing


async def _trickle(
    engine: AsyncEngine, producer: Producer, stopping: asyncio.Event, people: list, lessons: list
) -> None:
    for tick in itertools.count():
        try:
            if tick % 2 == 0:
                teacher_id, student_id = people[tick // 2 % len(people)]
                await schedule_message(engine, producer, teacher_id, student_id, timedelta(seconds=5))
            if tick % 3 == 0 and lessons:
                await sync_calendar(engine, producer, lessons[tick // 3 % len(lessons)])
            await producer.enqueue("fleet.noop")
            if tick % 10 == 0:  # running most of the time: "In progress" shows it
                await producer.enqueue("fleet.sleep", {"ms": 8000})
        except ProducerUnavailable as e:
            log.warning("demo_traffic_paused", error=str(e))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), TICK_S)
            return


async def schedule_message(
    engine: AsyncEngine,
    producer: Producer,
    teacher_id: uuid.UUID,
    student_id: uuid.UUID,
    due_in: timedelta,
    message_id: uuid.UUID | None = None,
    enqueue: bool = True,
) -> uuid.UUID:
    message_id = message_id or uuid.uuid4()
    scheduled_for = datetime.now(UTC) + due_in
    async with engine.begin() as conn:
        await conn.execute(
            scheduled_messages.insert().values(
                id=message_id,
                teacher_id=teacher_id,
                student_id=student_id,
                channel="email",
                body="See you at the next lesson!",
                note="demo",
                scheduled_for=scheduled_for,
                status="pending",
                job_id=f"messages.deliver:{message_id}",
            )
        )
    if enqueue:
        await producer.enqueue(
            "messages.deliver", {"message_id": message_id}, key=str(message_id), defer_until=scheduled_for
        )
    return message_id


async def sync_calendar(engine: AsyncEngine, producer: Producer, session_id: uuid.UUID) -> None:
    """What the backend does when a lesson changes: mark its calendar event pending, then enqueue."""
    async with engine.begin() as conn:
        await conn.execute(
            insert(session_calendar_sync)
            .values(session_id=session_id, sync_status="pending")
            .on_conflict_do_update(
                index_elements=[session_calendar_sync.c.session_id],
                set_={"sync_status": "pending", "updated_at": func.now()},
            )
        )
    await producer.enqueue("calendar.sync_session", {"session_id": session_id}, key=str(session_id))


async def fail_on_purpose(
    engine: AsyncEngine, producer: Producer, teacher_id: uuid.UUID, student_id: uuid.UUID
) -> None:
    message_id = uuid.uuid4()
    await producer.enqueue("messages.deliver", {"message_id": message_id}, key=str(message_id))
    log.info(
        "demo_failing_on_purpose",
        job_id=f"messages.deliver:{message_id}",
        why="enqueued before its message was committed; retry it from the Failed page",
    )
    await asyncio.sleep(LATE_COMMIT_S)
    await schedule_message(engine, producer, teacher_id, student_id, timedelta(0), message_id, enqueue=False)
    log.info(
        "demo_message_committed_late", job_id=f"messages.deliver:{message_id}", why="a retry now delivers it"
    )
