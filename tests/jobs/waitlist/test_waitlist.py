import asyncio
from datetime import timedelta
from uuid import UUID, uuid4

import pytest

from db import pinteach as t
from jobfleet.payloads import ServiceRef, Sweep
from jobs.deps import Deps
from jobs.errors import NotFound
from jobs.waitlist import expire_offers, offer_next
from tests.factories import PinTeach, ago, ahead

w = t.waitlist_entries.c
NOTHING = {"offers_expired": 0, "offers_made": 0}


async def sweep(deps: Deps) -> dict[str, int]:
    return await expire_offers.run(deps, Sweep())


async def offer(deps: Deps, service_id: UUID) -> dict[str, int]:
    return await offer_next.run(deps, ServiceRef(service_id=service_id))


class Waitlist:
    """One service with its enrollments and waitlist entries."""

    def __init__(self, seed: PinTeach, teacher_id: UUID, service_id: UUID) -> None:
        self.seed, self.teacher_id, self.service_id = seed, teacher_id, service_id

    @classmethod
    async def create(cls, seed: PinTeach, **service) -> "Waitlist":
        teacher = await seed.teacher()
        service_id = await seed.service(teacher, group_type="group", **service)
        return cls(seed, teacher, service_id)

    async def enrolled(self, *statuses: str) -> None:
        for status in statuses:
            student = await self.seed.student(self.teacher_id)
            await self.seed.enrollment(self.service_id, student, self.teacher_id, status=status)

    async def entry(
        self, position: int, status: str = "waiting", expires_in: timedelta | None = None
    ) -> UUID:
        student = await self.seed.student(self.teacher_id)
        offered = {}
        if status == "notified":
            expires_at = ahead(seconds=expires_in.total_seconds())
            offered = {"notified_at": expires_at - timedelta(hours=48), "offer_expires_at": expires_at}
        return await self.seed.insert(
            t.waitlist_entries,
            teacher_id=self.teacher_id,
            service_id=self.service_id,
            student_id=student,
            position=position,
            status=status,
            **offered,
        )

    async def expired_offer(self, position: int = 0) -> UUID:
        return await self.entry(position, "notified", expires_in=timedelta(minutes=-1))

    async def open_offer(self, position: int = 0) -> UUID:
        return await self.entry(position, "notified", expires_in=timedelta(hours=20))

    async def statuses(self) -> dict[UUID, str]:
        return {
            r.id: r.status for r in await self.seed.rows(t.waitlist_entries, w.service_id == self.service_id)
        }


async def test_an_expired_offer_passes_its_seat_to_the_next_in_line(deps, seed):
    wl = await Waitlist.create(seed, max_participants=3)
    await wl.enrolled("active", "active")
    lapsed = await wl.expired_offer(position=1)
    later = await wl.entry(position=7)
    first = await wl.entry(position=3)

    assert await sweep(deps) == {"offers_expired": 1, "offers_made": 1}

    assert await wl.statuses() == {lapsed: "expired", first: "notified", later: "waiting"}
    offered = await seed.row(t.waitlist_entries, w.id == first)
    assert offered.offer_expires_at - offered.notified_at == timedelta(hours=48)
    assert offered.notified_at > ago(minutes=1)
    notes = {n.type: n for n in await seed.rows(t.notifications)}
    assert set(notes) == {"waitlist.offer_expired", "waitlist.offer"}
    lapsed_row = await seed.row(t.waitlist_entries, w.id == lapsed)
    assert (notes["waitlist.offer_expired"].student_id, notes["waitlist.offer_expired"].recipient_type) == (
        lapsed_row.student_id,
        "student",
    )
    assert notes["waitlist.offer"].student_id == offered.student_id
    assert notes["waitlist.offer"].payload["waitlist_entry_id"] == str(first)

    assert await sweep(deps) == NOTHING


async def test_open_offers_and_other_services_are_untouched(deps, seed):
    wl = await Waitlist.create(seed, max_participants=2)
    current = await wl.open_offer(position=1)
    waiting = await wl.entry(position=2)
    other = await Waitlist.create(seed, max_participants=5)
    other_waiting = await other.entry(position=1)

    assert await sweep(deps) == NOTHING
    assert await wl.statuses() == {current: "notified", waiting: "waiting"}
    assert await other.statuses() == {other_waiting: "waiting"}


async def test_the_offer_window_is_a_setting(deps, seed):
    wl = await Waitlist.create(seed)
    await wl.expired_offer()
    nxt = await wl.entry(position=1)
    await sweep(deps.with_settings(waitlist_offer_hours=24))
    offered = await seed.row(t.waitlist_entries, w.id == nxt)
    assert offered.offer_expires_at - offered.notified_at == timedelta(hours=24)


async def test_no_new_offer_when_the_seat_was_taken_meanwhile(deps, seed):
    wl = await Waitlist.create(seed, max_participants=2)
    await wl.enrolled("active", "pending_payment")
    lapsed = await wl.expired_offer()
    waiting = await wl.entry(position=1)

    assert await sweep(deps) == {"offers_expired": 1, "offers_made": 0}
    assert await wl.statuses() == {lapsed: "expired", waiting: "waiting"}


async def test_without_a_cap_each_expired_offer_passes_one_seat_on(deps, seed):
    wl = await Waitlist.create(seed, max_participants=None)
    await wl.enrolled("active", "active", "active")
    await wl.expired_offer(position=1)
    await wl.expired_offer(position=2)
    await wl.open_offer(position=3)
    queue = [await wl.entry(position=p) for p in (4, 5, 6)]

    assert await sweep(deps) == {"offers_expired": 2, "offers_made": 2}
    statuses = await wl.statuses()
    assert [statuses[e] for e in queue] == ["notified", "notified", "waiting"]


async def test_sweep_offers_every_free_seat_of_the_service(deps, seed):
    wl = await Waitlist.create(seed, max_participants=6)
    await wl.enrolled("active", "pending_payment", "cancelled", "expired", "completed")
    await wl.expired_offer()
    await wl.open_offer()
    queue = [await wl.entry(position=p) for p in (1, 2, 3, 4, 5)]

    # 6 seats - 2 held by enrollments - 1 open offer = 3 free
    assert await sweep(deps) == {"offers_expired": 1, "offers_made": 3}
    statuses = await wl.statuses()
    assert [statuses[e] for e in queue] == ["notified"] * 3 + ["waiting"] * 2


async def test_an_inactive_service_makes_no_offers(deps, seed):
    wl = await Waitlist.create(seed, max_participants=4, status="paused")
    lapsed = await wl.expired_offer()
    waiting = await wl.entry(position=1)

    assert await sweep(deps) == {"offers_expired": 1, "offers_made": 0}
    assert await offer(deps, wl.service_id) == NOTHING
    assert await wl.statuses() == {lapsed: "expired", waiting: "waiting"}


async def test_offer_next_offers_the_free_seats_in_position_order(deps, seed):
    wl = await Waitlist.create(seed, max_participants=4)
    await wl.enrolled("active", "pending_payment", "cancelled")
    await wl.open_offer(position=1)
    third = await wl.entry(position=30)
    first = await wl.entry(position=10)
    second = await wl.entry(position=20)

    assert await offer(deps, wl.service_id) == {"offers_expired": 0, "offers_made": 1}
    assert (await wl.statuses())[first] == "notified"
    assert await offer(deps, wl.service_id) == NOTHING  # a re-delivered job offers nothing more
    statuses = await wl.statuses()
    assert (statuses[second], statuses[third]) == ("waiting", "waiting")
    assert await seed.count(t.notifications, t.notifications.c.type == "waitlist.offer") == 1


async def test_offer_next_with_nobody_waiting_or_no_cap_offers_nothing(deps, seed):
    empty = await Waitlist.create(seed, max_participants=4)
    uncapped = await Waitlist.create(seed, max_participants=None)
    waiting = await uncapped.entry(position=1)

    assert await offer(deps, empty.service_id) == NOTHING
    assert await offer(deps, uncapped.service_id) == NOTHING
    assert await uncapped.statuses() == {waiting: "waiting"}


async def test_offer_next_for_a_missing_service_is_not_found(deps, seed):
    missing = uuid4()
    with pytest.raises(NotFound, match=str(missing)):
        await offer(deps, missing)


async def test_a_crash_half_way_is_finished_by_the_next_run(deps, seed):
    wl = await Waitlist.create(seed, max_participants=None)
    for p in range(4):
        await wl.expired_offer(position=p)
    queue = [await wl.entry(position=10 + p) for p in range(5)]

    class Crash(Exception):
        pass

    window = timedelta(hours=48)
    async with deps.pinteach.begin() as conn:
        await expire_offers.expire_batch(conn, window=window, limit=2)
    with pytest.raises(Crash):
        async with deps.pinteach.begin() as conn:
            await expire_offers.expire_batch(conn, window=window, limit=2)
            raise Crash

    assert await sweep(deps) == {"offers_expired": 2, "offers_made": 2}
    statuses = await wl.statuses()
    assert [statuses[e] for e in queue] == ["notified"] * 4 + ["waiting"]
    assert await seed.count(t.notifications) == 8


async def race_setup(seed: PinTeach, services: int) -> list[Waitlist]:
    """Per service 5 seats: 1 enrollment, 1 open offer, 1 lapsed offer, 6 waiting. Run first, offer_next
    offers 2 seats and the sweep 1; run first, the sweep offers 3 and offer_next none. Counted from
    the same moment without the lock, they would offer 5."""
    lists = []
    for _ in range(services):
        wl = await Waitlist.create(seed, max_participants=5)
        await wl.enrolled("active")
        await wl.open_offer(position=1)
        await wl.expired_offer(position=2)
        for p in range(10, 16):
            await wl.entry(position=p)
        lists.append(wl)
    return lists


async def test_sweep_racing_offer_next_never_offers_one_seat_twice(deps, seed):
    lists = await race_setup(seed, services=8)
    small = deps.with_settings(sweep_batch_size=3)

    results = await asyncio.gather(
        sweep(small), sweep(small), *(offer(deps, wl.service_id) for wl in lists for _ in range(2))
    )

    assert sum(r["offers_expired"] for r in results) == 8
    assert sum(r["offers_made"] for r in results) == 3 * 8
    for wl in lists:
        statuses = list((await wl.statuses()).values())
        assert (statuses.count("notified"), statuses.count("expired")) == (4, 1), statuses
    assert await seed.count(t.notifications, t.notifications.c.type == "waitlist.offer") == 3 * 8


async def test_two_offer_next_for_one_service_never_offer_one_seat_twice(deps, seed):
    wl = await Waitlist.create(seed, max_participants=5)
    await wl.enrolled("active", "active")
    for p in range(10):
        await wl.entry(position=p)

    results = await asyncio.gather(*(offer(deps, wl.service_id) for _ in range(4)))

    assert sorted(r["offers_made"] for r in results) == [0, 0, 0, 3]
    assert list((await wl.statuses()).values()).count("notified") == 3
