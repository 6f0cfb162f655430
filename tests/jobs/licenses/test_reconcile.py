import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import SecretStr
from structlog.testing import capture_logs

from db.pickatale import teacher_licenses
from demo import licenses as licenses_demo
from jobfleet.payloads import Sweep
from jobs.errors import Permanent, Transient
from jobs.licenses import reconcile
from tests.fakes.stripe_server import FakeStripe

L = teacher_licenses.c


def utcnow() -> datetime:
    """Naive UTC, as Pickatale's DATETIME columns hold it."""
    return datetime.now(UTC).replace(tzinfo=None, microsecond=0)


def days(n: float) -> datetime:
    return utcnow() + timedelta(days=n)


def unix(moment: datetime) -> int:
    return int(moment.replace(tzinfo=UTC).timestamp())


class Licenses:
    def __init__(self, engine) -> None:
        self.engine = engine

    async def add(self, *, state="active", tier="teacher_paid", sub=None, ends=-1, grace=None) -> str:
        license_id = str(uuid.uuid4())
        async with self.engine.begin() as conn:
            await conn.execute(
                teacher_licenses.insert().values(
                    id=license_id,
                    teacher_id=str(uuid.uuid4()),
                    tier=tier,
                    billing_cycle="monthly",
                    state=state,
                    stripe_sub_id=sub,
                    period_start=days(ends - 30),
                    period_end=days(ends),
                    grace_ends_at=None if grace is None else days(grace),
                    created_at=days(-90),
                )
            )
        return license_id

    async def get(self, license_id: str):
        async with self.engine.connect() as conn:
            return (await conn.execute(teacher_licenses.select().where(L.id == license_id))).one()

    async def states(self) -> dict[str, tuple[str, str]]:
        async with self.engine.connect() as conn:
            return {r.id: (r.state, r.tier) for r in await conn.execute(teacher_licenses.select())}


@pytest.fixture
def licenses(mysql) -> Licenses:
    return Licenses(mysql)


async def run(deps):
    return await reconcile.run(deps, Sweep())


def subscription(stripe: FakeStripe, status="active", *, start=-1, end=29) -> str:
    return stripe.subscription(status=status, period_start=unix(days(start)), period_end=unix(days(end)))


async def test_a_trial_without_subscription_expires_to_free(paid_deps, licenses, stripe):
    trial = await licenses.add(state="trialing", tier="trial")
    running = await licenses.add(state="trialing", tier="trial", ends=3)

    assert await run(paid_deps) == {"reconciled": 0, "expired": 1, "past_due": 0}

    assert await licenses.states() == {trial: ("expired", "free"), running: ("trialing", "trial")}
    assert stripe.requests == []


async def test_enterprise_and_gifted_without_subscription_never_lapse(paid_deps, licenses, stripe):
    kept = [
        await licenses.add(tier="enterprise"),
        await licenses.add(tier="gifted", state="trialing"),
        await licenses.add(tier="gifted", state="past_due", grace=-1),
        await licenses.add(tier="enterprise", state="cancelled"),
    ]
    billed = await licenses.add(tier="enterprise", sub=subscription(stripe, "canceled"))

    assert (await run(paid_deps))["expired"] == 1

    states = await licenses.states()
    assert [states[k][0] for k in kept] == ["active", "trialing", "past_due", "cancelled"]
    assert states[billed] == ("expired", "free"), "with a subscription, Stripe decides"


async def test_an_active_subscription_renews_the_period(paid_deps, licenses, stripe):
    sub = subscription(stripe, "active", start=-1, end=29)
    license_id = await licenses.add(sub=sub, grace=-20)

    assert await run(paid_deps) == {"reconciled": 1, "expired": 0, "past_due": 0}

    row = await licenses.get(license_id)
    item = stripe.subscriptions[sub]["items"]["data"][0]
    assert (row.state, row.tier, row.grace_ends_at) == ("active", "teacher_paid", None)
    assert unix(row.period_start) == item["current_period_start"]
    assert unix(row.period_end) == item["current_period_end"]
    [call] = stripe.requests
    assert (call.method, call.path, call.account) == ("GET", f"/v1/subscriptions/{sub}", None)


async def test_a_trial_that_converted_becomes_active(paid_deps, licenses, stripe):
    license_id = await licenses.add(state="trialing", tier="trial", sub=subscription(stripe, "trialing"))
    await run(paid_deps)
    row = await licenses.get(license_id)
    assert (row.state, row.tier) == ("active", "trial")
    assert row.period_end > utcnow()


@pytest.mark.parametrize("status", ["past_due", "unpaid"])
async def test_an_unpaid_subscription_starts_the_grace_period(paid_deps, licenses, stripe, status):
    license_id = await licenses.add(sub=subscription(stripe, status))
    before = utcnow()

    assert await run(paid_deps.with_settings(license_grace_days=2)) == {
        "reconciled": 1,
        "expired": 0,
        "past_due": 1,
    }

    row = await licenses.get(license_id)
    assert row.state == "past_due"
    assert before + timedelta(days=2) <= row.grace_ends_at <= utcnow() + timedelta(days=2)


async def test_a_grace_already_running_is_kept(paid_deps, licenses, stripe):
    license_id = await licenses.add(sub=subscription(stripe, "past_due"), grace=3)
    grace = (await licenses.get(license_id)).grace_ends_at
    await run(paid_deps)
    assert (await licenses.get(license_id)).grace_ends_at == grace


async def test_a_canceled_subscription_cancels_and_then_expires_the_license(paid_deps, licenses, stripe):
    license_id = await licenses.add(sub=subscription(stripe, "canceled", start=-31, end=-1))

    assert await run(paid_deps) == {"reconciled": 1, "expired": 1, "past_due": 0}
    assert await licenses.states() == {license_id: ("expired", "free")}


async def test_grace_and_cancelled_periods_run_out(paid_deps, licenses, stripe):
    lapsed = await licenses.add(state="past_due", grace=-1, sub="sub_test_old")
    in_grace = await licenses.add(state="past_due", grace=2, sub="sub_test_old2")
    ended = await licenses.add(state="cancelled", ends=-1, sub="sub_test_old3")
    paid_up = await licenses.add(state="cancelled", ends=10, sub="sub_test_old4")

    assert await run(paid_deps) == {"reconciled": 0, "expired": 2, "past_due": 0}

    states = await licenses.states()
    assert states[lapsed] == states[ended] == ("expired", "free")
    assert states[in_grace] == ("past_due", "teacher_paid")
    assert states[paid_up] == ("cancelled", "teacher_paid")
    assert stripe.requests == [], "these rules need no Stripe"


async def test_a_subscription_unknown_to_stripe_ends_the_license(paid_deps, licenses, stripe):
    license_id = await licenses.add(sub="sub_test_gone")

    with capture_logs() as logs:
        assert await run(paid_deps) == {"reconciled": 1, "expired": 1, "past_due": 0}

    assert await licenses.states() == {license_id: ("expired", "free")}
    assert [e["log_level"] for e in logs if e["event"] == "subscription_missing"] == ["error"]


async def test_a_rate_limit_is_retried_and_stripe_free_rules_still_apply(paid_deps, licenses, stripe):
    sub = subscription(stripe, "active")
    stripe.fail(sub, "rate_limit")
    waiting = await licenses.add(sub=sub)
    trial = await licenses.add(state="trialing", tier="trial")

    with pytest.raises(Transient, match="rate limit"):
        await run(paid_deps)

    assert await licenses.states() == {waiting: ("active", "teacher_paid"), trial: ("expired", "free")}
    assert (await licenses.get(waiting)).period_end < utcnow()

    stripe.failures.clear()
    assert await run(paid_deps) == {"reconciled": 1, "expired": 0, "past_due": 0}
    assert (await licenses.get(waiting)).period_end > utcnow()


async def test_a_refused_api_key_fails_loudly_and_changes_no_subscribed_license(paid_deps, licenses, stripe):
    billed = await licenses.add(sub=subscription(stripe, "canceled"))
    trial = await licenses.add(state="trialing", tier="trial")
    wrong_key = paid_deps.with_settings(stripe_api_key=SecretStr("sk_test_revoked"))

    with pytest.raises(Permanent, match="JOBFLEET_STRIPE_API_KEY"):
        await run(wrong_key)

    assert await licenses.states() == {billed: ("active", "teacher_paid"), trial: ("expired", "free")}


async def test_without_a_key_subscribed_licenses_wait_with_one_warning(deps, licenses, stripe):
    assert deps.settings.stripe_api_key is None
    billed = await licenses.add(sub="sub_test_any")
    trial = await licenses.add(state="trialing", tier="trial")

    with capture_logs() as logs:
        assert await run(deps) == {"reconciled": 0, "expired": 1, "past_due": 0}

    assert await licenses.states() == {billed: ("active", "teacher_paid"), trial: ("expired", "free")}
    assert [e["event"] for e in logs if e["log_level"] == "warning"] == ["stripe_not_configured"]


async def test_a_status_we_do_not_know_leaves_the_license_and_is_asked_once(paid_deps, licenses, stripe):
    license_id = await licenses.add(sub=subscription(stripe, "some_future_status"))
    assert await run(paid_deps) == {"reconciled": 0, "expired": 0, "past_due": 0}
    assert (await licenses.get(license_id)).state == "active"
    assert len(stripe.requests) == 1


async def test_two_concurrent_runs_reconcile_each_license_once(paid_deps, licenses, stripe):
    statuses = ("active", "past_due", "canceled")
    for i in range(24):
        await licenses.add(sub=subscription(stripe, statuses[i % 3]))
    for _ in range(6):
        await licenses.add(state="trialing", tier="trial")
    small = paid_deps.with_settings(stripe_batch_size=3, sweep_batch_size=2, stripe_concurrency=2)

    a, b = await asyncio.gather(run(small), run(small))

    assert a["reconciled"] + b["reconciled"] == 24
    assert a["reconciled"] > 0 and b["reconciled"] > 0, "each run should lock only its own batch"
    assert a["past_due"] + b["past_due"] == 8
    assert a["expired"] + b["expired"] == 8 + 6
    assert len(stripe.requests) == 24, "each subscription asked once"
    states = sorted((await licenses.states()).values())
    assert states.count(("expired", "free")) == 14
    assert states.count(("past_due", "teacher_paid")) == 8
    assert states.count(("active", "teacher_paid")) == 8

    assert await run(paid_deps) == {"reconciled": 0, "expired": 0, "past_due": 0}


async def test_the_demo_data_shows_the_sweep_at_work(deps, licenses, stripe):
    async with licenses.engine.begin() as conn:
        expected = await licenses_demo.seed_demo(conn)

    assert await run(deps) == expected == {"reconciled": 0, "expired": 3, "past_due": 0}
    assert sorted(s for s, _ in (await licenses.states()).values()) == [
        "active",
        "active",
        "expired",
        "expired",
        "expired",
    ]
