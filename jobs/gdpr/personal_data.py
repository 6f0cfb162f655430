"""A PinTeach student's personal data: what the erasure clears, and what ``jobfleet audit`` checks an
erased student no longer has. One list for both, so that they cannot drift apart.

Kept, because accounting law requires them and they hold no direct identifier: class_sessions,
enrollments, credit_ledger and session_payment rows, linked to the anonymised student row, and a
session's rating.
"""

from uuid import UUID

from db.pinteach import (
    contact_log,
    reviews,
    scheduled_messages,
    student_lifecycle_events,
    student_tags,
    waitlist_entries,
)

ERASED_NAME = "Erased student"
# students columns set to NULL (name and email are replaced: both are NOT NULL)
STUDENT_COLUMNS_CLEARED = (
    "phone",
    "level",
    "goals",
    "preferred_start_time",
    "preferred_end_time",
    "preferred_days",
    "referral_source",
    "drive_folder_id",
)
# session_content columns set to NULL on every session of the student: the teacher's notes about them
SESSION_CONTENT_CLEARED = ("summary", "teacher_notes", "student_mood", "student_level", "student_goals")
# Deleted outright (by student_id). Scheduled messages go before contact_log: a sent message points
# at its log row. Notifications go too: those for the student, and those about them
# (payload ->> 'student_id').
DELETED_WITH_STUDENT = (
    scheduled_messages,
    contact_log,
    student_lifecycle_events,
    student_tags,
    waitlist_entries,
    reviews,
)


def erased_email(student_id: UUID) -> str:
    # unique per student, so the (teacher_id, email) constraint keeps holding
    return f"erased-{student_id}@invalid.example"
