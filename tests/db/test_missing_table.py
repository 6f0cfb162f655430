"""Optional tables (migrations the shared databases may not have run): one clear line when missing."""

from db import pickatale, pinteach
from db.schema import missing_table


async def test_present_tables_report_nothing(pg, mysql):
    async with pg.connect() as conn:
        assert await missing_table(conn, pinteach.job_outbox) is None
    async with mysql.connect() as conn:
        assert await missing_table(conn, pickatale.learner_erasure_requests) is None


async def test_a_dropped_table_is_named_with_its_migration_and_what_is_off(pg, mysql, settings):
    async with pg.begin() as conn:
        await conn.exec_driver_sql("DROP TABLE review_requests")
        line = await missing_table(conn, pinteach.review_requests)
        await conn.rollback()
    assert line == (
        "table review_requests is missing (migration 0080_job_fleet_2 has not run): "
        "reviews.request_due and reviews.expire is off"
    )
    schema = f"{settings.pickatale_db_prefix}account_center"
    async with mysql.connect() as conn:
        await conn.exec_driver_sql(f"RENAME TABLE {schema}.learner_erasure_requests TO {schema}.ler_moved")
        try:
            line = await missing_table(conn, pickatale.learner_erasure_requests)
        finally:
            await conn.exec_driver_sql(
                f"RENAME TABLE {schema}.ler_moved TO {schema}.learner_erasure_requests"
            )
    assert line is not None and line.startswith(
        "table account_center.learner_erasure_requests is missing (migration 2026_11_learner_erasure"
    )
