"""calendar.sync_session: bring one session's calendar event in line with the session, now.

The backend enqueues it on every change, keyed by session, so queued duplicates collapse; runs
that still overlap are kept apart by the session's sync lock (a second run skips), and a change
that lands during a sync is synced in a further round (see ``jobs.calendar.sync``).

A retry-worthy provider failure is recorded on the row (failed, with its retry time) and raised as
``Transient`` so the runtime retries once the row is due; the sweep retries it too, whichever
comes first does the work and the other finds nothing due.
"""

from jobfleet.payloads import SessionRef
from jobs.calendar.sync import SUMMARY_KEYS, sync_one
from jobs.deps import Deps
from jobs.errors import Transient


async def run(deps: Deps, payload: SessionRef) -> dict[str, int]:
    result = await sync_one(deps, payload.session_id)
    if result.kind == "retrying":
        raise Transient(result.error or "calendar provider unavailable", retry_after_s=result.retry_in_s)
    return {key: int(key == result.kind) for key in SUMMARY_KEYS}
