"""High-water marks: where an incremental job got to, kept by the runtime between runs.

A mark is an optimisation, never a guard: a job that finds no mark (first run, Redis flushed, a
run outside the fleet) does the full work, and its own SQL guards keep that correct.
"""

from datetime import datetime
from typing import Protocol


class Marks(Protocol):
    async def get(self, name: str) -> datetime | None: ...

    async def set(self, name: str, at: datetime) -> None: ...
