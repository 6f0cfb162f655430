"""The outbox relay: committed ``job_outbox`` rows become jobs, each exactly once."""

from workers.outbox.relay import OutboxRelay

__all__ = ["OutboxRelay"]
