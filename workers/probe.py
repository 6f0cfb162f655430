"""Liveness and readiness of one worker process, for container probes (``jobfleet probe``).

The heartbeat writes a small local file at every beat: when it last tried, and when Redis last took
its health record. A probe reads that file only, so it answers in milliseconds and never adds load
on Redis. Alive: the heartbeat loop still runs (a stalled event loop stops it). Ready: the health
record in Redis is current, so the process can take jobs and others see it working.
"""

import os
import time
from pathlib import Path

import orjson

# Same rule as the health record in Redis: three missed beats and the worker counts as gone.
MISSED_BEATS = 3


def record(path: Path, *, worker_id: str, redis_ok: bool) -> None:
    now = time.time()
    previous = _read(path)
    document = {
        "worker_id": worker_id,
        "attempt_at": now,
        "beat_at": now if redis_ok else (previous or {}).get("beat_at"),
    }
    # write-then-rename, so a probe never reads half a file
    scratch = path.with_name(f".{path.name}.{os.getpid()}")
    scratch.write_bytes(orjson.dumps(document))
    scratch.replace(path)


def _read(path: Path) -> dict | None:
    try:
        return orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return None


def check(path: Path, mode: str, interval_s: float, now: float | None = None) -> tuple[bool, str]:
    """(healthy, one line saying why) for ``mode`` ``live`` or ``ready``."""
    document = _read(path)
    if document is None:
        return False, f"no heartbeat file at {path} (worker not started yet?)"
    if not isinstance(document, dict) or not isinstance(document.get("worker_id"), str):
        return False, f"the heartbeat file at {path} is not one the worker wrote"
    now = time.time() if now is None else now
    limit_s = MISSED_BEATS * interval_s
    live = mode == "live"
    field, what = ("attempt_at", "heartbeat loop") if live else ("beat_at", "health record in Redis")
    at = document.get(field)
    if at is None:
        return False, f"{what} never written by worker {document['worker_id']}"
    age_s = now - at
    if age_s > limit_s:
        return False, f"{what} of worker {document['worker_id']} is {age_s:.1f} s old (limit {limit_s:g} s)"
    return True, f"{what} of worker {document['worker_id']} is {age_s:.1f} s old"
