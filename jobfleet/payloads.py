"""Job payloads: frozen models holding ids and primitives only, never personal data."""

from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

MAX_TEACHERS_PER_RUN = 1000


class Payload(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Sweep(Payload):
    """A periodic sweep takes no arguments: it works on whatever is due."""


class SessionRef(Payload):
    session_id: UUID


class ServiceRef(Payload):
    service_id: UUID


class MessageRef(Payload):
    message_id: UUID


class ErasureRequestRef(Payload):
    request_id: UUID


class LearnerErasureRef(Payload):
    # account_center.learner_erasure_requests.id (an integer, unlike PinTeach's uuids)
    request_id: int = Field(ge=1)


class RetentionRun(Payload):
    # None runs every retention policy in schedules/retention.toml.
    policy: str | None = Field(default=None, max_length=100)


class LifecycleRun(Payload):
    # None: every teacher (the daily run); an id: that teacher's students now (on demand)
    teacher_id: UUID | None = None


class ReviewRun(Payload):
    # None: every teacher with automatic review requests (the sweep); ids: those teachers only
    # (what auto-completion asks for: the teachers whose students it just completed)
    teacher_ids: tuple[UUID, ...] | None = Field(default=None, min_length=1, max_length=MAX_TEACHERS_PER_RUN)


class Sleep(Payload):
    ms: int = Field(ge=0, le=60_000)
