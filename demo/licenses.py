"""Demo data for licenses.reconcile: teacher licenses whose next step needs no Stripe.

``seed_demo(conn)`` adds five licenses (Pickatale, ``account_center``): a trial that ended, a
past-due license whose grace ran out, a cancelled one whose paid period ended, an enterprise
license with an old period (never lapses on its own) and an active one mid-period. The next run
expires the first three to tier ``free`` and leaves the other two alone.
"""

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncConnection

from db.pickatale import teacher_licenses


async def seed_demo(conn: AsyncConnection) -> dict[str, int]:
    """Insert the demo rows (in the caller's transaction); return what the next run should do."""
    now = datetime.now(UTC).replace(tzinfo=None)  # the DATETIME columns hold naive UTC
    day = timedelta(days=1)
    # (tier, state, period end, grace end)
    licenses = [
        ("trial", "trialing", now - day, None),
        ("teacher_paid", "past_due", now - 9 * day, now - 2 * day),
        ("teacher_paid", "cancelled", now - day, None),
        ("enterprise", "active", now - 40 * day, None),
        ("teacher_paid", "active", now + 20 * day, None),
    ]
    await conn.execute(
        teacher_licenses.insert().values(
            [
                {
                    "id": str(uuid.uuid4()),
                    "teacher_id": str(uuid.uuid4()),
                    "tier": tier,
                    "billing_cycle": None if tier in ("trial", "enterprise") else "monthly",
                    "state": state,
                    "period_start": period_end - 30 * day,
                    "period_end": period_end,
                    "grace_ends_at": grace_ends_at,
                    "created_at": now - 60 * day,
                }
                for tier, state, period_end, grace_ends_at in licenses
            ]
        )
    )
    return {"reconciled": 0, "expired": 3, "past_due": 0}
