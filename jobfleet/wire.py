"""The wire format: JSON only, in arq's job layout.

A job is stored under ``arq:job:{id}`` as ``{"t": try, "f": name, "a": [], "k": payload, "et": ms}``
and its id is added to the queue's sorted set with the time to run (ms) as score. Results are JSON
too. Nothing is ever pickled: a pickle in Redis is code execution for whoever can write to Redis.

A document may carry ``"tc": {"traceparent": ..., "tracestate": ...}``, the W3C trace context of
the request that enqueued it; the worker's run of the job joins that trace, and the job's result
keeps it so that the dashboard can name the trace after the job finished.
"""

import json
import re
import time
from contextvars import ContextVar
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


def job_document(
    name: str, payload: dict[str, Any], enqueue_time_ms: int, trace_context: dict[str, str] | None = None
) -> bytes:
    document: dict[str, Any] = {"t": None, "f": name, "a": [], "k": payload, "et": enqueue_time_ms}
    if trace_context:
        document["tc"] = trace_context
    return encode(document)


# arq decodes a job's document in the task that then runs it (and stores its result): the trace
# context read here is the one of the job this task runs.
JOB_TRACE_CONTEXT: ContextVar[dict[str, str] | None] = ContextVar("jobfleet_job_trace", default=None)
_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}$")


def trace_context(value: Any) -> dict[str, str] | None:
    """A document's ``tc`` if it is a usable W3C context; anything else is ignored, never fatal:
    tracing is an aid, and a job that moves credits must not fail for a bad header."""
    if not isinstance(value, dict) or not isinstance(value.get("traceparent"), str):
        return None
    if not _TRACEPARENT.match(value["traceparent"]):
        return None
    return {k: v for k, v in value.items() if k in ("traceparent", "tracestate") and isinstance(v, str)}


def trace_id(context: Any) -> str | None:
    """The trace id in a ``tc`` object, or None."""
    valid = trace_context(context)
    return valid["traceparent"].split("-")[1] if valid else None


def encode_result(value: Any) -> bytes:
    """The worker's serializer (arq uses it for results): a result keeps its job's trace context."""
    if isinstance(value, dict) and "s" in value and (context := JOB_TRACE_CONTEXT.get()):
        value = {**value, "tc": context}
    return encode(value)


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
    JOB_TRACE_CONTEXT.set(trace_context(document.get("tc")))
    return document


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
