"""Pickatale's tables (one MySQL 8 server, several databases), mirroring db/schema/pickatale.sql.

Each table names its database as ``schema``; the engine maps those names to prefixed ones where a
prefix is configured (tests, the demo), so queries always read ``telemetry.events`` etc.
"""

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Enum,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
    Text,
)

metadata = MetaData()
DATABASES = ("account_center", "teacher_portal", "reader_app", "telemetry", "learner_bot")


users = Table(
    "users",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("uuid", String(36), nullable=False),
    Column("name", String(255), nullable=False),
    Column("email", String(255), nullable=False),
    Column("password_hash", String(255), nullable=False),
    Column("role", Enum("teacher", "parent", "school_admin", "platform_admin", name="role"), nullable=False),
    Column(
        "state", Enum("pending_verification", "active", "suspended", "archived", name="state"), nullable=False
    ),
    Column("email_verified", Boolean, nullable=False),
    Column("school_id", Integer),
    Column("failed_attempts", Integer, nullable=False),
    Column("locked_until", DateTime),
    Column("created_at", DateTime, nullable=False),
    Column("updated_at", DateTime, nullable=False),
    schema="account_center",
)

schools = Table(
    "schools",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(255), nullable=False),
    Column("country", String(100), nullable=False),
    Column("admin_user_id", Integer),
    Column("state", Enum("pending", "active", "suspended", "archived", name="state"), nullable=False),
    Column("auto_approve_parent_claims", Boolean, nullable=False),
    Column("created_at", DateTime, nullable=False),
    Column("updated_at", DateTime, nullable=False),
    schema="account_center",
)

account_center_sessions = Table(
    "sessions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("user_id", Integer),
    Column("student_id", Integer),
    Column(
        "role",
        Enum("teacher", "parent", "school_admin", "platform_admin", "child", name="role"),
        nullable=False,
    ),
    Column("token_hash", String(64), nullable=False),
    Column("expires_at", DateTime, nullable=False),
    Column("invalidated_at", DateTime),
    Column("ip", String(45)),
    Column("user_agent", String(500)),
    Column("created_at", DateTime, nullable=False),
    schema="account_center",
)

teacher_licenses = Table(
    "teacher_licenses",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("teacher_id", String(36), nullable=False),
    Column(
        "tier", Enum("free", "trial", "teacher_paid", "enterprise", "gifted", name="tier"), nullable=False
    ),
    Column("billing_cycle", Enum("monthly", "yearly", name="billing_cycle")),
    Column(
        "state", Enum("trialing", "active", "past_due", "expired", "cancelled", name="state"), nullable=False
    ),
    Column("stripe_sub_id", String(255)),
    Column("stripe_coupon_id", String(100)),
    Column("period_start", DateTime),
    Column("period_end", DateTime),
    Column("grace_ends_at", DateTime),
    Column("created_at", DateTime, nullable=False),
    schema="account_center",
)

teacher_portal_students = Table(
    "students",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("uuid", String(36), nullable=False),
    Column("name", String(255), nullable=False),
    Column("username", String(50), nullable=False),
    Column("pin_hash", String(255), nullable=False),
    Column("school_id", Integer),
    Column("year_level", Integer),
    Column("language", String(10), nullable=False),
    Column("state", Enum("created", "active", "inactive", "archived", name="state"), nullable=False),
    Column("placement_test_completed", Boolean, nullable=False),
    Column("failed_attempts", Integer, nullable=False),
    Column("locked", Boolean, nullable=False),
    Column("parent_count", Integer, nullable=False),
    Column("entitlement_tier", Enum("free", "full", name="entitlement_tier"), nullable=False),
    Column("miles", Numeric(10, 2), nullable=False),
    Column("tokens", Integer, nullable=False),
    Column("created_at", DateTime, nullable=False),
    Column("updated_at", DateTime, nullable=False),
    schema="teacher_portal",
)

classes = Table(
    "classes",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("class_name", String(255), nullable=False),
    Column("year_level", Integer, nullable=False),
    Column("teacher_id", Integer, nullable=False),
    Column("school_id", Integer),
    Column("curriculum_territory", String(100)),
    Column("state", Enum("active", "archived", name="state"), nullable=False),
    Column("archived_at", DateTime),
    Column("created_at", DateTime, nullable=False),
    Column("updated_at", DateTime, nullable=False),
    schema="teacher_portal",
)

class_memberships = Table(
    "class_memberships",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("student_id", Integer, nullable=False),
    Column("class_id", Integer, nullable=False),
    Column("enrolled_at", DateTime, nullable=False),
    Column("archived_at", DateTime),
    schema="teacher_portal",
)

memberships = Table(
    "memberships",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("school_id", Integer, nullable=False),
    Column("user_id", Integer, nullable=False),
    Column("role", Enum("teacher", "school_admin", name="role"), nullable=False),
    Column("state", Enum("active", "inactive", name="state"), nullable=False),
    Column("joined_at", DateTime, nullable=False),
    schema="teacher_portal",
)

reading_sessions = Table(
    "reading_sessions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("session_id", String(36), nullable=False),
    Column("learner_id", String(36), nullable=False),
    Column("book_id", String(100), nullable=False),
    Column("state", Enum("open", "completed", "abandoned", name="state"), nullable=False),
    Column("pages_read", Integer, nullable=False),
    Column("total_pages", Integer),
    Column("words_read", Integer, nullable=False),
    Column("started_at", DateTime, nullable=False),
    Column("ended_at", DateTime),
    Column("last_event_at", DateTime),
    Column("fk_level", Numeric(4, 2)),
    Column("created_at", DateTime, nullable=False),
    schema="reader_app",
)

events = Table(
    "events",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("event_id", String(36), nullable=False),
    Column("learner_id", String(36), nullable=False),
    Column("session_id", String(36), nullable=False),
    Column(
        "event_type",
        Enum(
            "book_opened",
            "page_turned",
            "word_tapped",
            "session_ended",
            "quiz_completed",
            "placement_completed",
            "speedread_started",
            "speedread_ended",
            "book_abandoned",
            name="event_type",
        ),
        nullable=False,
    ),
    Column("book_id", String(100)),
    Column("page_number", Integer),
    Column("word", String(255)),
    Column("time_on_page_ms", Integer),
    Column("payload", JSON),
    Column("client_ts", BigInteger, nullable=False),
    Column("created_at", DateTime, nullable=False),
    schema="telemetry",
)

learner_memories = Table(
    "learner_memories",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("learner_id", String(36), nullable=False),
    Column("memory_type", String(100), nullable=False),
    Column("value", JSON, nullable=False),
    Column("confidence", Numeric(3, 2), nullable=False),
    Column("created_at", DateTime, nullable=False),
    Column("updated_at", DateTime, nullable=False),
    schema="learner_bot",
)

vocabulary_gaps = Table(
    "vocabulary_gaps",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("learner_id", String(36), nullable=False),
    Column("word", String(255), nullable=False),
    Column("tap_count", Integer, nullable=False),
    Column("last_tapped", DateTime, nullable=False),
    schema="learner_bot",
)


# Added by Account Center's migration 2026_11_learner_erasure: servers may not have it yet.
learner_erasure_requests = Table(
    "learner_erasure_requests",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("learner_id", String(36), nullable=False),
    Column("requested_by", Integer, nullable=False),
    Column(
        "status",
        Enum("pending", "processing", "completed", "rejected", name="learner_erasure_status"),
        nullable=False,
    ),
    Column("reason", Text),
    Column("rejection_reason", Text),
    Column("requested_at", DateTime, nullable=False),
    Column("due_at", DateTime, nullable=False),
    Column("processed_at", DateTime),
    Column("updated_at", DateTime, nullable=False),
    schema="account_center",
    info={"migration": "2026_11_learner_erasure", "needed_by": "learners.erase_due and learners.erase"},
)
