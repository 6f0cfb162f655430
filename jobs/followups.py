"""Jobs that a job asks for once it has succeeded.

A job returns ``Outcome(summary, follow_ups)`` instead of a bare summary when its work makes other
work due (auto-completion makes review requests due). The runtime enqueues the follow-ups only
after the job returned, that is after its transactions committed, so a follow-up never sees the
database from before the change that caused it; a job that fails or is interrupted enqueues
nothing. The job itself never touches the queue: it names catalog jobs and payloads (ids only).
"""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class FollowUp:
    job: str  # a catalog name
    payload: Mapping[str, Any] = field(default_factory=dict)
    key: str | None = None  # the producer's idempotency key: queued duplicates collapse


@dataclass(frozen=True, slots=True)
class Outcome:
    summary: dict[str, int]
    follow_ups: tuple[FollowUp, ...] = ()


def outcome(result: "dict[str, int] | Outcome") -> Outcome:
    """Every job's result as an Outcome (most jobs return only their summary)."""
    return result if isinstance(result, Outcome) else Outcome(result)


def with_follow_ups(summary: dict[str, int], follow_ups: Iterable[FollowUp]) -> "dict[str, int] | Outcome":
    follow_ups = tuple(follow_ups)
    return Outcome(summary, follow_ups) if follow_ups else summary
