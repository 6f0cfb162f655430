"""High-water marks: where an incremental job got to, kept by the runtime between runs.

A mark is a small JSON object the job defines. It is an optimisation, never a guard: a job that
finds no mark (first run, Redis flushed, a run outside the fleet) does the full work, and its own
SQL guards keep that correct.
"""

from typing import Any, Protocol


class Marks(Protocol):
    async def get(self, name: str) -> dict[str, Any] | None: ...

    async def set(self, name: str, value: dict[str, Any]) -> None: ...
