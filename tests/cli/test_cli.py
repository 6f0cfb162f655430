"""The ``jobfleet`` command line, run as a user runs it: a subprocess with JOBFLEET_* variables."""

import json

import asyncpg
import pytest

from tests import services
from tests.cli.run import jobfleet
from tests.factories import PinTeach

COMMANDS = [
    [],
    ["worker"],
    ["run"],
    ["enqueue"],
    ["jobs"],
    ["db"],
    ["db", "init"],
    ["db", "check"],
    ["failed"],
    ["failed", "list"],
    ["failed", "retry"],
    ["demo"],
]


# Every server the fleet talks to, on a port where nothing listens
SERVERS_AWAY = {
    "JOBFLEET_REDIS_URL": "redis://127.0.0.1:1/0",
    "JOBFLEET_PINTEACH_DSN": "postgresql://postgres@127.0.0.1:1/pinteach",
    "JOBFLEET_PICKATALE_DSN": "mysql://root@127.0.0.1:1/",
}

# command -> (exit status, the start of each line on stderr: one per server the command needs)
WITH_SERVERS_AWAY = {
    ("enqueue", "fleet.noop"): (1, ["jobfleet: job 'fleet.noop' was not enqueued: Redis is unreachable"]),
    ("failed", "list"): (1, ["jobfleet: cannot reach Redis: "]),
    ("failed", "retry", "--all"): (1, ["jobfleet: cannot reach Redis: "]),
    ("failed", "delete", "x"): (1, ["jobfleet: cannot reach Redis: "]),
    ("status",): (1, ["jobfleet: cannot reach Redis: "]),
    ("worker", "--burst"): (1, ["jobfleet: cannot reach Redis: "]),
    ("demo",): (1, ["jobfleet: cannot reach PostgreSQL: "]),
    ("run", "sessions.auto_complete"): (1, ['{"job":"sessions.auto_complete","ok":false,']),
    # exit 2: the audit could not finish, which a script must tell from a violation (exit 1)
    ("audit",): (2, ["jobfleet audit: could not finish: cannot reach PostgreSQL: "]),
    ("db", "check"): (1, ["2 database(s) not checked: cannot connect"]),
    ("db", "init"): (1, ["PinTeach: cannot reach PostgreSQL: ", "Pickatale: OperationalError: (2003, "]),
}


@pytest.mark.parametrize("command", WITH_SERVERS_AWAY, ids=" ".join)
def test_a_server_away_is_one_clear_line_not_a_traceback(env, command):
    status, lines = WITH_SERVERS_AWAY[command]
    result = jobfleet({**env, **SERVERS_AWAY}, *command)
    assert "Traceback" not in result.stderr + result.stdout
    assert result.returncode == status, result.stderr
    errors = result.stderr.strip().splitlines()
    assert len(errors) == len(lines), errors
    for error, start in zip(errors, lines, strict=True):
        assert error.startswith(start), errors
        assert "Background on this error" not in error


def test_db_check_names_each_server_it_cannot_reach(env):
    result = jobfleet({**env, **SERVERS_AWAY}, "db", "check")
    assert result.stdout.splitlines() == [
        "PinTeach: cannot reach PostgreSQL: [Errno 111] Connection refused",
        "Pickatale: OperationalError: (2003, \"Can't connect to MySQL server on '127.0.0.1' ([Errno 111] "
        'Connection refused)")',
    ]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "jobfleet")
def test_every_command_has_help(env, command):
    result = jobfleet(env, *command, "--help")
    assert result.returncode == 0 and "usage: jobfleet" in result.stdout


def test_a_malformed_setting_stops_with_one_line_naming_it(env):
    result = jobfleet({**env, "JOBFLEET_PINTEACH_DSN": "mysql://nope"}, "jobs")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "jobfleet: configuration error: JOBFLEET_PINTEACH_DSN: the PinTeach DSN must be a URL starting with "
        "postgresql:// or postgres://"
    ]
    result = jobfleet({**env, "JOBFLEET_WORKER_MAX_JOBS": "many"}, "worker")
    assert (
        result.returncode == 2
        and "JOBFLEET_WORKER_MAX_JOBS" in result.stderr
        and "Traceback" not in result.stderr
    )


async def test_run_prints_the_summary_and_exits_0(env, pg):
    await PinTeach(pg).individual()
    result = jobfleet(env, "run", "sessions.auto_complete")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"completed": 1, "pending_review": 0, "credits_consumed": 1}


def test_run_fails_with_exit_1_and_a_reason(env):
    result = jobfleet(env, "run", "fleet.sleep", "--payload", '{"ms": "soon"}')
    assert result.returncode == 1
    assert "invalid payload for job 'fleet.sleep'" in result.stderr and "ms" in result.stderr
    assert "Traceback" not in result.stderr
    result = jobfleet(env, "run", "sessions.autocomplete")
    assert result.returncode == 1 and "unknown job 'sessions.autocomplete'" in result.stderr
    result = jobfleet(env, "run", "fleet.sleep", "--payload", "{ms: 1}")
    assert result.returncode == 1 and "--payload is not valid JSON" in result.stderr


def test_enqueue_prints_the_job_id_and_a_key_makes_it_idempotent(env):
    first = jobfleet(
        env,
        "enqueue",
        "fleet.sleep",
        "--payload",
        '{"ms": 1}',
        "--key",
        "once",
        "--defer-until",
        "2099-01-01T00:00:00+00:00",
    )
    second = jobfleet(env, "enqueue", "fleet.sleep", "--payload", '{"ms": 1}', "--key", "once")
    assert first.returncode == second.returncode == 0
    assert first.stdout.strip() == second.stdout.strip() == "fleet.sleep:once"
    bad = jobfleet(env, "enqueue", "fleet.sleep", "--defer-until", "tomorrow")
    assert bad.returncode == 1 and "not an ISO 8601 time" in bad.stderr


def test_jobs_lists_the_catalog(env):
    result = jobfleet(env, "jobs", "--json")
    rows = {r["name"]: r for r in json.loads(result.stdout)}
    assert rows["sessions.auto_complete"]["schedule"] == "* * * * *"
    assert rows["sessions.auto_complete"]["queue"] == "sweeps"
    assert "NAME" in jobfleet(env, "jobs").stdout


def test_db_check_passes_on_the_ddl(env):
    result = jobfleet(env, "db", "check")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "all tables, columns and enum values the fleet uses are present" in result.stdout


async def test_db_check_names_what_is_missing(env):
    name = f"jf_test_{services.RUN_ID}_broken"
    admin = await asyncpg.connect(services.PG_ADMIN_DSN)
    await admin.execute(f'CREATE DATABASE "{name}"')
    dsn = services.PG_ADMIN_DSN.rsplit("/", 1)[0] + "/" + name
    try:
        broken = await asyncpg.connect(dsn)
        await broken.execute(
            "CREATE TYPE completion_mode AS ENUM ('AUTO_COMPLETE');"
            "CREATE TABLE teachers (id uuid PRIMARY KEY, email text)"
        )
        await broken.close()
        result = jobfleet({**env, "JOBFLEET_PINTEACH_DSN": dsn}, "db", "check")
    finally:
        await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        await admin.close()
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert "PinTeach: column teachers.completion_mode is missing" in lines
    assert "PinTeach: table class_sessions is missing" in lines
    assert "PinTeach: enum completion_mode has no value 'MANUAL'" in lines
    assert "PinTeach: enum type session_status is missing" in lines
    assert not any(line.startswith("Pickatale") for line in lines)


async def test_db_check_before_migration_0080_says_what_is_off(env):
    from db.schema import PINTEACH_DDL

    name = f"jf_test_{services.RUN_ID}_pre0080"
    admin = await asyncpg.connect(services.PG_ADMIN_DSN)
    await admin.execute(f'CREATE DATABASE "{name}"')
    dsn = services.PG_ADMIN_DSN.rsplit("/", 1)[0] + "/" + name
    try:
        before = await asyncpg.connect(dsn)
        await before.execute(PINTEACH_DDL.read_text().split("-- Migration 0080")[0])
        await before.close()
        result = jobfleet({**env, "JOBFLEET_PINTEACH_DSN": dsn}, "db", "check")
    finally:
        await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        await admin.close()
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert (
        "PinTeach: table job_outbox is missing (migration 0080_job_fleet_2 has not run): "
        "the outbox relay is off"
    ) in lines
    assert any(line.startswith("PinTeach: table review_requests is missing") for line in lines)
    assert "optional part(s) off until their migration runs" in lines[-1]


async def test_db_init_creates_the_schema_and_refuses_a_used_database(env):
    name = f"jf_test_{services.RUN_ID}_init"
    dsn = services.PG_ADMIN_DSN.rsplit("/", 1)[0] + "/" + name
    try:
        created = jobfleet({**env, "JOBFLEET_PINTEACH_DSN": dsn}, "db", "init", "--pinteach")
        again = jobfleet({**env, "JOBFLEET_PINTEACH_DSN": dsn}, "db", "init", "--pinteach")
        check = jobfleet({**env, "JOBFLEET_PINTEACH_DSN": dsn}, "db", "check")
    finally:
        admin = await asyncpg.connect(services.PG_ADMIN_DSN)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
    assert created.returncode == 0 and "(new database)" in created.stdout
    assert again.returncode == 1 and "already has" in again.stderr
    assert check.returncode == 0


def test_failed_list_on_an_empty_record(env, redis):
    result = jobfleet(env, "failed", "list")
    assert result.returncode == 0 and "0 failed job(s)" in result.stdout
    missing = jobfleet(env, "failed", "retry", "nope")
    assert missing.returncode == 1 and "no failed job 'nope'" in missing.stderr


async def test_audit_exits_0_when_all_invariants_hold(env, pg, mysql):
    result = jobfleet(env, "audit")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip().endswith("all invariants hold")


def test_worker_refuses_to_start_on_a_bad_schedules_file(env, tmp_path):
    bad = tmp_path / "schedules.toml"
    bad.write_text('["sessions.auto_complete"]\ncron = "every minute"\n')
    result = jobfleet({**env, "JOBFLEET_SCHEDULES_FILE": str(bad)}, "worker")
    assert result.returncode == 1
    assert "schedule 'sessions.auto_complete'" in result.stderr and "Traceback" not in result.stderr
