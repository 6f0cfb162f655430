"""End to end in a real headless browser: sign in, open the overview, find a failed job, retry it
and see a real worker run it. Keeps a screenshot of the overview in test-artifacts/."""

import asyncio
import contextlib
import os
import socket
import sys
from asyncio.subprocess import DEVNULL, PIPE
from pathlib import Path

import httpx
import pytest

from jobfleet import keys, wire
from jobfleet.producer import Producer
from tests.ops.support import eventually, live_worker
from workers.failures import FailureRecord

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
TOKEN = "browser-test-token-42"

# On a developer's machine without Chromium the test is skipped; in CI (.ci/run installs Chromium)
# a missing browser fails it instead.
pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists() and not os.environ.get("CI"),
    reason="Debian's chromium is not installed (apt-get install -y chromium); .ci/run installs it",
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.asynccontextmanager
async def dashboard_server(env: dict[str, str]):
    """``jobfleet dashboard`` as ops run it: a uvicorn server in its own process."""
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "cli",
        "dashboard",
        "--port",
        str(port),
        env={**env, "JOBFLEET_DASHBOARD_TOKEN": TOKEN},
        stdout=DEVNULL,
        stderr=PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient() as client:

            async def up():
                if process.returncode is not None:
                    raise AssertionError((await process.stderr.read()).decode())
                with contextlib.suppress(httpx.TransportError):
                    return (await client.get(base + "/login")).status_code == 200
                return False

            await eventually(up, timeout_s=30, interval_s=0.1)
        yield base
    finally:
        process.terminate()
        await process.wait()


async def seed(redis) -> None:
    producer = Producer(redis)
    for ms in range(1, 25):
        await producer.enqueue("fleet.sleep", {"ms": ms})
    now = wire.now_ms()
    for i in range(3):  # as a non-Python producer might: a payload that does not fit
        await redis.set(
            keys.job_key_prefix + f"bad-{i}", wire.job_document("fleet.sleep", {"ms": "soon"}, now)
        )
        await redis.zadd(keys.QUEUE_DEFAULT, {f"bad-{i}": now})
    for i in range(5):
        await producer.enqueue("fleet.noop", defer_by=600 + i)
    await FailureRecord(redis).record(
        job_id="fleet.sleep:report-7",
        job="fleet.sleep",
        queue=keys.QUEUE_DEFAULT,
        payload={"ms": 20},
        tries=5,
        error="TimeoutError: the job ran past its timeout",
        traceback="Traceback (most recent call last):\n  ...\nTimeoutError",
    )


async def test_find_a_failed_job_retry_it_and_see_it_run(settings, deps, redis, env, pg, mysql):
    from playwright.async_api import async_playwright, expect

    await seed(redis)
    ARTIFACTS.mkdir(exist_ok=True)
    async with (
        dashboard_server(env) as base,
        live_worker(settings, deps, redis),
        async_playwright() as pw,
    ):
        browser = await pw.chromium.launch(
            executable_path=str(CHROMIUM),
            args=[
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        try:
            page = await browser.new_page(viewport={"width": 1360, "height": 1000})
            page.on("dialog", lambda dialog: asyncio.ensure_future(dialog.accept()))

            await page.goto(base + "/")
            await expect(page).to_have_url(base + "/login?next=/")
            await page.fill("input[name=token]", TOKEN)
            await page.click("button[type=submit]")
            await expect(page.locator("h1")).to_have_text("Overview")

            # the worker drains the queue while we look; the bad payloads join the failure record
            async def drained():
                return (
                    await redis.zcard(keys.FAILED_INDEX) == 4
                    and await redis.hget(keys.STATS_PREFIX + "fleet.sleep", "succeeded") == b"24"
                )

            await eventually(drained, timeout_s=20)
            await page.reload()
            await expect(page.locator(".tile", has_text="failed")).to_contain_text("4")
            await page.screenshot(path=str(ARTIFACTS / "dashboard-overview.png"), full_page=True)

            await page.click(".tile:has-text('failed')")
            await expect(page.locator("h1")).to_have_text("Failed jobs")
            row = page.locator("tr", has_text="fleet.sleep:report-7")
            await expect(row).to_contain_text("TimeoutError")
            await row.get_by_role("button", name="Retry").click()

            await expect(page).to_have_url(base + "/jobs/fleet.sleep%3Areport-7")
            await expect(page.locator("p.flash")).to_contain_text("retried fleet.sleep:report-7")

            async def succeeded():
                await page.reload()
                return "succeeded" in await page.locator("h1 + p").inner_text()

            await eventually(succeeded, timeout_s=20, interval_s=0.3)
            await expect(page.locator("pre.result")).to_contain_text('"slept_ms": 20')
            assert await FailureRecord(redis).get("fleet.sleep:report-7") is None

            await page.goto(base + "/failed")
            await expect(page.locator("table.failed")).not_to_contain_text("report-7")
        finally:
            await browser.close()
