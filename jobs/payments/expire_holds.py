"""sessions.expire_holds: release checkout holds that outlived their time, unless Stripe says paid.

A hold (a ``class_sessions`` row in status ``hold``) lasts ``hold_ttl_minutes`` from ``created_at``.

- A hold with a Checkout Session is settled by what Stripe says, since a webhook may have been
  missed: ``paid`` confirms the booking; ``open`` is expired at Stripe first (so the student can no
  longer pay for a released slot), then the hold; ``expired`` (or unknown to Stripe) expires the hold.
- Holds without a Checkout Session (credit or free bookings) just expire.
- Expiring: session ``expired``; a ``pending_payment`` enrollment with no other live session is
  ``cancelled``; a ``RESERVE`` without ``RELEASE`` gets its ``RELEASE`` and ``sessions_scheduled - 1``.
- Confirming: session ``scheduled``, enrollment ``active``, payment details from Stripe, ledger
  ``GRANT`` and ``RESERVE``, ``sessions_scheduled + 1``, ``first_purchase`` on a first paid enrollment.

Exactly once: due holds are locked with FOR UPDATE SKIP LOCKED, so concurrent sweeps take disjoint
batches; ledger rows are inserted ON CONFLICT DO NOTHING and counters move only for rows inserted.
Holds with a Checkout Session are locked while their Stripe calls run (``jobs.stripe_api.batches``:
``stripe_batch_size`` rows, ``stripe_concurrency`` calls at once, each bounded by
``stripe_timeout_s``, so the locks last at worst ceil(batch / concurrency) x timeout). Only the
expired hold rows are held that long; enrollments and the ledger are locked after Stripe has
answered. A webhook handler touching the same hold waits for the batch instead of racing it. A
crash after expiring at Stripe but before commit is harmless: the next run reads the Checkout
Session as ``expired`` and expires the hold.
"""

import time
from collections.abc import Collection
from dataclasses import dataclass
from datetime import timedelta
from typing import Literal
from uuid import UUID

import structlog
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from db.pinteach import class_sessions, session_payment, teachers
from jobfleet.payloads import Sweep
from jobs.credits.locking import lock_enrollments
from jobs.deps import Deps
from jobs.errors import Transient
from jobs.payments import settle
from jobs.payments.settle import Hold
from jobs.stripe_api.batches import ask_each, batch, not_configured
from jobs.stripe_api.client import Checkout, Missing, Refused, StripeApi, connect
from jobs.sweep import Taken, sweep, sweep_in_transactions

log = structlog.get_logger()

SUMMARY_KEYS = ("holds_expired", "holds_confirmed")
PAID = ("paid", "no_payment_required")
cs = class_sessions.c


@dataclass(frozen=True, slots=True)
class Verdict:
    action: Literal["confirm", "expire", "wait"]
    reason: str
    checkout: Checkout | None = None


async def run(deps: Deps, payload: Sweep) -> dict[str, int]:
    settings = deps.settings
    ttl = timedelta(minutes=settings.hold_ttl_minutes)
    deadline = time.monotonic() + settings.sweep_budget_s

    async def plain_step(conn: AsyncConnection, limit: int, cursor: None) -> Taken:
        holds = await lock_due_holds(conn, ttl=ttl, with_checkout=False, skip=(), limit=limit)
        await lock_enrollments(conn, (h.enrollment_id for h in holds if h.enrollment_id is not None))
        expired = await settle.expire(conn, [(h, "ttl") for h in holds])
        return Taken(len(holds), {"holds_expired": expired})

    async with connect(settings) as stripe:
        plain = await sweep_in_transactions(
            deps.pinteach,
            plain_step,
            settings=settings,
            keys=SUMMARY_KEYS,
        )
        if stripe is None:
            not_configured("sessions.expire_holds", left_alone="holds with a Checkout Session")
            return plain
        # Holds Stripe told us to leave (payment processing, a refused request) are not asked
        # again in this run.
        waiting: set[UUID] = set()

        async def stripe_step(conn: AsyncConnection) -> tuple[int, dict[str, int], list[Transient]]:
            return await settle_with_stripe(
                conn, stripe, ttl=ttl, limit=settings.stripe_batch_size, waiting=waiting
            )

        checked = await sweep(
            batch(deps.pinteach.begin, stripe_step),
            budget_s=max(deadline - time.monotonic(), 0),
            keys=SUMMARY_KEYS,
        )
    return {k: plain[k] + checked[k] for k in SUMMARY_KEYS}


async def lock_due_holds(
    conn: AsyncConnection, *, ttl: timedelta, with_checkout: bool, skip: Collection[UUID], limit: int
) -> list[Hold]:
    checkout_id = func.nullif(session_payment.c.stripe_checkout_session_id, "")
    query = (
        select(
            cs.id,
            cs.enrollment_id,
            cs.student_id,
            cs.teacher_id,
            checkout_id.label("checkout_id"),
            teachers.c.stripe_account_id,
        )
        .select_from(
            class_sessions.join(teachers, teachers.c.id == cs.teacher_id).outerjoin(
                session_payment, session_payment.c.session_id == cs.id
            )
        )
        # (status, ends_at) index: the scan covers holds only, never the whole table
        .where(
            cs.status == "hold",
            cs.created_at <= func.now() - ttl,
            checkout_id.is_not(None) if with_checkout else checkout_id.is_(None),
        )
        .order_by(cs.created_at)
        .limit(limit)
        .with_for_update(of=class_sessions, skip_locked=True)
    )
    if skip:
        query = query.where(cs.id.not_in(list(skip)))
    return [Hold(*row) for row in await conn.execute(query)]


async def settle_with_stripe(
    conn: AsyncConnection, stripe: StripeApi, *, ttl: timedelta, limit: int, waiting: set[UUID]
) -> tuple[int, dict[str, int], list[Transient]]:
    holds = await lock_due_holds(conn, ttl=ttl, with_checkout=True, skip=waiting, limit=limit)
    if not holds:
        return 0, {}, []
    answers = await ask_each(stripe, holds, lambda hold: ask_stripe(stripe, hold))
    waiting.update(hold.session_id for hold in answers.unanswered)

    confirm: list[tuple[Hold, Checkout]] = []
    expire: list[tuple[Hold, str]] = []
    for hold, verdict in answers.answered:
        if verdict.action == "confirm":
            assert verdict.checkout is not None
            confirm.append((hold, verdict.checkout))
        elif verdict.action == "expire":
            expire.append((hold, verdict.reason))
        else:
            waiting.add(hold.session_id)

    totals = await lock_enrollments(conn, (h.enrollment_id for h in holds if h.enrollment_id is not None))
    confirmed = await settle.confirm(conn, confirm, totals)
    expired = await settle.expire(conn, expire)
    return len(holds), {"holds_expired": expired, "holds_confirmed": confirmed}, answers.failures


async def ask_stripe(stripe: StripeApi, hold: Hold) -> Verdict:
    """What to do with one expired hold, according to its Checkout Session."""
    assert hold.checkout_id is not None
    try:
        checkout = await stripe.checkout(hold.checkout_id, account=hold.account)
        if checkout.status == "open":
            try:
                checkout = await stripe.expire_checkout(hold.checkout_id, account=hold.account)
            except Refused:
                # Stripe expires open sessions only: the student completed it a moment ago
                checkout = await stripe.checkout(hold.checkout_id, account=hold.account)
    except Missing:
        log.warning("checkout_session_missing", session_id=str(hold.session_id), checkout_id=hold.checkout_id)
        return Verdict("expire", "checkout_missing")
    except Refused as e:
        log.error(
            "checkout_session_refused",
            session_id=str(hold.session_id),
            checkout_id=hold.checkout_id,
            stripe_request_id=e.request_id,
            stripe_code=e.code,
        )
        return Verdict("wait", "refused")
    return verdict_for(checkout, hold)


def verdict_for(checkout: Checkout, hold: Hold) -> Verdict:
    if checkout.payment_status in PAID:
        return Verdict("confirm", "paid", checkout)
    if checkout.status == "expired":
        return Verdict("expire", "checkout_expired")
    # complete but unpaid: a delayed payment method is still processing; its webhook decides
    log.info(
        "checkout_payment_pending",
        session_id=str(hold.session_id),
        checkout_id=hold.checkout_id,
        checkout_status=checkout.status,
        payment_status=checkout.payment_status,
    )
    return Verdict("wait", "payment_pending")
