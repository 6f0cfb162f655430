"""The benchmark harness end to end at its smallest size: it runs every benchmark and writes the table.

Nothing here looks at how fast anything was: only that each benchmark ran and reported its ratios.
"""

import re
import subprocess
import sys
from pathlib import Path

from tests import services

ROOT = Path(__file__).resolve().parents[2]


def test_tiny_run_writes_a_table_with_ratios(tmp_path, env):
    out = tmp_path / "RESULTS.md"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "ops.bench",
            "--tiny",
            "--runs",
            "1",
            "--out",
            str(out),
            "--pg",
            services.PG_ADMIN_DSN,
            "--mysql",
            services.MYSQL_DSN,
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    table = out.read_text()
    for section in (
        "Worker throughput",
        "Enqueue-to-start latency",
        "Enqueue rate",
        "Worker memory",
        "Sweep versus the limit",
        "Purge versus pt-archiver",
        "Learner erasure versus one DELETE",
        "Outbox relay",
        "Worker processes on one Redis",
        "Durable enqueue",
        "Tracing off and on",
    ):
        assert f"## {section}" in table
    ratios = re.findall(
        r"^\| [^|]+ \| ([^|]+) \| ([0-9.,]+)(x| ms| s) \| ([^|]*) \| (yes|\*\*no\*\*|) \| [^|]* \|$",
        table,
        re.M,
    )
    assert len(ratios) >= 12, table
    assert any(what.startswith("noop: jobfleet / tuned arq") for what, *_ in ratios)
    assert (
        "| nproc |" in table and "class_sessions_status_ends_at_idx" in table
    )  # the machine and the due-row plans
