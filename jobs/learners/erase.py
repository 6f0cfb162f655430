"""learners.erase: erase one Pickatale learner now, for a pending request even before it is due.

Re-running it on a completed request does nothing; on a ``processing`` one it goes on with the
work. A rejected request is never erased. When the time budget
(``JOBFLEET_LEARNER_ERASE_BUDGET_S``) runs out first, the request stays ``processing`` and the
hourly ``learners.erase_due`` finishes it.
"""

from sqlalchemy import select

from db.pickatale import learner_erasure_requests
from jobfleet.payloads import LearnerErasureRef
from jobs.deps import Deps
from jobs.errors import NotFound, Permanent
from jobs.learners.erasure import SUMMARY_KEYS, deadline_from, erase_next, request_columns, unavailable

r = learner_erasure_requests.c


async def run(deps: Deps, payload: LearnerErasureRef) -> dict[str, int]:
    totals = dict.fromkeys(SUMMARY_KEYS, 0)
    if await unavailable(deps):
        return totals
    request_id = payload.request_id
    async with deps.pickatale.connect() as conn:
        status = (await conn.execute(select(r.status).where(r.id == request_id))).scalar_one_or_none()
    if status is None:
        raise NotFound(f"no learner erasure request {request_id}")
    if status == "rejected":
        raise Permanent(f"learner erasure request {request_id} was rejected; the fleet does not erase for it")
    if status == "completed":
        return totals
    candidates = request_columns().where(r.id == request_id, r.status.in_(("pending", "processing")))
    done = await erase_next(deps, candidates, deadline=deadline_from(deps))
    # None: another run holds it right now, or completed it a moment ago
    return {**totals, **(done[1] if done else {"busy": 1})}
