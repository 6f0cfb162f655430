"""Probes of the fleet itself: a no-op and a sleep, used by ops checks and the benchmarks."""

import asyncio

from jobfleet.payloads import Sleep, Sweep
from jobs.deps import Deps


async def noop(deps: Deps, payload: Sweep) -> dict[str, int]:
    return {}


async def sleep(deps: Deps, payload: Sleep) -> dict[str, int]:
    await asyncio.sleep(payload.ms / 1000)
    return {"slept_ms": payload.ms}
