"""PinTeach's tables as SQLAlchemy Core objects, mirroring db/schema/pinteach.sql (the contract).

The backend owns the schema; these definitions only describe it for queries and for ``db check``.
"""

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    Uuid,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, ENUM, JSONB

metadata = MetaData()
TZ = DateTime(timezone=True)
# for set-based statements that take a batch as one array parameter (unnest, = ANY)
UUID_ARRAY = ARRAY(Uuid)
INT_ARRAY = ARRAY(Integer)
GEN_UUID = text("gen_random_uuid()")

ENUMS: dict[str, tuple[str, ...]] = {
    "session_status": (
        "hold",
        "pending_confirmation",
        "scheduled",
        "in_progress",
        "completed",
        "pending_review",
        "cancelled_by_student",
        "cancelled_by_teacher",
        "cancelled_system",
        "no_show_student",
        "no_show_teacher",
        "rescheduled",
        "expired",
    ),
    "enrollment_status": ("pending_payment", "active", "completed", "cancelled", "expired", "suspended"),
    "service_status": ("draft", "active", "paused", "archived"),
    "participant_status": ("confirmed", "cancelled", "no_show", "attended"),
    "delivery_mode": ("live", "async", "hybrid"),
    "group_type": ("individual", "group", "open"),
    "service_structure": ("single", "package", "course", "subscription"),
    "service_visibility": ("public", "unlisted", "private"),
    "pricing_model": ("credits", "fixed_price", "free"),
    "billing_interval": ("weekly", "monthly", "quarterly", "yearly"),
    "booking_mode": ("student_picks", "fixed_schedule", "teacher_assigns", "none"),
    "credit_action": ("GRANT", "RESERVE", "CONSUME", "RELEASE", "ADJUST", "EXPIRE"),
    "credit_actor": ("system", "teacher", "student", "stripe"),
    "oauth_provider": ("google", "microsoft", "zoom", "apple"),
    "integration_type": ("calendar_read", "calendar_write", "drive", "meet"),
    "calendar_sync_status": ("synced", "pending", "failed"),
    "audit_actor_type": ("teacher", "student", "system", "stripe", "admin"),
    "erasure_requested_by": ("student", "teacher"),
    "erasure_request_status": ("pending", "processing", "completed", "rejected"),
    "waitlist_status": ("waiting", "notified", "enrolled", "expired", "cancelled"),
    "lifecycle_event_type": (
        "first_contact",
        "trial_requested",
        "trial_completed",
        "first_purchase",
        "session_completed",
        "milestone_reached",
        "streak_achieved",
        "session_cancelled",
        "no_show",
        "gap_detected",
        "enrollment_expiring",
        "churned",
        "reactivated",
        "enrollment_renewed",
    ),
    "scheduled_message_status": ("pending", "sent", "cancelled"),
    "completion_mode": ("AUTO_COMPLETE", "MANUAL"),
    "student_status": ("trial", "active", "paused", "churned", "archived"),
}
# Enum types of migration 0080: checked only where its tables exist (see OPTIONAL_MIGRATION).
OPTIONAL_ENUMS: dict[str, tuple[str, ...]] = {
    "review_request_status": ("pending", "completed", "expired", "dismissed"),
    "review_request_channel": ("in_app", "email", "link"),
}


def enum(name: str) -> ENUM:
    return ENUM(*(ENUMS.get(name) or OPTIONAL_ENUMS[name]), name=name, create_type=False)


# Migration 0080 (the fleet's second round): production databases may not have run it yet. Each
# table says which part of the fleet needs it, so ``db check`` and the jobs can say what is off.
OPTIONAL_MIGRATION = "0080_job_fleet_2"


def optional(needed_by: str) -> dict[str, str]:
    return {"migration": OPTIONAL_MIGRATION, "needed_by": needed_by}


teachers = Table(
    "teachers",
    metadata,
    Column("id", Uuid, primary_key=True, server_default=GEN_UUID),
    Column("email", String(255), nullable=False),
    Column("name", String(255), nullable=False),
    Column("slug", String(100), nullable=False),
    Column("headline", String(255)),
    Column("bio", Text),
    Column("avatar_url", Text),
    Column("timezone", String(100), nullable=False),
    Column("stripe_account_id", String(255)),
    Column("buffer_minutes", Integer),
    Column("min_notice_hours", Integer),
    Column("default_currency", String(3)),
    Column("completion_mode", enum("completion_mode"), nullable=False),
    Column("profile_layout", JSONB),
    Column("onboarding_completed", Boolean),
    Column("created_at", TZ, nullable=False),
    Column("updated_at", TZ, nullable=False),
)

students = Table(
    "students",
    metadata,
    Column("id", Uuid, primary_key=True, server_default=GEN_UUID),
    Column("teacher_id", Uuid, nullable=False),
    Column("email", String(255), nullable=False),
    Column("name", String(255), nullable=False),
    Column("phone", String(50)),
    Column("timezone", String(100), nullable=False),
    Column("level", String(50)),
    Column("goals", Text),
    Column("status", enum("student_status")),
    Column("drive_folder_id", String(255)),
    Column("preferred_start_time", String(5)),
    Column("preferred_end_time", String(5)),
    Column("preferred_days", JSONB),
    Column("referral_source", String(50)),
    Column("deleted_at", TZ),
    Column("created_at", TZ, nullable=False),
    Column("updated_at", TZ, nullable=False),
)

services = Table(
    "services",
    metadata,
    Column("id", Uuid, primary_key=True, server_default=GEN_UUID),
    Column("teacher_id", Uuid, nullable=False),
    Column("name", String(255), nullable=False),
    Column("slug", String(150), nullable=False),
    Column("delivery_mode", enum("delivery_mode"), nullable=False),
    Column("group_type", enum("group_type"), nullable=False),
    Column("structure", enum("service_structure"), nullable=False),
    Column("booking_mode", enum("booking_mode"), nullable=False),
    Column("session_duration_minutes", Integer),
    Column("session_count", Integer),
    Column("max_participants", Integer),
    Column("pricing_model", enum("pricing_model"), nullable=False),
    Column("price_amount", Integer),
    Column("currency", String(3)),
    Column("billing_interval", enum("billing_interval")),
    Column("is_trial", Boolean),
    Column("status", enum("service_status")),
    Column("visibility", enum("service_visibility")),
    Column("archived_at", TZ),
    Column("deleted_at", TZ),
    Column("created_at", TZ, nullable=False),
    Column("updated_at", TZ, nullable=False),
)

discount_codes = Table(
    "discount_codes",
    metadata,
    Column("id", Uuid, primary_key=True, server_default=GEN_UUID),
    Column("teacher_id", Uuid, nullable=False),
    Column("code", String(50), nullable=False),
    Column("discount_type", String(20), nullable=False),
    Column("discount_value", Integer, nullable=False),
    Column("is_active", Boolean),
    Column("deleted_at", TZ),
    Column("created_at", TZ, nullable=False),
)

enrollments = Table(
    "enrollments",
    metadata,
    Column("id", Uuid, primary_key=True, server_default=GEN_UUID),
    Column("service_id", Uuid, nullable=False),
    Column("student_id", Uuid, nullable=False),
    Column("teacher_id", Uuid, nullable=False),
    Column("status", enum("enrollment_status")),
    Column("sessions_total", Integer),
    Column("sessions_scheduled", Integer),
    Column("sessions_completed", Integer),
    Column("sessions_cancelled", Integer),
    Column("sessions_forfeited", Integer),
    Column("valid_from", TZ, nullable=False),
    Column("valid_until", TZ),
    Column("discount_code_id", Uuid),
    Column("discount_amount", Integer),
    Column("created_at", TZ, nullable=False),
    Column("updated_at", TZ, nullable=False),
)

class_sessions = Table(
    "class_sessions",
    metadata,
    Column("id", Uuid, primary_key=True, server_default=GEN_UUID),
    Column("enrollment_id", Uuid),
    Column("service_id", Uuid, nullable=False),
    Column("teacher_id", Uuid, nullable=False),
    Column("student_id", Uuid),
    Column("starts_at", TZ, nullable=False),
    Column("ends_at", TZ, nullable=False),
    Column("timezone", String(100), nullable=False),
    Column("status", enum("session_status")),
    Column("is_trial_session", Boolean),
    Column("reschedule_count", Integer),
    Column("completed_at", TZ),
    Column("created_at", TZ, nullable=False),
    Column("updated_at", TZ, nullable=False),
)

session_participants = Table(
    "session_participants",
    metadata,
    Column("id", Uuid, primary_key=True, server_default=GEN_UUID),
    Column("session_id", Uuid, nullable=False),
    Column("student_id", Uuid, nullable=False),
    Column("enrollment_id", Uuid, nullable=False),
    Column("status", enum("participant_status"), nullable=False),
    Column("created_at", TZ, nullable=False),
)

session_content = Table(
    "session_content",
    metadata,
    Column("session_id", Uuid, primary_key=True),
    Column("summary", Text),
    Column("teacher_notes", Text),
    Column("student_mood", String(50)),
    Column("rating", Integer),
    Column("student_level", String(50)),
    Column("student_goals", Text),
    Column("template_id", Uuid),
)

session_payment = Table(
    "session_payment",
    metadata,
    Column("session_id", Uuid, primary_key=True),
    Column("stripe_checkout_session_id", String(255)),
    Column("stripe_payment_intent_id", String(255)),
    Column("amount_paid", Integer),
    Column("currency", String(3)),
)

session_calendar_sync = Table(
    "session_calendar_sync",
    metadata,
    Column("session_id", Uuid, primary_key=True),
    Column("google_calendar_event_id", String(255)),
    Column("google_meet_link", Text),
    Column("meeting_url", Text),
    Column("sync_status", enum("calendar_sync_status"), nullable=False),
    Column("microsoft_event_id", String(255)),
    Column("attempts", Integer, nullable=False),
    Column("last_error", Text),
    Column("last_synced_at", TZ),
    Column("updated_at", TZ, nullable=False),
)

credit_ledger = Table(
    "credit_ledger",
    metadata,
    Column("id", Uuid, primary_key=True, server_default=GEN_UUID),
    Column("enrollment_id", Uuid, nullable=False),
    Column("session_id", Uuid),
    Column("student_id", Uuid, nullable=False),
    Column("teacher_id", Uuid, nullable=False),
    Column("action", enum("credit_action"), nullable=False),
    Column("amount", Integer, nullable=False),
    Column("actor", enum("credit_actor"), nullable=False),
    Column("idempotency_key", String(255)),
    Column("created_at", TZ, nullable=False),
)

oauth_connections = Table(
    "oauth_connections",
    metadata,
    Column("id", Uuid, primary_key=True, server_default=GEN_UUID),
    Column("teacher_id", Uuid, nullable=False),
    Column("provider", enum("oauth_provider"), nullable=False),
    Column("provider_account_id", String(255), nullable=False),
    Column("access_token", Text),
    Column("refresh_token", Text),
    Column("token_expires_at", TZ),
    Column("scopes", JSONB),
    Column("revoked_at", TZ),
    Column("created_at", TZ, nullable=False),
    Column("updated_at", TZ, nullable=False),
)

integration_settings = Table(
    "integration_settings",
    metadata,
    Column("id", Uuid, primary_key=True, server_default=GEN_UUID),
    Column("teacher_id", Uuid, nullable=False),
    Column("integration_type", enum("integration_type"), nullable=False),
    Column("enabled", Boolean, nullable=False),
    Column("config", JSONB, nullable=False),
    Column("created_at", TZ, nullable=False),
    Column("updated_at", TZ, nullable=False),
)

tags = Table(
    "tags",
    metadata,
    Column("id", Uuid, primary_key=True, server_default=GEN_UUID),
    Column("teacher_id", Uuid, nullable=False),
    Column("name", String(100), nullable=False),
    Column("deleted_at", TZ),
    Column("created_at", TZ, nullable=False),
)

student_tags = Table(
    "student_tags",
    metadata,
    Column("student_id", Uuid, primary_key=True),
    Column("tag_id", Uuid, primary_key=True),
)

reviews = Table(
    "reviews",
    metadata,
    Column("id", Uuid, primary_key=True, server_default=GEN_UUID),
    Column("teacher_id", Uuid, nullable=False),
    Column("student_id", Uuid),
    Column("reviewer_name", String(255)),
    Column("rating", Integer, nullable=False),
    Column("body", Text),
    Column("source", String(30), nullable=False),
    Column("status", String(20), nullable=False),
    Column("is_featured", Boolean, nullable=False),
    Column("teacher_response", Text),
    Column("created_at", TZ, nullable=False),
)

waitlist_entries = Table(
    "waitlist_entries",
    metadata,
    Column("id", Uuid, primary_key=True, server_default=GEN_UUID),
    Column("teacher_id", Uuid, nullable=False),
    Column("service_id", Uuid, nullable=False),
    Column("student_id", Uuid, nullable=False),
    Column("position", Integer, nullable=False),
    Column("status", enum("waitlist_status"), nullable=False),
    Column("notified_at", TZ),
    Column("offer_expires_at", TZ),
    Column("created_at", TZ, nullable=False),
    Column("updated_at", TZ, nullable=False),
)

contact_log = Table(
    "contact_log",
    metadata,
    Column("id", Uuid, primary_key=True, server_default=GEN_UUID),
    Column("teacher_id", Uuid, nullable=False),
    Column("student_id", Uuid),
    Column("channel", String(20), nullable=False),
    Column("body", Text),
    Column("note", Text),
    Column("created_at", TZ, nullable=False),
)

scheduled_messages = Table(
    "scheduled_messages",
    metadata,
    Column("id", Uuid, primary_key=True, server_default=GEN_UUID),
    Column("teacher_id", Uuid, nullable=False),
    Column("student_id", Uuid, nullable=False),
    Column("channel", String(20), nullable=False),
    Column("body", Text, nullable=False),
    Column("scheduled_for", TZ, nullable=False),
    Column("status", enum("scheduled_message_status"), nullable=False),
    Column("note", Text),
    Column("job_id", String(255)),
    Column("contact_log_id", Uuid),
    Column("created_at", TZ, nullable=False),
    Column("updated_at", TZ, nullable=False),
)

notifications = Table(
    "notifications",
    metadata,
    Column("id", Uuid, primary_key=True, server_default=GEN_UUID),
    Column("teacher_id", Uuid, nullable=False),
    Column("student_id", Uuid),
    Column("recipient_type", String(20), nullable=False),
    Column("type", String(100), nullable=False),
    Column("title", String(255), nullable=False),
    Column("body", Text),
    Column("payload", JSONB),
    Column("read_at", TZ),
    Column("created_at", TZ, nullable=False),
)

audit_logs = Table(
    "audit_logs",
    metadata,
    Column("id", Uuid, primary_key=True, server_default=GEN_UUID),
    Column("teacher_id", Uuid),
    Column("actor_type", enum("audit_actor_type"), nullable=False),
    Column("actor_id", Uuid),
    Column("action", String(100), nullable=False),
    Column("entity_type", String(50), nullable=False),
    Column("entity_id", Uuid),
    Column("metadata", JSONB),
    Column("created_at", TZ, nullable=False),
)

data_erasure_requests = Table(
    "data_erasure_requests",
    metadata,
    Column("id", Uuid, primary_key=True, server_default=GEN_UUID),
    Column("teacher_id", Uuid, nullable=False),
    Column("student_id", Uuid, nullable=False),
    Column("requested_by", enum("erasure_requested_by"), nullable=False),
    Column("status", enum("erasure_request_status"), nullable=False),
    Column("reason", Text),
    Column("rejection_reason", Text),
    Column("requested_at", TZ, nullable=False),
    Column("due_at", TZ, nullable=False),
    Column("processed_at", TZ),
    Column("created_at", TZ, nullable=False),
    Column("updated_at", TZ, nullable=False),
)

student_lifecycle_events = Table(
    "student_lifecycle_events",
    metadata,
    Column("id", Uuid, primary_key=True, server_default=GEN_UUID),
    Column("teacher_id", Uuid, nullable=False),
    Column("student_id", Uuid, nullable=False),
    Column("event_type", enum("lifecycle_event_type"), nullable=False),
    Column("metadata", JSONB),
    Column("occurred_at", TZ, nullable=False),
    Column("created_at", TZ, nullable=False),
)


# --- migration 0080 -------------------------------------------------------------------------------

retention_settings = Table(
    "retention_settings",
    metadata,
    Column("teacher_id", Uuid, primary_key=True),
    Column("enabled", Boolean, nullable=False),
    Column("gap_days", Integer, nullable=False),
    Column("churn_days", Integer, nullable=False),
    Column("streak_weeks", Integer, nullable=False),
    Column("milestones", INT_ARRAY, nullable=False),
    Column("updated_at", TZ, nullable=False),
    info=optional("lifecycle.detect"),
)

review_settings = Table(
    "review_settings",
    metadata,
    Column("teacher_id", Uuid, primary_key=True),
    Column("auto_request", Boolean, nullable=False),
    Column("after_completed_sessions", Integer, nullable=False),
    Column("channel", enum("review_request_channel"), nullable=False),
    Column("expires_after_days", Integer, nullable=False),
    Column("updated_at", TZ, nullable=False),
    info=optional("reviews.request_due"),
)

review_requests = Table(
    "review_requests",
    metadata,
    Column("id", Uuid, primary_key=True, server_default=GEN_UUID),
    Column("teacher_id", Uuid, nullable=False),
    Column("student_id", Uuid, nullable=False),
    Column("session_id", Uuid),
    Column("channel", enum("review_request_channel"), nullable=False),
    Column("token", String(64), nullable=False),
    Column("status", enum("review_request_status"), nullable=False),
    Column("expires_at", TZ, nullable=False),
    Column("completed_at", TZ),
    Column("created_at", TZ, nullable=False),
    Column("updated_at", TZ, nullable=False),
    info=optional("reviews.request_due and reviews.expire"),
)

data_retention_settings = Table(
    "data_retention_settings",
    metadata,
    Column("teacher_id", Uuid, primary_key=True),
    Column("contact_log_days", Integer),
    Column("read_notifications_days", Integer),
    Column("session_notes_days", Integer),
    Column("erase_deleted_students_after_days", Integer),
    Column("updated_at", TZ, nullable=False),
    info=optional("retention.teacher_policies"),
)

job_outbox = Table(
    "job_outbox",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("job", String(100), nullable=False),
    Column("payload", JSONB, nullable=False),
    Column("job_key", String(200)),
    Column("run_at", TZ),
    Column("trace_context", JSONB),
    Column("created_at", TZ, nullable=False),
    info=optional("the outbox relay"),
)
