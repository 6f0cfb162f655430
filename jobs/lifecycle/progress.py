"""Where lifecycle.detect got to: its high-water mark, and how far a window cut short got.

``since``: the window of the current pass starts here (None: every student). ``next_since``: where
the next window starts once this one is done: the start of the first run of this pass, so that
whatever changed while the pass took several runs is looked at again. ``after``: the last student
(by id) a run cut short by its budget got through; the next run of the same pass goes on after it.

Why Redis (``Deps.marks``) and not the database: the schema has no table for it and the fleet does
not alter the schema; deriving it from the tables would mean the newest lifecycle event or session
write, and neither ``student_lifecycle_events.created_at`` nor ``class_sessions.updated_at`` has an
index, so finding it would cost a scan of the very history the mark is there to avoid. Losing the
mark costs one full pass, nothing else.
"""

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID


@dataclass(frozen=True, slots=True)
class Progress:
    since: datetime | None = None
    next_since: datetime | None = None
    after: UUID | None = None

    @classmethod
    def from_doc(cls, doc: dict[str, Any] | None) -> "Progress":
        doc = doc or {}
        return cls(
            since=_time(doc.get("since")),
            next_since=_time(doc.get("next_since")),
            after=UUID(doc["after"]) if doc.get("after") else None,
        )

    def doc(self) -> dict[str, Any]:
        return {
            "since": self.since.isoformat() if self.since else None,
            "next_since": self.next_since.isoformat() if self.next_since else None,
            "after": str(self.after) if self.after else None,
        }

    def finished(self) -> "Progress":
        """The pass is done: the next one starts where this one began."""
        return Progress(since=self.next_since)


def _time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None
