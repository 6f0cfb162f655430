"""The five lifecycle rules, applied to what one student's rows say (loaded by jobs.lifecycle.state).

Pure functions, so that each rule reads like the issue. "Once" is decided here from the student's
earlier events, which the caller loaded after locking the student (see jobs.lifecycle.detect).
"""

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any
from uuid import UUID

# A student is "churnable" or "gappable" only while the relationship is live: paused is a deliberate
# pause, archived is over.
LIVE_STATUSES = ("trial", "active")


@dataclass(frozen=True, slots=True)
class Thresholds:
    enabled: bool = True
    gap_days: int = 14
    churn_days: int = 60
    streak_weeks: int = 4
    milestones: tuple[int, ...] = (10, 25, 50, 100)


@dataclass(frozen=True, slots=True)
class PastEvent:
    event_type: str
    occurred_at: datetime
    metadata: dict[str, Any]


@dataclass(frozen=True, slots=True)
class StudentState:
    student_id: UUID
    teacher_id: UUID
    status: str
    created_at: datetime
    updated_at: datetime  # the row's last change: when the status was set, for all we know
    thresholds: Thresholds
    last_session_at: datetime | None  # latest end of a booked or held session that has ended
    last_completed_at: datetime | None
    booked_ahead: bool  # a booked session that has not ended
    active_since: datetime | None  # earliest valid_from of an active enrollment; None: none active
    completed: int
    completed_weeks: tuple[date, ...]  # Mondays (student's time zone) of weeks with a completed session
    events: tuple[PastEvent, ...] = field(default=())

    def last(self, event_type: str) -> PastEvent | None:
        matching = [e for e in self.events if e.event_type == event_type]
        return max(matching, key=lambda e: e.occurred_at) if matching else None


@dataclass(frozen=True, slots=True)
class NewEvent:
    student_id: UUID
    teacher_id: UUID
    event_type: str
    metadata: dict[str, Any]


def detect(s: StudentState, now: datetime) -> list[NewEvent]:
    if not s.thresholds.enabled:
        return []
    found = [*milestones(s), *streaks(s)]
    if (reactivation := reactivated(s)) is not None:
        return [*found, reactivation]
    for rule in (gap, churn):
        if (event := rule(s, now)) is not None:
            found.append(event)
    return found


def _event(s: StudentState, event_type: str, **metadata: Any) -> NewEvent:
    return NewEvent(s.student_id, s.teacher_id, event_type, metadata)


def _days_since(then: datetime, now: datetime) -> int:
    return (now - then) // timedelta(days=1)


def gap(s: StudentState, now: datetime) -> NewEvent | None:
    """Active enrollment, nothing booked, no session for gap_days (from the last session, or the
    enrollment's start); once per gap."""
    if s.status not in LIVE_STATUSES or s.active_since is None or s.booked_ahead:
        return None
    days = s.thresholds.gap_days
    return _quiet(s, now, "gap_detected", s.last_session_at or s.active_since, days, gap_days=days)


def churn(s: StudentState, now: datetime) -> NewEvent | None:
    """No booked session, no active enrollment, no session for churn_days (or since sign-up); once
    per churn."""
    if s.status not in LIVE_STATUSES or s.active_since is not None or s.booked_ahead:
        return None
    days = s.thresholds.churn_days
    return _quiet(s, now, "churned", s.last_session_at or s.created_at, days, churn_days=days)


def _quiet(
    s: StudentState, now: datetime, event_type: str, since: datetime, days: int, **more: Any
) -> NewEvent | None:
    """The event when the student has been quiet for ``days`` since ``since``, unless an event of
    this type already followed ``since`` (this quiet spell was reported)."""
    if since > now - timedelta(days=days):
        return None
    earlier = s.last(event_type)
    if earlier is not None and earlier.occurred_at >= since:
        return None
    last_session_at = s.last_session_at.isoformat() if s.last_session_at else None
    return _event(
        s, event_type, last_session_at=last_session_at, days_without_session=_days_since(since, now), **more
    )


def reactivated(s: StudentState) -> NewEvent | None:
    """A churned student who has booked a session, or completed one after churning (when the status
    was set by someone else, with no churned event, the row's last change stands for that time)."""
    if s.status != "churned":
        return None
    churned = s.last("churned")
    churned_at = churned.occurred_at if churned else s.updated_at
    came_back = s.booked_ahead or (s.last_completed_at is not None and s.last_completed_at > churned_at)
    if not came_back:
        return None
    return _event(s, "reactivated", churned_at=churned_at.isoformat())


def milestones(s: StudentState) -> list[NewEvent]:
    """Each milestone once per student, ever: every one reached and not yet recorded (so a run
    after missed days catches up on all of them)."""
    reached = {e.metadata.get("milestone") for e in s.events if e.event_type == "milestone_reached"}
    return [
        _event(s, "milestone_reached", milestone=m, completed_sessions=s.completed)
        for m in sorted(set(s.thresholds.milestones))
        if 0 < m <= s.completed and m not in reached
    ]


def streak_runs(weeks: tuple[date, ...]) -> list[tuple[date, int]]:
    """(first Monday, length in weeks) of every run of consecutive weeks."""
    runs: list[tuple[date, int]] = []
    for week in sorted(set(weeks)):
        if runs and runs[-1][0] + timedelta(weeks=runs[-1][1]) == week:
            runs[-1] = (runs[-1][0], runs[-1][1] + 1)
        else:
            runs.append((week, 1))
    return runs


def streaks(s: StudentState) -> list[NewEvent]:
    """streak_weeks consecutive ISO weeks with a completed session; once per streak (named by its
    first week) and length reached."""
    length = s.thresholds.streak_weeks
    if length < 1:
        return []
    recorded = {
        (e.metadata.get("first_week"), e.metadata.get("weeks"))
        for e in s.events
        if e.event_type == "streak_achieved"
    }
    return [
        _event(
            s,
            "streak_achieved",
            weeks=length,
            first_week=first.isoformat(),
            reached_week=(first + timedelta(weeks=length - 1)).isoformat(),
        )
        for first, run in streak_runs(s.completed_weeks)
        if run >= length and (first.isoformat(), length) not in recorded
    ]
