"""Jobs that a job asks for once it has succeeded.

A job whose work makes other work due (auto-completion makes review requests due) returns its
summary as an ``Outcome``: the same counts (it is a dict), plus the follow-ups. The runtime
enqueues them only after the job returned, that is after its transactions committed, so a
follow-up never reads the database from before the change that caused it; a job that fails or is
interrupted returns nothing and so enqueues nothing. The job never touches the queue itself: it
names catalog jobs and payloads (ids only), and the periodic sweep of the same job is the safety
net for a follow-up that Redis did not take.
"""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class FollowUp:
    job: str  # a catalog name
    payload: Mapping[str, Any] = field(default_factory=dict)
    key: str | None = None  # the producer's idempotency key: queued duplicates collapse


class Outcome(dict[str, int]):
    """A job's summary, carrying the follow-ups it asks for."""

    def __init__(self, summary: Mapping[str, int], follow_ups: Iterable[FollowUp] = ()) -> None:
        super().__init__(summary)
        self.follow_ups = tuple(follow_ups)


def outcome(result: Mapping[str, int]) -> Outcome:
    """Every job's result as an Outcome (most jobs return a plain summary: no follow-ups)."""
    return result if isinstance(result, Outcome) else Outcome(result)


def with_follow_ups(summary: Mapping[str, int], follow_ups: Iterable[FollowUp]) -> Outcome:
    return Outcome(summary, follow_ups)
