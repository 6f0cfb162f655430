import asyncio

import pytest
from pydantic import SecretStr
from sqlalchemy import func, select
from structlog.testing import capture_logs

from db import pinteach as t
from demo import payments as payments_demo
from jobfleet.payloads import Sweep
from jobs.errors import Permanent, Transient
from jobs.payments import expire_holds
from tests.factories import ago, ahead

ACCOUNT = "acct_1TeacherConnect"


async def run(deps):
    return await expire_holds.run(deps, Sweep())


async def hold(seed, checkout=None, *, minutes_old=45, reserved=False, enrollment=None, **kw):
    """A student's slot on hold since `minutes_old` minutes, its enrollment waiting for payment."""
    ids = await seed.individual(
        status="hold",
        created_at=ago(minutes=minutes_old),
        ends_at=ahead(days=3),
        teacher={"stripe_account_id": ACCOUNT},
        enrollment={"status": "pending_payment", "sessions_total": 5, "sessions_scheduled": 0}
        | (enrollment or {}),
        **kw,
    )
    await seed.insert(t.session_payment, session_id=ids["session_id"], stripe_checkout_session_id=checkout)
    if reserved:
        await ledger(seed, ids, "RESERVE")
        await bump_scheduled(seed, ids["enrollment_id"], 1)
    return ids


async def ledger(seed, ids, action, *, amount=1, session=True):
    session_id = ids["session_id"] if session else None
    await seed.insert(
        t.credit_ledger,
        enrollment_id=ids["enrollment_id"],
        session_id=session_id,
        student_id=ids["student_id"],
        teacher_id=ids["teacher_id"],
        action=action,
        amount=amount,
        actor="system",
        idempotency_key=key(ids, action),
    )


async def bump_scheduled(seed, enrollment_id, n):
    async with seed.engine.begin() as conn:
        await conn.execute(
            t.enrollments.update()
            .where(t.enrollments.c.id == enrollment_id)
            .values(sessions_scheduled=t.enrollments.c.sessions_scheduled + n)
        )


def key(ids, action):
    session = "" if action == "GRANT" else ids["session_id"]
    return f"{action}:{ids['enrollment_id']}:{session}:{ids['student_id']}"


async def session_of(seed, ids):
    return await seed.row(t.class_sessions, t.class_sessions.c.id == ids["session_id"])


async def enrollment_of(seed, ids):
    return await seed.row(t.enrollments, t.enrollments.c.id == ids["enrollment_id"])


async def actions(seed, ids):
    rows = await seed.rows(t.credit_ledger, t.credit_ledger.c.enrollment_id == ids["enrollment_id"])
    return sorted((r.action, r.amount, r.actor, r.idempotency_key) for r in rows)


# ---- holds without a Checkout Session ------------------------------------------------------


async def test_an_expired_credit_hold_expires_and_cancels_its_unpaid_enrollment(paid_deps, seed, stripe):
    ids = await hold(seed)
    fresh = await hold(seed, minutes_old=10)

    assert await run(paid_deps) == {"holds_expired": 1, "holds_confirmed": 0}

    assert (await session_of(seed, ids)).status == "expired"
    assert (await enrollment_of(seed, ids)).status == "cancelled"
    assert (await session_of(seed, fresh)).status == "hold"
    assert (await enrollment_of(seed, fresh)).status == "pending_payment"
    assert await seed.count(t.credit_ledger) == 0
    audit = await seed.row(t.audit_logs)
    assert (audit.actor_type, audit.action, audit.entity_id, audit.metadata) == (
        "system",
        "session.hold_expired",
        ids["session_id"],
        {"reason": "ttl"},
    )
    assert stripe.requests == []


async def test_the_ttl_setting_decides_when_a_hold_is_due(paid_deps, seed, stripe):
    ids = await hold(seed, minutes_old=10)
    assert (await run(paid_deps.with_settings(hold_ttl_minutes=5)))["holds_expired"] == 1
    assert (await session_of(seed, ids)).status == "expired"


async def test_a_reserved_hold_is_released_once(paid_deps, seed, stripe):
    ids = await hold(seed, reserved=True)

    assert (await run(paid_deps))["holds_expired"] == 1
    assert await run(paid_deps) == {"holds_expired": 0, "holds_confirmed": 0}

    assert await actions(seed, ids) == [
        ("RELEASE", 1, "system", key(ids, "RELEASE")),
        ("RESERVE", 1, "system", key(ids, "RESERVE")),
    ]
    assert (await enrollment_of(seed, ids)).sessions_scheduled == 0


async def test_a_reservation_released_before_is_not_released_again(paid_deps, seed, stripe):
    ids = await hold(seed, reserved=True)
    # the backend released it under a key of its own
    await seed.insert(
        t.credit_ledger,
        enrollment_id=ids["enrollment_id"],
        session_id=ids["session_id"],
        student_id=ids["student_id"],
        teacher_id=ids["teacher_id"],
        action="RELEASE",
        amount=1,
        idempotency_key="backend-release-1",
    )

    await run(paid_deps)

    assert await seed.count(t.credit_ledger, t.credit_ledger.c.action == "RELEASE") == 1
    assert (await enrollment_of(seed, ids)).sessions_scheduled == 1


async def test_an_enrollment_with_another_session_or_already_paid_is_not_cancelled(paid_deps, seed, stripe):
    busy = await hold(seed)
    await seed.session(
        busy["service_id"],
        busy["teacher_id"],
        enrollment_id=busy["enrollment_id"],
        student_id=busy["student_id"],
        ends_at=ahead(days=9),
    )
    paid = await hold(seed, enrollment={"status": "active"})

    assert (await run(paid_deps))["holds_expired"] == 2

    assert (await enrollment_of(seed, busy)).status == "pending_payment"
    assert (await enrollment_of(seed, paid)).status == "active"


async def test_two_expired_holds_of_one_enrollment_cancel_it(paid_deps, seed, stripe):
    ids = await hold(seed)
    await seed.session(
        ids["service_id"],
        ids["teacher_id"],
        enrollment_id=ids["enrollment_id"],
        student_id=ids["student_id"],
        status="hold",
        created_at=ago(minutes=50),
    )
    assert (await run(paid_deps))["holds_expired"] == 2
    assert (await enrollment_of(seed, ids)).status == "cancelled"


# ---- holds with a Checkout Session ---------------------------------------------------------


async def test_a_paid_checkout_confirms_the_hold_the_webhook_missed(paid_deps, seed, stripe):
    checkout = stripe.checkout(status="complete", payment_status="paid", amount_total=4500, currency="eur")
    ids = await hold(seed, checkout)

    assert await run(paid_deps) == {"holds_expired": 0, "holds_confirmed": 1}

    assert (await session_of(seed, ids)).status == "scheduled"
    enrollment = await enrollment_of(seed, ids)
    assert (enrollment.status, enrollment.sessions_scheduled) == ("active", 1)
    payment = await seed.row(t.session_payment, t.session_payment.c.session_id == ids["session_id"])
    assert (payment.stripe_payment_intent_id, payment.amount_paid, payment.currency) == (
        stripe.checkouts[checkout]["payment_intent"],
        4500,
        "EUR",
    )
    assert await actions(seed, ids) == [
        ("GRANT", 5, "stripe", key(ids, "GRANT")),
        ("RESERVE", 1, "system", key(ids, "RESERVE")),
    ]
    assert key(ids, "GRANT") == f"GRANT:{ids['enrollment_id']}::{ids['student_id']}"
    event = await seed.row(t.student_lifecycle_events)
    assert (event.event_type, event.student_id, event.teacher_id) == (
        "first_purchase",
        ids["student_id"],
        ids["teacher_id"],
    )
    audit = await seed.row(t.audit_logs)
    assert (audit.actor_type, audit.action, audit.metadata["checkout_session_id"]) == (
        "stripe",
        "session.hold_confirmed",
        checkout,
    )
    [call] = stripe.requests
    assert (call.method, call.path, call.account) == ("GET", f"/v1/checkout/sessions/{checkout}", ACCOUNT)


async def test_confirming_twice_writes_the_ledger_once(paid_deps, seed, stripe):
    ids = await hold(seed, stripe.checkout(status="complete", payment_status="paid"))
    await run(paid_deps)
    # the webhook arrives late and the backend puts the session back on hold by mistake
    async with seed.engine.begin() as conn:
        await conn.execute(
            t.class_sessions.update().where(t.class_sessions.c.id == ids["session_id"]).values(status="hold")
        )

    assert await run(paid_deps) == {"holds_expired": 0, "holds_confirmed": 1}

    assert len(await actions(seed, ids)) == 2
    assert (await enrollment_of(seed, ids)).sessions_scheduled == 1
    assert await seed.count(t.student_lifecycle_events) == 1


async def test_ledger_rows_the_backend_wrote_are_kept_and_counters_left_alone(paid_deps, seed, stripe):
    ids = await hold(seed, stripe.checkout(status="complete", payment_status="paid"), reserved=True)
    await ledger(seed, ids, "GRANT", amount=5, session=False)

    await run(paid_deps)

    assert len(await actions(seed, ids)) == 2
    assert (await enrollment_of(seed, ids)).sessions_scheduled == 1
    assert await seed.count(t.student_lifecycle_events) == 0


async def test_unlimited_enrollment_grants_one_and_a_returning_buyer_gets_no_first_purchase(
    paid_deps, seed, stripe
):
    ids = await hold(
        seed,
        stripe.checkout(status="complete", payment_status="paid"),
        enrollment={"sessions_total": None},
    )
    await seed.insert(
        t.student_lifecycle_events,
        teacher_id=ids["teacher_id"],
        student_id=ids["student_id"],
        event_type="first_purchase",
    )

    await run(paid_deps)

    assert ("GRANT", 1, "stripe", key(ids, "GRANT")) in await actions(seed, ids)
    assert await seed.count(t.student_lifecycle_events) == 1


async def test_an_open_checkout_is_expired_at_stripe_then_the_hold(paid_deps, seed, stripe):
    checkout = stripe.checkout(status="open")
    ids = await hold(seed, checkout, reserved=True)

    assert await run(paid_deps) == {"holds_expired": 1, "holds_confirmed": 0}

    assert stripe.checkouts[checkout]["status"] == "expired"
    [expire] = stripe.calls("POST")
    assert (expire.path, expire.account) == (f"/v1/checkout/sessions/{checkout}/expire", ACCOUNT)
    assert expire.idempotency_key == f"jobfleet-expire-{checkout}"
    assert (await session_of(seed, ids)).status == "expired"
    assert (await enrollment_of(seed, ids)).status == "cancelled"
    assert (await enrollment_of(seed, ids)).sessions_scheduled == 0
    assert ("RELEASE", 1, "system", key(ids, "RELEASE")) in await actions(seed, ids)


async def test_a_checkout_paid_while_we_expire_it_is_confirmed(paid_deps, seed, stripe):
    checkout = stripe.checkout(status="open")
    stripe.paid_on_expire.add(checkout)
    ids = await hold(seed, checkout)

    assert await run(paid_deps) == {"holds_expired": 0, "holds_confirmed": 1}
    assert (await session_of(seed, ids)).status == "scheduled"
    assert [r.method for r in stripe.requests] == ["GET", "POST", "GET"]


async def test_an_expired_checkout_expires_the_hold_without_asking_stripe_to_expire(paid_deps, seed, stripe):
    ids = await hold(seed, stripe.checkout(status="expired"))

    assert await run(paid_deps) == {"holds_expired": 1, "holds_confirmed": 0}
    assert (await session_of(seed, ids)).status == "expired"
    assert stripe.calls("POST") == []
    assert (await seed.row(t.audit_logs)).metadata["reason"] == "checkout_expired"


async def test_an_unknown_checkout_is_logged_and_the_hold_expired(paid_deps, seed, stripe):
    ids = await hold(seed, "cs_test_unknown")

    with capture_logs() as logs:
        assert await run(paid_deps) == {"holds_expired": 1, "holds_confirmed": 0}

    assert (await session_of(seed, ids)).status == "expired"
    [missing] = [e for e in logs if e["event"] == "checkout_session_missing"]
    assert (missing["log_level"], missing["checkout_id"], missing["session_id"]) == (
        "warning",
        "cs_test_unknown",
        str(ids["session_id"]),
    )


async def test_a_payment_still_processing_leaves_the_hold_alone(paid_deps, seed, stripe):
    ids = await hold(seed, stripe.checkout(status="complete", payment_status="unpaid"))

    assert await run(paid_deps) == {"holds_expired": 0, "holds_confirmed": 0}
    assert (await session_of(seed, ids)).status == "hold"
    assert len(stripe.requests) == 1, "asked once per run, not in a loop"


async def test_a_refused_request_leaves_the_hold_and_is_logged_as_an_error(paid_deps, seed, stripe):
    checkout = stripe.checkout(status="open")
    stripe.fail(checkout, "forbidden")
    ids = await hold(seed, checkout)
    other = await hold(seed, stripe.checkout(status="expired"))

    with capture_logs() as logs:
        assert await run(paid_deps) == {"holds_expired": 1, "holds_confirmed": 0}

    assert (await session_of(seed, ids)).status == "hold"
    assert (await session_of(seed, other)).status == "expired"
    [refused] = [e for e in logs if e["event"] == "checkout_session_refused"]
    assert refused["log_level"] == "error" and refused["stripe_request_id"].startswith("req_")


async def test_a_rate_limit_is_retried_and_what_stripe_answered_is_kept(paid_deps, seed, stripe):
    limited = stripe.checkout(status="expired")
    stripe.fail(limited, "rate_limit")
    ids = await hold(seed, limited, minutes_old=60)
    done = await hold(seed, stripe.checkout(status="expired"), minutes_old=50)

    with pytest.raises(Transient, match="rate limit"):
        await run(paid_deps)

    assert (await session_of(seed, ids)).status == "hold"
    assert (await session_of(seed, done)).status == "expired"

    stripe.failures.clear()  # the runtime's retry, once Stripe lets us in again
    assert await run(paid_deps) == {"holds_expired": 1, "holds_confirmed": 0}
    assert (await session_of(seed, ids)).status == "expired"


async def test_a_connection_error_is_transient(paid_deps, seed, stripe):
    ids = await hold(seed, "cs_test_anything")
    unreachable = paid_deps.with_settings(stripe_api_base="http://127.0.0.1:9")

    with pytest.raises(Transient, match="cannot reach Stripe"):
        await run(unreachable)
    assert (await session_of(seed, ids)).status == "hold"


async def test_a_refused_api_key_fails_loudly_and_touches_no_hold(paid_deps, seed, stripe):
    opened = stripe.checkout(status="open")
    a = await hold(seed, opened, minutes_old=60)
    b = await hold(seed, stripe.checkout(status="complete", payment_status="paid"), minutes_old=50)
    plain = await hold(seed)
    wrong_key = paid_deps.with_settings(stripe_api_key=SecretStr("sk_test_revoked"))

    with pytest.raises(Permanent, match="JOBFLEET_STRIPE_API_KEY") as failure:
        await run(wrong_key)

    assert "revoked" not in str(failure.value)
    assert (await session_of(seed, a)).status == (await session_of(seed, b)).status == "hold"
    assert stripe.checkouts[opened]["status"] == "open"
    assert (await session_of(seed, plain)).status == "expired", "holds without Stripe still expire"


async def test_a_crash_after_expiring_at_stripe_is_finished_by_the_next_run(paid_deps, seed, stripe):
    """The first batch expires A at Stripe, then B's answer aborts it: the transaction rolls back,
    so A is expired at Stripe but still a hold here. The re-run finds A expired at Stripe."""
    opened = stripe.checkout(status="open")
    a = await hold(seed, opened, minutes_old=60, reserved=True)
    broken = stripe.checkout(status="open")
    stripe.fail(broken, "auth")
    b = await hold(seed, broken, minutes_old=50)

    with pytest.raises(Permanent):
        await run(paid_deps)
    assert stripe.checkouts[opened]["status"] == "expired"
    assert (await session_of(seed, a)).status == "hold"

    stripe.failures.clear()
    assert await run(paid_deps) == {"holds_expired": 2, "holds_confirmed": 0}
    assert (await session_of(seed, a)).status == (await session_of(seed, b)).status == "expired"
    assert await seed.count(t.credit_ledger, t.credit_ledger.c.action == "RELEASE") == 1
    assert (await enrollment_of(seed, a)).sessions_scheduled == 0


# ---- without a Stripe key ------------------------------------------------------------------


async def test_without_a_key_checkout_holds_are_left_alone_with_one_warning(deps, seed, stripe):
    assert deps.settings.stripe_api_key is None
    small = deps.with_settings(sweep_batch_size=1)
    plain = [await hold(seed), await hold(seed)]
    checkout = await hold(seed, "cs_test_paid_maybe")

    with capture_logs() as logs:
        assert await run(small) == {"holds_expired": 2, "holds_confirmed": 0}

    assert [(await session_of(seed, ids)).status for ids in plain] == ["expired", "expired"]
    assert (await session_of(seed, checkout)).status == "hold"
    warnings = [e for e in logs if e["log_level"] == "warning"]
    assert [w["event"] for w in warnings] == ["stripe_not_configured"]


# ---- concurrency ---------------------------------------------------------------------------


async def test_two_concurrent_sweeps_settle_each_hold_once(paid_deps, seed, stripe):
    teacher = await seed.teacher(stripe_account_id=ACCOUNT)
    service = await seed.service(teacher)
    students = [await seed.student(teacher) for _ in range(3)]
    holds = []
    for i in range(30):
        student = students[(i // 3) % 3]
        enrollment = await seed.enrollment(
            service, student, teacher, status="pending_payment", sessions_total=4, sessions_scheduled=0
        )
        session = await seed.session(
            service,
            teacher,
            enrollment_id=enrollment,
            student_id=student,
            status="hold",
            created_at=ago(minutes=40 + i),
            ends_at=ahead(days=2),
        )
        kind = ("paid", "open", "plain")[i % 3]
        checkout = (
            None
            if kind == "plain"
            else stripe.checkout(status="complete", payment_status="paid")
            if kind == "paid"
            else stripe.checkout(status="open")
        )
        await seed.insert(t.session_payment, session_id=session, stripe_checkout_session_id=checkout)
        holds.append((session, enrollment, kind))
    small = paid_deps.with_settings(stripe_batch_size=3, sweep_batch_size=4, stripe_concurrency=2)

    a, b = await asyncio.gather(run(small), run(small))

    assert a["holds_confirmed"] + b["holds_confirmed"] == 10
    assert sum(a.values()) > 0 and sum(b.values()) > 0, "both sweeps should have taken batches"
    assert a["holds_expired"] + b["holds_expired"] == 20
    statuses = {r.id: r.status for r in await seed.rows(t.class_sessions)}
    for session, _, kind in holds:
        assert statuses[session] == ("scheduled" if kind == "paid" else "expired")
    async with seed.engine.connect() as conn:
        per_key = (
            await conn.execute(
                select(t.credit_ledger.c.idempotency_key, func.count()).group_by(
                    t.credit_ledger.c.idempotency_key
                )
            )
        ).all()
    assert len(per_key) == 20 and all(n == 1 for _, n in per_key)
    assert len(stripe.calls("POST")) == 10, "each open checkout expired at Stripe once"
    for e in await seed.rows(t.enrollments):
        paid = any(en == e.id and k == "paid" for _, en, k in holds)
        assert (e.status, e.sessions_scheduled) == (("active", 1) if paid else ("cancelled", 0))
    assert await seed.count(t.student_lifecycle_events) == 3, "one first_purchase per student"
    assert await seed.count(t.audit_logs) == 30


async def test_the_demo_data_shows_the_sweep_at_work(deps, seed, stripe):
    async with seed.engine.begin() as conn:
        expected = await payments_demo.seed_demo(conn)

    assert await run(deps) == expected == {"holds_expired": 2, "holds_confirmed": 0}
    assert await seed.count(t.credit_ledger, t.credit_ledger.c.action == "RELEASE") == 1
    assert await seed.count(t.class_sessions, t.class_sessions.c.status == "hold") == 1
