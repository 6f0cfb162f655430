"""``jobfleet demo`` as a newcomer runs it: within a minute the sweeps act on the demo data, the
pretend backend's jobs run (one fails on purpose), the dashboard answers on the printed link, and
Ctrl-C stops everything."""

from collections import Counter

import httpx

from tests.cli.demo_process import running_demo

SWEEPS = {
    "sessions.auto_complete",
    "waitlist.expire_offers",
    "credits.expire",
    "messages.deliver_due",
    "sessions.expire_holds",
    "gdpr.erase_due",
    "learners.erase_due",
    "telemetry.purge",
    "licenses.reconcile",
    "lifecycle.detect",
    "reviews.request_due",
    "reviews.expire",
    "retention.teacher_policies",
}

# what the demo data makes each of these do within the minute (asserted one by one below)
EFFECTS = (
    ("sessions.auto_complete", "completed"),
    ("reviews.request_due", "requested"),
    ("reviews.expire", "expired"),
    ("retention.teacher_policies", "erasure_requested"),
)


async def test_demo_sweeps_act_the_backend_trickles_and_the_dashboard_answers(env):
    async with running_demo(env) as demo:
        # each job's counts summed over its runs: a sweep can run more than once in the minute (a
        # tick, and a follow-up another job asked for), and the first run may find nothing to do
        results: dict[str, Counter] = {}

        def seen() -> bool:
            results.clear()
            for event in demo.events:
                if event.get("event") == "job_succeeded":
                    counts = {k: v for k, v in event["result"].items() if isinstance(v, int)}
                    results.setdefault(event["job"], Counter()).update(counts)
            failed = {e["job"] for e in demo.events if e.get("event") == "job_failed"}
            wanted = SWEEPS | {"messages.deliver", "calendar.sync_session", "fleet.noop"}
            acted = wanted <= set(results) and all(results[job][count] > 0 for job, count in EFFECTS)
            return acted and "messages.deliver" in failed and demo.link is not None

        await demo.until(seen, timeout_s=60)
        async with httpx.AsyncClient(follow_redirects=False) as client:
            signed_in = await client.get(demo.link)
            assert signed_in.status_code == 303 and "jobfleet_session" in client.cookies
            overview = await client.get(demo.link.split("/login")[0] + "/")
            assert overview.status_code == 200 and "Overview" in overview.text
            client.cookies.clear()
            again = await client.get(demo.link)
            assert again.status_code == 401 and "already used" in again.text, "the link works once"
    assert demo.process.returncode == 0, "\n".join(demo.lines[-20:])
    assert results["sessions.auto_complete"]["completed"] > 0
    assert results["waitlist.expire_offers"]["offers_expired"] > 0
    assert results["credits.expire"]["credits_expired"] > 0
    assert results["messages.deliver_due"]["delivered"] > 0
    assert results["sessions.expire_holds"]["holds_expired"] > 0
    assert results["gdpr.erase_due"]["erased"] > 0
    assert results["learners.erase_due"]["erased"] > 0
    assert results["telemetry.purge"]["deleted"] > 0
    assert results["licenses.reconcile"]["expired"] > 0
    assert results["lifecycle.detect"]["gap_detected"] > 0 and results["lifecycle.detect"]["churned"] > 0
    assert results["reviews.request_due"]["requested"] > 0
    assert results["reviews.expire"]["expired"] > 0
    assert results["retention.teacher_policies"]["erasure_requested"] > 0
    assert results["calendar.sync_session"]["synced"] > 0
    failing = [e for e in demo.events if e.get("event") == "job_failed" and e["job"] == "messages.deliver"]
    assert "does not exist" in failing[0]["error"], "the job that fails on purpose"
    assert any(e.get("event") == "fleet_stopped" for e in demo.events), "Ctrl-C stopped the worker cleanly"


async def test_demo_without_dashboard_serves_nothing(env):
    async with running_demo(env, "--no-dashboard") as demo:
        await demo.until(lambda: any(e.get("event") == "fleet_started" for e in demo.events), timeout_s=60)
        assert demo.link is None and not any("dashboard on" in line for line in demo.lines)
