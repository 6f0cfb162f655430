"""Domain health: Pickatale learner erasure requests near or past due, on the page and in /metrics."""

import re
from html import unescape

from tests.factories import ago
from tests.jobs.learners.world import add_request, world
from tests.ops.support import dashboard
from tests.ops.test_metrics_and_health import scrape


def naive(when):
    return when.replace(tzinfo=None)


async def test_learner_erasures_near_and_past_due(settings, redis, pg, mysql):
    w = await world(mysql)  # one pending request, due a day ago
    for due, status in ((ago(days=-1), "pending"), (ago(days=-2), "processing"), (ago(days=-10), "pending")):
        await add_request(mysql, w["noah"]["learner_id"], w["parent_id"], due_at=naive(due), status=status)
    await add_request(
        mysql, w["noah"]["learner_id"], w["parent_id"], due_at=naive(ago(days=5)), status="completed"
    )

    async with dashboard(settings) as client:
        page = unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", (await client.get("/health")).text)))
        m = await scrape(client)
        overview = (await client.get("/")).text

    assert "Learner erasure requests due within 3 days 2 learners.erase_due" in page
    assert "Learner erasure requests past due 1 learners.erase_due" in page
    assert m[("jobfleet_domain_learner_erasures_due_soon", ())] == 2
    assert m[("jobfleet_domain_learner_erasures_overdue", ())] == 1
    assert 86390 < m[("jobfleet_domain_oldest_learner_erasure_overdue_seconds", ())] < 86500
    assert "1 learner erasure request(s) past due" in overview


async def test_without_the_table_the_line_shows_nothing_known(settings, redis, pg, mysql):
    schema = f"{settings.pickatale_db_prefix}account_center"
    async with mysql.connect() as conn:
        await conn.exec_driver_sql(f"RENAME TABLE {schema}.learner_erasure_requests TO {schema}.ler_moved")
    try:
        async with dashboard(settings) as client:
            page = unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", (await client.get("/health")).text)))
            m = await scrape(client)
    finally:
        async with mysql.connect() as conn:
            await conn.exec_driver_sql(
                f"RENAME TABLE {schema}.ler_moved TO {schema}.learner_erasure_requests"
            )
    assert "Learner erasure requests past due — learners.erase_due" in page
    assert ("jobfleet_domain_learner_erasures_overdue", ()) not in m
    assert m[("jobfleet_domain_health_up", ())] == 1
