"""learners.erase_due: erase the learners whose erasure request is due, and finish interrupted ones.

Due: ``pending`` with ``due_at`` passed (UTC); ``processing`` requests (a crashed run, or one that
ran out of time) are taken again, whatever their ``due_at``. One request at a time, oldest due
first, until none is left or the time budget (``JOBFLEET_LEARNER_ERASE_BUDGET_S``) is spent;
requests another run holds are skipped (jobs.learners.erasure).
"""

import time
from collections import Counter

from sqlalchemy import and_, func, or_

from db.pickatale import learner_erasure_requests
from jobfleet.payloads import Sweep
from jobs.deps import Deps
from jobs.learners.erasure import SUMMARY_KEYS, deadline_from, erase_next, request_columns, unavailable

r = learner_erasure_requests.c


async def run(deps: Deps, payload: Sweep) -> dict[str, int]:
    totals: Counter[str] = Counter(dict.fromkeys(SUMMARY_KEYS, 0))
    if await unavailable(deps):
        return dict(totals)
    deadline = deadline_from(deps)
    tried: list[int] = []
    while True:
        candidates = (
            request_columns()
            .where(
                or_(and_(r.status == "pending", r.due_at <= func.utc_timestamp()), r.status == "processing"),
                r.id.not_in(tried),
            )
            .order_by(r.due_at, r.id)
        )
        done = await erase_next(deps, candidates, deadline=deadline)
        if done is None:
            break
        tried.append(done[0])
        totals.update(done[1])
        if time.monotonic() >= deadline:
            break
    return dict(totals)
