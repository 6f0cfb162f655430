"""The statement-by-statement diagnostics of the benchmarks: they run, and they read what they are given."""

import subprocess
import sys
from pathlib import Path

from ops.bench.purge_statements import Statement, deletes, report
from tests import services

ROOT = Path(__file__).resolve().parents[2]

# two entries of a MariaDB 10.11 slow log written with log_slow_verbosity = engine
SLOW_LOG = """# User@Host: root[root] @  [127.0.0.1]
# Thread_id: 57  Schema:   QC_hit: No
# Query_time: 0.803845  Lock_time: 0.000047  Rows_sent: 0  Rows_examined: 9750
# Rows_affected: 9750  Bytes_sent: 11
# Pages_accessed: 160954  Pages_read: 4594  Pages_prefetched: 0  Pages_updated: 68608  Old_rows_read: 0
# Pages_read_time: 408.4486  Engine_time: 801.5972
SET timestamp=1796141529;
DELETE FROM jf_bench_414154_telemetry.events WHERE id > 0 AND id <= 9750 AND created_at < '2026-09-02';
# User@Host: root[root] @  [127.0.0.1]
# Thread_id: 58  Schema:   QC_hit: No
# Query_time: 0.004100  Lock_time: 0.000010  Rows_sent: 0  Rows_examined: 0
# Rows_affected: 1  Bytes_sent: 11
# Pages_accessed: 12  Pages_read: 0  Pages_prefetched: 0  Pages_updated: 6  Old_rows_read: 0
# Pages_read_time: 0.0000  Engine_time: 3.9000
SET timestamp=1796141529;
INSERT INTO `jf_bench_414154_telemetry`.`events` (event_id) VALUES (uuid());
"""


def test_the_slow_log_gives_each_delete_its_rows_and_pages_read():
    assert deletes(SLOW_LOG, "jf_bench_414154_") == [Statement(803.845, 9750, 4594, 408.4486)]
    assert deletes(SLOW_LOG, "jf_bench_other_") == []
    assert "1 DELETE statements" in report("telemetry.purge", deletes(SLOW_LOG, "jf_bench_414154_"))


def test_the_sweep_statements_run_on_a_small_data_set(env):
    argv = [
        sys.executable,
        "-m",
        "ops.bench.sweep_statements",
        "credits.expire",
        "--due",
        "200",
        "--total",
        "2000",
    ]
    done = subprocess.run(
        [*argv, "--pg", services.PG_ADMIN_DSN],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    first, header, *rows = done.stdout.splitlines()
    assert first.startswith("credits.expire: ") and "the one-transaction reference's" in first
    assert "outcome {'expired': " in first
    assert header.split() == ["count", "total", "s", "share", "statement"]
    assert rows and all(row.split()[0].replace(",", "").isdigit() for row in rows)
