"""The worker processes compared: a jobfleet worker and bare arq, each started as its own process."""

import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from arq.jobs import serialize_job

from jobfleet import keys, wire
from ops.bench import arq_worker

ROOT = Path(__file__).resolve().parents[2]
CLOCK_TICKS_PER_S = os.sysconf("SC_CLK_TCK")
SLEEP_MS = 10


@dataclass(frozen=True)
class WorkerUnderTest:
    name: str
    kind: str  # "jobfleet" or "arq"
    loop: str  # "asyncio" or "uvloop"
    max_jobs: int
    poll_delay_s: float
    json: bool = True

    @property
    def queue(self) -> str:
        return keys.QUEUE_DEFAULT if self.kind == "jobfleet" else arq_worker.QUEUE

    def serializer(self) -> Any:
        if self.kind == "jobfleet":
            return wire.encode
        return orjson.dumps if self.json else None

    def deserializer(self) -> Any:
        if self.kind == "jobfleet":
            return wire.decode
        return orjson.loads if self.json else None

    def job(self, work: str) -> tuple[str, dict[str, Any]]:
        """Function name and keyword arguments of a no-op or a 10 ms sleep."""
        if self.kind == "jobfleet":
            return ("fleet.noop", {}) if work == "noop" else ("fleet.sleep", {"ms": SLEEP_MS})
        return ("noop", {}) if work == "noop" else ("sleep", {"ms": SLEEP_MS})

    def document(self, work: str, now_ms: int) -> bytes:
        function, kwargs = self.job(work)
        return serialize_job(function, (), kwargs, None, now_ms, serializer=self.serializer())

    def start(self, redis_url: str, extra_env: dict[str, str] | None = None) -> "WorkerProcess":
        if self.kind == "jobfleet":
            argv = [
                sys.executable,
                "-m",
                "ops.bench.launch",
                self.loop,
                "worker",
                "--queue",
                "default",
                "--no-scheduler",
                "--concurrency",
                str(self.max_jobs),
            ]
        else:
            argv = [
                sys.executable,
                "-m",
                "ops.bench.arq_worker",
                "--redis",
                redis_url,
                "--loop",
                self.loop,
                "--max-jobs",
                str(self.max_jobs),
                "--poll-delay",
                str(self.poll_delay_s),
            ]
            argv += ["--json"] if self.json else []
        env = {
            **os.environ,
            "JOBFLEET_REDIS_URL": redis_url,
            "JOBFLEET_WORKER_POLL_DELAY_S": str(self.poll_delay_s),
            # JSON log lines on, one per job, as in production
            "JOBFLEET_LOG_LEVEL": "INFO",
            "JOBFLEET_LOG_FORMAT": "json",
            "PYTHONPATH": str(ROOT),
        }
        return WorkerProcess(argv, {**env, **(extra_env or {})})


class WorkerProcess:
    """A worker subprocess whose log lines are written (to a file, as a collector would take them)."""

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        self.log = tempfile.NamedTemporaryFile(prefix="jf_bench_worker_", suffix=".log")
        self.spawned_at = time.time()  # wall clock, as the timestamps the workers store
        self.process = subprocess.Popen(argv, env=env, cwd=ROOT, stdout=self.log, stderr=subprocess.STDOUT)

    @property
    def pid(self) -> int:
        return self.process.pid

    def rss_mib(self) -> float:
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        raise RuntimeError(f"no VmRSS for process {self.pid}")

    def cpu_s(self) -> float:
        """User plus system CPU time the process has used so far (from /proc/PID/stat)."""
        with open(f"/proc/{self.pid}/stat") as f:
            # the command name (field 2) may hold spaces: count fields after its closing parenthesis
            fields = f.read().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS_PER_S

    def check_alive(self) -> None:
        if self.process.poll() is not None:
            self.log.seek(0)
            tail = self.log.read()[-2000:].decode(errors="replace")
            raise RuntimeError(f"worker exited with status {self.process.returncode}:\n{tail}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()


# bare arq tuned as in issue 8; they are also jobfleet's own defaults (JOBFLEET_WORKER_MAX_JOBS,
# JOBFLEET_WORKER_POLL_DELAY_S), so the jobfleet rows are the fleet as shipped
TUNED_MAX_JOBS, TUNED_POLL_DELAY_S = 100, 0.01
JOBFLEET_ASYNCIO = WorkerUnderTest(
    "jobfleet, asyncio loop", "jobfleet", "asyncio", TUNED_MAX_JOBS, TUNED_POLL_DELAY_S
)
JOBFLEET_UVLOOP = WorkerUnderTest(
    "jobfleet, uvloop", "jobfleet", "uvloop", TUNED_MAX_JOBS, TUNED_POLL_DELAY_S
)
ARQ_ASYNCIO = WorkerUnderTest("arq tuned, asyncio loop", "arq", "asyncio", TUNED_MAX_JOBS, TUNED_POLL_DELAY_S)
ARQ_UVLOOP = WorkerUnderTest("arq tuned, uvloop", "arq", "uvloop", TUNED_MAX_JOBS, TUNED_POLL_DELAY_S)
ARQ_DEFAULTS = WorkerUnderTest(
    "arq defaults (10 jobs, poll 0.5 s, pickle)", "arq", "asyncio", 10, 0.5, json=False
)
