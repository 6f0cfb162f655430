"""``jobfleet demo`` as a subprocess for the tests, on databases of its own (a unique name and a
claimed Redis database), read line by line; stopped with Ctrl-C (SIGINT) as a user would."""

import asyncio
import contextlib
import json
import re
import signal
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from tests import services

LINK = re.compile(r"open (http://127\.0\.0\.1:\d+/login/link\?token=\S+) to sign in")


@dataclass
class Demo:
    process: asyncio.subprocess.Process
    link: str | None = None
    lines: list[str] = field(default_factory=list)
    events: list[dict] = field(default_factory=list)

    async def read_line(self) -> str:
        raw = await self.process.stdout.readline()
        if not raw:
            raise AssertionError("the demo stopped early:\n" + "\n".join(self.lines[-30:]))
        line = raw.decode(errors="replace").rstrip("\n")
        self.lines.append(line)
        if line.startswith("{"):
            with contextlib.suppress(ValueError):
                self.events.append(json.loads(line))
        elif match := LINK.search(line):
            self.link = match.group(1)
        return line

    async def until(self, predicate, timeout_s: float) -> None:
        async with asyncio.timeout(timeout_s):
            while not predicate():
                if self.process.returncode is not None:
                    raise AssertionError("the demo stopped early:\n" + "\n".join(self.lines[-30:]))
                await asyncio.sleep(0.1)

    async def read_all(self) -> None:
        """Read its output as it comes (a full pipe would block the demo) until it exits."""
        with contextlib.suppress(AssertionError):
            while True:
                await self.read_line()


@contextlib.asynccontextmanager
async def running_demo(env: dict[str, str], *args: str) -> AsyncIterator[Demo]:
    _, redis_index = await services.claim_redis_db()
    name = f"jf_demo_{services.RUN_ID}"
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "cli", "demo", "--name", name, "--redis-db", str(redis_index), *args,
        env={**env, "JOBFLEET_LOG_FORMAT": "json"},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    demo = Demo(process)
    reader = asyncio.create_task(demo.read_all())
    try:
        yield demo
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGINT)
        try:
            await asyncio.wait_for(process.wait(), 45)
        except TimeoutError:
            process.kill()
            await process.wait()
            raise
        finally:
            await reader
            await services.release_redis_db(redis_index)
            await services.drop_pg_database(services.PG_ADMIN_DSN.rsplit("/", 1)[0] + "/" + name)
            await services.drop_mysql_databases(f"{name}_")
