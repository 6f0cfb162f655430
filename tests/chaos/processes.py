"""Real worker processes for the chaos tests: start, wait for a job's result, stop, read the logs."""

import asyncio
import json
import os
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, BinaryIO

from redis.asyncio import Redis

from jobfleet import keys, wire


async def start_worker(
    env: dict[str, str], log: Path, *queues: str, scheduler: bool = False
) -> asyncio.subprocess.Process:
    """``python -m cli worker`` for these queues (all when none), its JSON log lines to ``log``."""
    command = [sys.executable, "-m", "cli", "worker"]
    for queue in queues:
        command += ["--queue", queue]
    if not scheduler:
        command.append("--no-scheduler")
    with _append(log) as out:
        return await asyncio.create_subprocess_exec(
            *command, env=env, cwd=os.getcwd(), stdout=out, stderr=asyncio.subprocess.STDOUT
        )


def _append(log: Path) -> BinaryIO:
    return open(log, "ab")


async def stop_worker(worker: asyncio.subprocess.Process, timeout_s: float = 60) -> int:
    """SIGTERM and the worker's exit status; a worker that does not stop in time is killed (so no
    test leaves one behind) and the test fails."""
    if worker.returncode is None:
        worker.send_signal(signal.SIGTERM)
    try:
        return await asyncio.wait_for(worker.wait(), timeout_s)
    except TimeoutError:
        worker.kill()
        await worker.wait()
        raise AssertionError(f"the worker did not stop within {timeout_s} s of SIGTERM") from None


async def wait_for_result(redis: Redis, job_id: str, timeout_s: float = 60) -> dict[str, Any]:
    """The job's stored result (arq's layout, JSON) once it has one."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        raw = await redis.get(keys.result_key_prefix + job_id)
        if raw:
            return wire.decode(raw)
        await asyncio.sleep(0.05)
    raise AssertionError(f"job {job_id} has no result after {timeout_s} s")


async def wait_until(
    condition: Callable[[], Awaitable], timeout_s: float, what: str, interval_s: float = 0.02
):
    """The first truthy value of ``condition`` (async), polled until ``timeout_s``; else fail with
    ``what``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if value := await condition():
            return value
        await asyncio.sleep(interval_s)
    raise AssertionError(f"{what} within {timeout_s} s")


def log_events(log: Path) -> list[dict[str, Any]]:
    """The worker's structured log lines (other output, such as a traceback, is skipped)."""
    events = []
    for line in log.read_text(errors="replace").splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if isinstance(event, dict) and "event" in event:
            events.append(event)
    return events
