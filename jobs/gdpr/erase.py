"""gdpr.erase: erase one student now, for a pending erasure request even before it is due.

Re-running it on a completed request does nothing; on a ``processing`` one it finishes the work.
A rejected request is never erased. A failure (Drive refused) is raised for the runtime to retry
or record, and leaves the request ``processing``, which the hourly sweep also resumes.
"""

from sqlalchemy import select

from db.pinteach import data_erasure_requests
from jobfleet.payloads import ErasureRequestRef
from jobs.deps import Deps
from jobs.errors import NotFound, Permanent
from jobs.gdpr.erasure import erase_request, mark_processing

r = data_erasure_requests.c


async def run(deps: Deps, payload: ErasureRequestRef) -> dict[str, int]:
    request_id = payload.request_id
    async with deps.pinteach.begin() as conn:
        status = (await conn.execute(select(r.status).where(r.id == request_id))).scalar_one_or_none()
        if status is None:
            raise NotFound(f"no data erasure request {request_id}")
        if status == "rejected":
            raise Permanent(
                f"data erasure request {request_id} was rejected; the fleet does not erase for it"
            )
        await mark_processing(conn, [request_id])
    erased = await erase_request(deps, request_id)
    return {"erased": int(erased), "failed": 0}
