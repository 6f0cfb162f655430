"""waitlist.offer_next: a seat of a service freed; offer every free seat to the next waiting students.

Enqueued by the backend. Runs under the service's row lock, like waitlist.expire_offers, so the two
(or two of these) never offer one seat twice. A service without ``max_participants`` has no seat
count to go by: nothing is offered, and the log says so (its seats pass on as offers expire).
"""

from datetime import timedelta

import structlog

from jobfleet.payloads import ServiceRef
from jobs.deps import Deps
from jobs.errors import NotFound
from jobs.waitlist.seats import lock_services, offer_seats

log = structlog.get_logger()


async def run(deps: Deps, payload: ServiceRef) -> dict[str, int]:
    window = timedelta(hours=deps.settings.waitlist_offer_hours)
    async with deps.pinteach.begin() as conn:
        if not await lock_services(conn, [payload.service_id]):
            raise NotFound(f"service {payload.service_id} does not exist")
        # without a cap there is no seat count to go by: nothing to pass on
        (service,) = await offer_seats(conn, {payload.service_id: 0}, window=window)
    if not service.capped:
        log.warning("waitlist_service_has_no_cap", service_id=str(payload.service_id))
    log.info("waitlist_offers_made", service_id=str(payload.service_id), offered=service.offered)
    return {"offers_expired": 0, "offers_made": service.offered}
