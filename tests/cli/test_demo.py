"""``jobfleet demo`` as a newcomer runs it: within a minute the sweeps act on the demo data."""

import asyncio
import json
import signal
import sys


async def test_demo_sweeps_act_within_a_minute(env):
    demo = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "cli",
        "demo",
        env={**env, "JOBFLEET_LOG_FORMAT": "json"},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    results: dict[str, dict] = {}
    wanted = {
        "sessions.auto_complete",
        "waitlist.expire_offers",
        "credits.expire",
        "messages.deliver_due",
        "sessions.expire_holds",
        "gdpr.erase_due",
        "telemetry.purge",
        "licenses.reconcile",
    }
    try:
        async with asyncio.timeout(60):
            while not wanted <= set(results):
                line = await demo.stdout.readline()
                assert line, "the demo stopped early"
                if line.startswith(b"{"):
                    event = json.loads(line)
                    if event.get("event") == "job_succeeded":
                        results.setdefault(event["job"], event["result"])
    finally:
        demo.send_signal(signal.SIGTERM)
        await asyncio.wait_for(demo.wait(), 45)
    assert demo.returncode == 0
    assert results["sessions.auto_complete"]["completed"] > 0
    assert results["waitlist.expire_offers"]["offers_expired"] > 0
    assert results["credits.expire"]["credits_expired"] > 0
    assert results["messages.deliver_due"]["delivered"] > 0
    assert results["sessions.expire_holds"]["holds_expired"] > 0
    assert results["gdpr.erase_due"]["erased"] > 0
    assert results["telemetry.purge"]["deleted"] > 0
    assert results["licenses.reconcile"]["expired"] > 0
