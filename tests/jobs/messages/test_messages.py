import asyncio
from uuid import UUID, uuid4

import pytest

from db import pinteach as t
from jobfleet.payloads import MessageRef, Sweep
from jobs.deps import Deps
from jobs.errors import NotFound
from jobs.messages import deliver, deliver_due
from tests.factories import PinTeach, ago, ahead

sm = t.scheduled_messages.c


async def sweep(deps: Deps) -> dict[str, int]:
    return await deliver_due.run(deps, Sweep())


async def deliver_one(deps: Deps, message_id: UUID) -> dict[str, int]:
    return await deliver.run(deps, MessageRef(message_id=message_id))


async def message(seed: PinTeach, teacher_id: UUID | None = None, **kw) -> UUID:
    teacher_id = teacher_id or await seed.teacher()
    student_id = await seed.student(teacher_id)
    return await seed.insert(
        t.scheduled_messages,
        **{
            "teacher_id": teacher_id,
            "student_id": student_id,
            "channel": "whatsapp",
            "body": "Remember to bring your sheet music on Thursday.",
            "note": "weekly reminder",
            "scheduled_for": ago(minutes=1),
            **kw,
        },
    )


async def assert_delivered_once(seed: PinTeach, message_id: UUID) -> None:
    msg = await seed.row(t.scheduled_messages, sm.id == message_id)
    assert msg.status == "sent"
    log = await seed.row(t.contact_log, t.contact_log.c.id == msg.contact_log_id)
    assert (log.teacher_id, log.student_id, log.channel, log.body, log.note) == (
        msg.teacher_id,
        msg.student_id,
        msg.channel,
        msg.body,
        msg.note,
    )
    note = await seed.row(
        t.notifications, t.notifications.c.payload["scheduled_message_id"].astext == str(message_id)
    )
    assert (note.teacher_id, note.recipient_type, note.type, note.student_id) == (
        msg.teacher_id,
        "teacher",
        "scheduled_message.due",
        None,
    )
    assert note.payload["contact_log_id"] == str(msg.contact_log_id)
    assert msg.body not in (note.title, note.body)


async def test_deliver_writes_contact_log_and_teacher_notification(deps, seed):
    message_id = await message(seed)

    assert await deliver_one(deps, message_id) == {"delivered": 1}
    await assert_delivered_once(seed, message_id)

    # a second try of the same job, and the sweep, find it sent
    assert await deliver_one(deps, message_id) == {"delivered": 0}
    assert await sweep(deps) == {"delivered": 0}
    await assert_delivered_once(seed, message_id)


async def test_deliver_leaves_cancelled_and_not_yet_due_messages(deps, seed):
    cancelled = await message(seed, status="cancelled")
    rescheduled = await message(seed, scheduled_for=ahead(hours=2))

    assert await deliver_one(deps, cancelled) == {"delivered": 0}
    assert await deliver_one(deps, rescheduled) == {"delivered": 0}
    assert await sweep(deps) == {"delivered": 0}
    statuses = {r.id: r.status for r in await seed.rows(t.scheduled_messages)}
    assert statuses == {cancelled: "cancelled", rescheduled: "pending"}
    assert await seed.count(t.contact_log) == 0
    assert await seed.count(t.notifications) == 0


async def test_deliver_for_a_missing_message_is_not_found(deps, seed):
    missing = uuid4()
    with pytest.raises(NotFound, match=str(missing)):
        await deliver_one(deps, missing)


async def test_sweep_delivers_due_pending_messages_only(deps, seed):
    teacher = await seed.teacher()
    lost = [await message(seed, teacher, scheduled_for=ago(minutes=m), job_id=None) for m in (1, 30, 600)]
    future = await message(seed, teacher, scheduled_for=ahead(minutes=5))
    cancelled = await message(seed, teacher, status="cancelled")

    assert await sweep(deps) == {"delivered": 3}

    for message_id in lost:
        await assert_delivered_once(seed, message_id)
    statuses = {r.id: r.status for r in await seed.rows(t.scheduled_messages)}
    assert (statuses[future], statuses[cancelled]) == ("pending", "cancelled")
    assert await seed.count(t.contact_log) == 3
    assert await sweep(deps) == {"delivered": 0}


async def test_a_crash_half_way_is_finished_by_the_next_run(deps, seed):
    teacher = await seed.teacher()
    ids = [await message(seed, teacher, scheduled_for=ago(minutes=10 - i)) for i in range(5)]

    class Crash(Exception):
        pass

    async with deps.pinteach.begin() as conn:
        await deliver_due.deliver_batch(conn, limit=2)
    with pytest.raises(Crash):
        async with deps.pinteach.begin() as conn:
            await deliver_due.deliver_batch(conn, limit=2)
            raise Crash

    assert await seed.count(t.contact_log) == 2
    assert await sweep(deps) == {"delivered": 3}
    for message_id in ids:
        await assert_delivered_once(seed, message_id)


async def test_sweeps_and_queued_jobs_racing_deliver_each_message_once(deps, seed):
    teacher = await seed.teacher()
    ids = [await message(seed, teacher, scheduled_for=ago(seconds=i)) for i in range(40)]
    small = deps.with_settings(sweep_batch_size=3)

    results = await asyncio.gather(
        sweep(small),
        sweep(small),
        *(deliver_one(deps, i) for i in ids),
        *(deliver_one(deps, i) for i in ids[::3]),  # a job delivered twice
    )

    assert sum(r["delivered"] for r in results) == 40
    assert await seed.count(t.contact_log) == 40
    assert await seed.count(t.notifications) == 40
    for message_id in ids:
        await assert_delivered_once(seed, message_id)
