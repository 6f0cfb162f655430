"""Claim a batch of outbox rows: one statement locks, deletes and returns them.

``DELETE ... WHERE id = ANY(ARRAY(SELECT id ... ORDER BY id LIMIT n FOR UPDATE SKIP LOCKED))``:
the subquery runs once (an ``IN (subquery)`` may be re-planned as a join that locks more rows),
walks the primary key from the oldest row, and passes over rows another relay holds. The rows stay
locked, and the delete undone, until the relay commits after Redis has taken their jobs; a relay
that dies first leaves them to the next one. Cost grows with the batch, not with the table.
"""

from sqlalchemy import any_, bindparam, delete, func, select
from sqlalchemy.sql import Delete

from db.pinteach import job_outbox

ROW = (
    job_outbox.c.id,
    job_outbox.c.job,
    job_outbox.c.payload,
    job_outbox.c.job_key,
    job_outbox.c.run_at,
    job_outbox.c.trace_context,
    job_outbox.c.created_at,
)


def claim_batch() -> Delete:
    """The statement; bind ``batch`` (rows per batch)."""
    oldest = (
        select(job_outbox.c.id)
        .order_by(job_outbox.c.id)
        .limit(bindparam("batch"))
        .with_for_update(skip_locked=True)
    )
    return (
        delete(job_outbox)
        .where(job_outbox.c.id == any_(func.array(oldest.scalar_subquery())))
        .returning(*ROW)
    )
