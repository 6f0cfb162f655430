"""Orphaned and recovered jobs on the dashboard's in-progress page, in ``jobfleet status`` and in
/metrics: a job held by a worker whose lease lapsed, before and after a live worker recovers it."""

import json

from tests.ops.support import dashboard
from tests.ops.test_dashboard import cells
from tests.ops.test_history import jobfleet
from tests.workers.test_recovery import DEAD, orphan
from workers.recovery import Recovery


async def test_an_orphan_is_shown_then_its_recovery_and_counted(settings, redis, env):
    job_id = await orphan(redis, tries=3)
    async with dashboard(settings) as client:
        page = cells((await client.get("/running")).text)
        assert "Orphaned Held by" in page and f"{job_id} fleet.sleep default {DEAD}" in page
        assert "No job has been recovered." in page
        code, out, err = await jobfleet(env, "status", "--json")
        assert code == 0, err
        status = json.loads(out)
        assert [(o["job_id"], o["job"], o["worker_id"]) for o in status["orphaned"]] == [
            (job_id, "fleet.sleep", DEAD)
        ]
        assert "jobfleet_jobs_orphaned 1.0" in (await client.get("/metrics")).text

        await Recovery(redis, "alive-7", 1).recover(DEAD)

        page = cells((await client.get("/running")).text)
        assert "No orphaned jobs." in page
        assert f"{job_id} fleet.sleep default 3 {DEAD} alive-7" in page
        code, out, err = await jobfleet(env, "status")
        assert code == 0, err
        assert "RECOVERED (newest 1 of 1)" in out and job_id in out and "alive-7" in out
        metrics = (await client.get("/metrics")).text
        assert 'jobfleet_job_recoveries_total{job="fleet.sleep"} 1.0' in metrics
        assert "jobfleet_jobs_orphaned 0.0" in metrics
