"""The demo data sets: a newcomer who runs the jobs sees each of them act."""

from db import pinteach as t
from demo import credits as credits_demo
from demo import messages as messages_demo
from demo import waitlist as waitlist_demo
from jobfleet.payloads import MessageRef, Sweep
from jobs.credits import expire
from jobs.messages import deliver, deliver_due
from jobs.sessions import auto_complete
from jobs.waitlist import expire_offers
from tests.factories import PinTeach


async def test_demo_credits_expire_notice_and_close(deps, pg):
    async with pg.begin() as conn:
        ids = await credits_demo.seed_demo(conn)

    assert await expire.run(deps, Sweep()) == {"expired": 2, "credits_expired": 6 + 4, "expiring_notices": 1}
    assert (await auto_complete.run(deps, Sweep()))["credits_consumed"] == 1

    statuses = {r.id: r.status for r in await PinTeach(pg).rows(t.enrollments)}
    assert statuses == {
        ids["expires"]: "expired",
        ids["honours_booking"]: "expired",
        ids["unlimited"]: "expired",
        ids["notice"]: "active",
        ids["completes"]: "completed",
    }


async def test_demo_waitlist_offer_passes_on(deps, pg):
    async with pg.begin() as conn:
        ids = await waitlist_demo.seed_demo(conn)

    assert await expire_offers.run(deps, Sweep()) == {"offers_expired": 1, "offers_made": 1}
    statuses = {r.id: r.status for r in await PinTeach(pg).rows(t.waitlist_entries)}
    assert (statuses[ids["lapsed_offer"]], statuses[ids["lapsing_offer"]]) == ("expired", "notified")
    assert (statuses[ids["waiting_3"]], statuses[ids["waiting_4"]]) == ("notified", "waiting")


async def test_demo_messages_are_delivered_except_the_cancelled_one(deps, pg):
    teacher_id = await PinTeach(pg).teacher()  # the caller's demo teacher
    async with pg.begin() as conn:
        demo = await messages_demo.seed_demo(conn, teacher_id)

    assert await deliver_due.run(deps, Sweep()) == {"delivered": 1}
    message_id, scheduled_for = demo.deferred
    assert await deliver.run(deps, MessageRef(message_id=message_id)) == {"delivered": 0}  # not yet due

    statuses = {r.id: r.status for r in await PinTeach(pg).rows(t.scheduled_messages)}
    assert statuses == {demo.lost: "sent", demo.cancelled: "cancelled", message_id: "pending"}
    assert scheduled_for.tzinfo is not None
    assert {r.teacher_id for r in await PinTeach(pg).rows(t.scheduled_messages)} == {teacher_id}
