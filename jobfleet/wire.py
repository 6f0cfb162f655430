"""The wire format: JSON only, in arq's job layout.

A job is stored under ``arq:job:{id}`` as ``{"t": try, "f": name, "a": [], "k": payload, "et": ms}``
and its id is added to the queue's sorted set with the time to run (ms) as score. An optional
``"tc": {"traceparent": ..., "tracestate": ...}`` carries the producer's W3C trace context (the
outbox relay copies it from ``job_outbox.trace_context``); workers accept documents with or without
it. Results are JSON too. Nothing is ever pickled: a pickle in Redis is code execution for whoever
can write to Redis.
"""

import json
import time
from typing import Any
from uuid import UUID

try:  # orjson is faster; the producer alone works without it
    import orjson
except ImportError:  # pragma: no cover - exercised by the producer's clean-venv test
    orjson = None  # type: ignore[assignment]

# Beyond this a payload is refused: a job carries ids, not documents.
MAX_JOB_BYTES = 64 * 1024


def _default(value: Any) -> Any:
    if isinstance(value, BaseException):
        return {"error": type(value).__name__, "message": str(value)}
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    if hasattr(value, "isoformat"):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


if orjson is not None:

    def encode(value: Any) -> bytes:
        return orjson.dumps(value, default=_default)

    def decode(data: bytes | str) -> Any:
        return orjson.loads(data)

else:  # pragma: no cover

    def encode(value: Any) -> bytes:
        return json.dumps(value, default=_default, separators=(",", ":")).encode()

    def decode(data: bytes | str) -> Any:
        return json.loads(data)


def now_ms() -> int:
    return int(time.time() * 1000)


TRACE_FIELDS = ("traceparent", "tracestate")


def trace_context(value: Any) -> dict[str, str] | None:
    """The W3C fields of a trace context, or None when there are none (anything else is dropped:
    a broken trace context must not cost the job)."""
    if not isinstance(value, dict):
        return None
    tc = {k: value[k] for k in TRACE_FIELDS if isinstance(value.get(k), str) and len(value[k]) <= 512}
    return tc if "traceparent" in tc else None


def job_document(
    name: str, payload: dict[str, Any], enqueue_time_ms: int, tc: dict[str, str] | None = None
) -> bytes:
    document: dict[str, Any] = {"t": None, "f": name, "a": [], "k": payload, "et": enqueue_time_ms}
    if tc:
        document["tc"] = tc
    return encode(document)


class MalformedJob(ValueError):
    pass


def decode_job(data: bytes | str) -> dict[str, Any]:
    """Decode a job document and check its shape, so that a malformed one fails as undecodable (and
    lands in the failure record) instead of breaking the worker that reads it."""
    document = decode(data)
    if not isinstance(document, dict):
        raise MalformedJob("a job document must be a JSON object")
    if "s" in document:  # a result, read back through the same deserializer
        return document
    checks = (
        ("f", isinstance(document.get("f"), str), "a string"),
        ("a", isinstance(document.get("a"), list), "a list"),
        ("k", isinstance(document.get("k"), dict), "an object"),
        ("t", document.get("t") is None or _is_int(document.get("t")), "null or an integer"),
        ("et", _is_int(document.get("et")), "an integer"),
    )
    for field, ok, expected in checks:
        if not ok:
            raise MalformedJob(f"job document field {field!r} must be {expected}")
    return document


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
