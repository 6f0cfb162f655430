"""End to end in a real headless browser, on the demo a newcomer starts: open the link it prints,
watch the schedules page fill in and the domain health show its warnings, find the job that failed
on purpose, retry it and see it run. Keeps screenshots of the overview, schedules and domain health
in test-artifacts/ (the README's come from there)."""

import asyncio
import os
import tomllib
from pathlib import Path

import pytest

from tests.cli.demo_process import running_demo

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
# every schedule of schedules/schedules.toml must show a last run
SWEEPS = len(
    tomllib.loads((Path(__file__).resolve().parents[2] / "schedules" / "schedules.toml").read_text())
)

# On a developer's machine without Chromium the test is skipped; in CI (.ci/run installs Chromium)
# a missing browser fails it instead.
pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists() and not os.environ.get("CI"),
    reason="Debian's chromium is not installed (apt-get install -y chromium); .ci/run installs it",
)


async def test_the_demo_in_a_browser_schedules_health_and_a_retry(env):
    from playwright.async_api import async_playwright, expect

    ARTIFACTS.mkdir(exist_ok=True)
    async with running_demo(env) as demo, async_playwright() as pw:
        await demo.until(lambda: demo.link is not None, timeout_s=60)
        base = demo.link.split("/login")[0]
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

            await page.goto(demo.link)
            await expect(page.locator("h1")).to_have_text("Overview")

            await page.goto(base + "/schedules")
            await expect(page.locator("h1")).to_have_text("Schedules")
            rows = page.locator("table.schedules tbody tr")
            await expect(rows).to_have_count(SWEEPS)
            for _ in range(120):  # every sweep runs at once on a fresh fleet, then every minute or so
                if await page.locator("td.empty", has_text="never ran").count() == 0:
                    break
                await asyncio.sleep(0.5)
                await page.reload()
            await expect(page.locator("td.empty", has_text="never ran")).to_have_count(0)
            await page.screenshot(path=str(ARTIFACTS / "demo-schedules.png"), full_page=True)

            await page.goto(base + "/health")
            health = page.locator("table.health")
            await expect(
                health.locator("tr", has_text="GDPR erasure requests due within 3 days")
            ).to_contain_text("1")
            failed_syncs = health.locator("tr", has_text="Calendar syncs failed").locator("td.num")
            assert int(await failed_syncs.inner_text()) >= 1
            await page.screenshot(path=str(ARTIFACTS / "demo-health.png"), full_page=True)

            await page.goto(base + "/")
            succeeded_last_hour = page.locator(".charts figcaption b").first
            running = page.locator(".tile", has_text="in progress").locator("b")
            for _ in range(60):  # counts reach the charts at each heartbeat; a fleet.sleep runs 8 s in 10
                if int(await succeeded_last_hour.inner_text()) > 0 and int(await running.inner_text()) > 0:
                    break
                await asyncio.sleep(0.5)
                await page.reload()
            assert int(await succeeded_last_hour.inner_text()) > 0, (
                "the throughput chart shows the demo's jobs"
            )
            assert int(await running.inner_text()) > 0, "a long job is in progress"
            assert int(await page.locator(".tile", has_text="failed").locator("b").inner_text()) >= 1
            await page.screenshot(path=str(ARTIFACTS / "demo-overview.png"), full_page=True)

            # the demo commits the message its failing job names a moment after the failure
            await demo.until(
                lambda: any(e.get("event") == "demo_message_committed_late" for e in demo.events), 30
            )
            await page.click(".tile:has-text('failed')")
            await expect(page.locator("h1")).to_have_text("Failed jobs")
            row = page.locator("tr", has_text="messages.deliver")
            await expect(row).to_contain_text("does not exist")
            job_page = base + await row.locator("a[href^='/jobs/']").first.get_attribute("href")
            await row.get_by_role("button", name="Retry").click()
            await expect(page.locator("p.flash")).to_contain_text("retried messages.deliver:")
            job_id = (await page.locator("p.flash").inner_text()).split("retried ", 1)[1].split()[0]

            async def succeeded() -> bool:
                await page.goto(job_page)
                return "succeeded" in await page.locator("h1 + p").inner_text()

            for _ in range(60):
                if await succeeded():
                    break
                await asyncio.sleep(0.5)
            assert await succeeded(), "the retried job ran once its message had been committed"
            await page.goto(base + "/failed")
            await expect(page.locator("table.failed")).not_to_contain_text(job_id)
        finally:
            await browser.close()
    assert demo.process.returncode == 0
