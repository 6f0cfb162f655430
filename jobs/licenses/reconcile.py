"""licenses.reconcile: move Pickatale teacher licenses through trial, payment, grace and expiry.

- ``trialing``/``active`` whose period ended: with a Stripe subscription, follow it (``active`` or
  ``trialing``: ``active`` with the subscription's current period; ``past_due``/``unpaid``:
  ``past_due`` with ``grace_ends_at = now + license_grace_days`` unless already set; ``canceled``:
  ``cancelled``); without one, ``expired`` with tier ``free``.
- ``past_due`` whose grace ended, and ``cancelled`` whose period ended: ``expired``, tier ``free``.
- ``enterprise`` and ``gifted`` licenses without a subscription never expire on their own.

Summary: ``reconciled`` counts licenses updated from their Stripe subscription (whatever the
outcome), ``past_due`` those that entered ``past_due``, ``expired`` those that became ``expired``.

Exactly once: due rows are locked with FOR UPDATE SKIP LOCKED (MariaDB 10.6+, MySQL 8) and updated
with their due condition repeated. The DDL has no index on state or dates, so each batch scans the
table in primary-key order until it has its rows (one license per teacher keeps that table small);
READ COMMITTED makes that scan lock only the rows it takes, and no gaps. Licenses with a
subscription are locked while Stripe answers, ``stripe_batch_size`` at a time
(``jobs.stripe_api.batches``).
DATETIMEs hold naive UTC; cut-offs use ``UTC_TIMESTAMP()``.
"""

from datetime import datetime
from typing import Any

import structlog
from sqlalchemy import and_, case, func, not_, or_, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection

from db.pickatale import teacher_licenses
from jobfleet.payloads import Sweep
from jobs.deps import Deps
from jobs.errors import JobError, Transient
from jobs.stripe_api.batches import ask_each, batch, not_configured
from jobs.stripe_api.client import Missing, Refused, StripeApi, Subscription, connect
from jobs.sweep import Taken, lock_due, sweep, sweep_in_transactions

log = structlog.get_logger()

SUMMARY_KEYS = ("reconciled", "expired", "past_due")
# Stripe's subscription status -> the license state that follows it. A subscription that still
# wants a payment (paused after a trial without a card, incomplete) gets the grace of past_due; one
# that ended before ever being paid (incomplete_expired) is cancelled.
FOLLOWS = {
    "active": "active",
    "trialing": "active",
    "past_due": "past_due",
    "unpaid": "past_due",
    "paused": "past_due",
    "incomplete": "past_due",
    "canceled": "cancelled",
    "incomplete_expired": "cancelled",
}

L = teacher_licenses.c
NOW = func.utc_timestamp()
SUBSCRIPTION = func.nullif(L.stripe_sub_id, "")
NEVER_LAPSES = and_(L.tier.in_(("enterprise", "gifted")), SUBSCRIPTION.is_(None))
PERIOD_OVER = and_(L.state.in_(("trialing", "active")), L.period_end <= NOW)
ASK_STRIPE = and_(PERIOD_OVER, SUBSCRIPTION.is_not(None))
DUE_TO_EXPIRE = and_(
    not_(NEVER_LAPSES),
    or_(
        and_(PERIOD_OVER, SUBSCRIPTION.is_(None)),
        and_(L.state == "past_due", L.grace_ends_at <= NOW),
        and_(L.state == "cancelled", L.period_end <= NOW),
    ),
)


async def run(deps: Deps, payload: Sweep) -> dict[str, int]:
    settings = deps.settings
    engine = deps.pickatale.execution_options(isolation_level="READ COMMITTED")
    grace_s = round(settings.license_grace_days * 86400)
    seen: set[str] = set()  # asked once per run, even when Stripe's answer leaves them due

    async def stripe_step(conn: AsyncConnection) -> tuple[int, dict[str, int], list[Transient]]:
        assert stripe is not None
        return await follow_stripe(conn, stripe, grace_s=grace_s, limit=settings.stripe_batch_size, seen=seen)

    async def expiry_step(conn: AsyncConnection, limit: int, cursor: None) -> Taken:
        return Taken(*await expire_due(conn, limit=limit))

    totals = dict.fromkeys(SUMMARY_KEYS, 0)
    stripe_failure: JobError | None = None
    async with connect(settings) as stripe:
        if stripe is None:
            not_configured("licenses.reconcile", left_alone="licenses with a Stripe subscription")
        else:
            try:
                totals = await sweep(
                    batch(engine.begin, stripe_step), budget_s=settings.sweep_budget_s, keys=SUMMARY_KEYS
                )
            except JobError as e:
                # the expiries below need no Stripe: do them before reporting the failure
                stripe_failure = e
    # after Stripe, so that a subscription found canceled expires in the same run
    expired = await sweep_in_transactions(
        engine,
        expiry_step,
        settings=settings,
        keys=SUMMARY_KEYS,
    )
    if stripe_failure is not None:
        raise stripe_failure
    return {k: totals[k] + expired[k] for k in SUMMARY_KEYS}


async def expire_due(conn: AsyncConnection, *, limit: int) -> tuple[int, dict[str, int]]:
    ids = await lock_due(conn, L.id, DUE_TO_EXPIRE, order_by=[L.id], limit=limit)
    if not ids:
        return 0, {}
    await conn.execute(
        update(teacher_licenses).where(L.id.in_(ids), DUE_TO_EXPIRE).values(state="expired", tier="free")
    )
    return len(ids), {"expired": len(ids)}


async def follow_stripe(
    conn: AsyncConnection, stripe: StripeApi, *, grace_s: int, limit: int, seen: set[str]
) -> tuple[int, dict[str, int], list[Transient]]:
    query = (
        select(L.id, L.stripe_sub_id)
        .where(ASK_STRIPE)
        # Primary-key order: InnoDB stops the scan at `limit` rows and so locks only those; a
        # sort (on period_end, say) would lock every due row first and starve a concurrent run.
        .order_by(L.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    if seen:
        query = query.where(L.id.not_in(list(seen)))
    due = (await conn.execute(query)).all()
    if not due:
        return 0, {}, []
    seen.update(row.id for row in due)
    answers = await ask_each(stripe, due, lambda row: ask_stripe(stripe, row.id, row.stripe_sub_id))

    targets: dict[str, list[tuple[str, Subscription | None]]] = {}
    for row, answer in answers.answered:
        if answer is not None:
            state, subscription = answer
            targets.setdefault(state, []).append((row.id, subscription))

    await renew(conn, targets.get("active", []))
    past_due = [license_id for license_id, _ in targets.get("past_due", [])]
    if past_due:
        grace_end = func.timestampadd(text("SECOND"), grace_s, NOW)
        await conn.execute(
            update(teacher_licenses)
            .where(L.id.in_(past_due), ASK_STRIPE)
            .values(state="past_due", grace_ends_at=func.coalesce(L.grace_ends_at, grace_end))
        )
    cancelled = [license_id for license_id, _ in targets.get("cancelled", [])]
    if cancelled:
        await conn.execute(
            update(teacher_licenses).where(L.id.in_(cancelled), ASK_STRIPE).values(state="cancelled")
        )
    counts = {"reconciled": sum(len(v) for v in targets.values()), "past_due": len(past_due)}
    return len(due), counts, answers.failures


async def renew(conn: AsyncConnection, renewed: list[tuple[str, Subscription | None]]) -> None:
    """Active again: take the subscription's current period; a grace from an old episode is void."""
    if not renewed:
        return

    def per_license(field: str) -> Any:
        periods: dict[str, datetime] = {
            license_id: getattr(sub, field) for license_id, sub in renewed if sub and getattr(sub, field)
        }
        current = getattr(L, field)
        return case(periods, value=L.id, else_=current) if periods else current

    await conn.execute(
        update(teacher_licenses)
        .where(L.id.in_([license_id for license_id, _ in renewed]), ASK_STRIPE)
        .values(
            state="active",
            period_start=per_license("period_start"),
            period_end=per_license("period_end"),
            grace_ends_at=None,
        )
    )


async def ask_stripe(
    stripe: StripeApi, license_id: str, subscription_id: str
) -> tuple[str, Subscription | None] | None:
    """The state the license should take from its subscription, or None to leave it for now."""
    try:
        subscription = await stripe.subscription(subscription_id)
    except Missing:
        # a subscription Stripe does not know cannot be paying for anything
        log.error("subscription_missing", license_id=license_id, subscription_id=subscription_id)
        return "cancelled", None
    except Refused as e:
        log.error(
            "subscription_refused",
            license_id=license_id,
            subscription_id=subscription_id,
            stripe_request_id=e.request_id,
            stripe_code=e.code,
        )
        return None
    state = FOLLOWS.get(subscription.status)
    if state is None:
        log.warning(
            "subscription_status_unknown",
            license_id=license_id,
            subscription_id=subscription_id,
            subscription_status=subscription.status,
        )
        return None
    return state, subscription
