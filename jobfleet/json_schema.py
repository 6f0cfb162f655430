"""The catalog and the wire document as JSON Schema, for producers in other languages.

``jobfleet jobs --json-schema`` prints it; the TypeScript producer generates its payload types and
validators from it (producers/typescript/scripts/generate.ts), so a payload model or a queue is
written once, here in Python. The schema validates a job document (``arq:job:{id}``) of any job in
the catalog; ``x-jobfleet`` carries what a producer needs beyond validation: each job's queue and
payload model, the Redis key prefixes, the limits the Python producer enforces and its Lua scripts.
"""

import json
from typing import Any

from arq.constants import expires_extra_ms
from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import models_json_schema

from jobfleet import keys, wire
from jobfleet.catalog import JOBS
from jobfleet.producer import _CANCEL, _ENQUEUE, MAX_KEY_CHARS


class TraceContext(BaseModel):
    """W3C trace context of the request that enqueued the job (optional; the outbox's trace_context
    column holds the same object). Producers drop one that does not fit rather than fail the job."""

    model_config = ConfigDict(extra="forbid")

    # the pattern the workers read "tc" with (W3C: version-traceid-parentid-flags, lower-case hex)
    traceparent: str = Field(pattern=wire._TRACEPARENT.pattern)
    tracestate: str | None = None


class JobDocument(BaseModel):
    """A job as stored under arq:job:{job_id}: arq's layout, in JSON."""

    t: int | None = Field(description="try number: null when enqueued, set by the worker")
    f: str = Field(description="job name, from the catalog")
    a: list[Any] = Field(max_length=0, description="positional arguments: always empty")
    k: dict[str, Any] = Field(description="the payload, as the job's model dumps it")
    et: int = Field(description="enqueue time, ms since the epoch")
    tc: TraceContext | None = Field(default=None, description="optional W3C trace context")


def catalog_schema() -> dict[str, Any]:
    payloads = list(dict.fromkeys(spec.payload for spec in JOBS))
    models = [JobDocument, *payloads]
    refs, defs = models_json_schema([(m, "validation") for m in models], ref_template="#/$defs/{model}")
    ref_of = {model: ref["$ref"] for (model, _), ref in refs.items()}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "jobfleet job document",
        "description": "A job of the jobfleet catalog as stored under arq:job:{job_id}; generated "
        "from jobfleet/catalog.py and jobfleet/payloads.py by `jobfleet jobs --json-schema`.",
        "allOf": [{"$ref": ref_of[JobDocument]}],
        "oneOf": [
            {
                "properties": {"f": {"const": spec.name}, "k": {"$ref": ref_of[spec.payload]}},
                "required": ["f", "k"],
            }
            for spec in JOBS
        ],
        "$defs": defs["$defs"],
        "x-jobfleet": {
            "jobs": {
                spec.name: {
                    "queue": spec.queue,
                    "kind": spec.kind,
                    "payload": ref_of[spec.payload],
                    "description": spec.description,
                }
                for spec in JOBS
            },
            "queues": list(keys.ALL_QUEUES),
            "key_prefixes": {
                "job": keys.job_key_prefix,
                "result": keys.result_key_prefix,
                "in_progress": keys.in_progress_key_prefix,
            },
            "max_key_chars": MAX_KEY_CHARS,
            "max_job_bytes": wire.MAX_JOB_BYTES,
            "expires_extra_ms": expires_extra_ms,
            # the producer's Lua scripts, so that another language runs exactly these
            "scripts": {"enqueue": _ENQUEUE, "cancel": _CANCEL},
        },
    }


def render() -> str:
    """The schema as `jobfleet jobs --json-schema` prints it, and as producers/typescript commits it."""
    return json.dumps(catalog_schema(), indent=2, ensure_ascii=False) + "\n"
