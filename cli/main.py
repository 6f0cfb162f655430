"""The ``jobfleet`` command line."""

import argparse
import asyncio
import sys
from collections.abc import Callable, Coroutine
from datetime import datetime
from typing import Any

from cli.errors import one_line, server_away
from jobfleet import keys, wire
from jobfleet.catalog import CATALOG, JOBS, UnknownJob
from jobfleet.settings import ConfigError, Settings, load_settings

EXIT_FAILURE, EXIT_USAGE = 1, 2


class CommandError(Exception):
    """Says in one line what went wrong; exits 1."""


def _run(coro: Coroutine[Any, Any, int]) -> int:
    try:
        import uvloop
    except ImportError:  # pragma: no cover
        return asyncio.run(coro)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coro)


def _payload(text: str | None) -> dict[str, Any]:
    if text is None:
        return {}
    try:
        value = wire.decode(text)
    except ValueError as e:
        raise CommandError(f"--payload is not valid JSON: {e}") from None
    if not isinstance(value, dict):
        raise CommandError("--payload must be a JSON object")
    return value


def _queues(names: list[str] | None) -> list[str]:
    if not names:
        return list(keys.ALL_QUEUES)
    queues = []
    for name in names:
        queue = keys.QUEUE_ALIASES.get(name, name)
        if queue not in keys.ALL_QUEUES:
            raise CommandError(f"unknown queue {name!r}; queues: {', '.join(keys.QUEUE_ALIASES)}")
        queues.append(queue)
    return queues


# Commands --------------------------------------------------------------------------------------


def cmd_worker(args: argparse.Namespace, settings: Settings) -> int:
    from workers.fleet import Fleet
    from workers.logging import configure

    configure(settings.log_level, settings.log_format)
    overrides = {}
    if args.concurrency:
        overrides["worker_max_jobs"] = args.concurrency
    settings = settings.model_copy(update=overrides)
    fleet = Fleet(
        settings,
        _queues(args.queue),
        burst=args.burst,
        scheduler=False if args.no_scheduler else None,
        outbox=False if args.no_outbox else None,
    )

    async def main() -> int:
        await fleet.run()
        return 0

    return _run(main())


def cmd_probe(args: argparse.Namespace, settings: Settings) -> int:
    from workers import probe

    if settings.health_file is None:
        raise CommandError("JOBFLEET_HEALTH_FILE is not set: the worker writes no heartbeat file to probe")
    healthy, why = probe.check(settings.health_file, args.mode, settings.health_interval_s)
    print(why, file=sys.stdout if healthy else sys.stderr)
    return 0 if healthy else EXIT_FAILURE


def cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    import structlog

    from jobs.deps import Deps
    from workers import connections
    from workers.logging import configure
    from workers.marks import RedisMarks
    from workers.runner import enqueue_follow_ups, load_handler, run_job

    configure(settings.log_level, settings.log_format, stderr=True)
    spec = CATALOG.get(args.name)
    if spec is None:
        raise CommandError(str(UnknownJob(args.name)))
    payload = _payload(args.payload)

    async def main() -> int:
        producer = connections.producer(settings)
        deps = Deps.from_settings(settings).with_marks(RedisMarks(producer.redis))
        try:
            with structlog.contextvars.bound_contextvars(job=spec.name):
                done = await run_job(spec, load_handler(spec), deps, payload)
                # after the job's commits, as in a worker
                await enqueue_follow_ups(producer, done.follow_ups)
        except Exception as e:  # the one place a failure of any kind becomes exit status 1
            print(
                wire.encode({"job": spec.name, "ok": False, "error": f"{type(e).__name__}: {e}"}).decode(),
                file=sys.stderr,
            )
            return EXIT_FAILURE
        finally:
            await deps.close()
            await producer.close()
        print(wire.encode(dict(done)).decode())
        return 0

    return _run(main())


def cmd_enqueue(args: argparse.Namespace, settings: Settings) -> int:
    from workers import connections

    defer_until = None
    if args.defer_until:
        try:
            defer_until = datetime.fromisoformat(args.defer_until)
        except ValueError:
            raise CommandError(f"--defer-until {args.defer_until!r} is not an ISO 8601 time") from None
        if defer_until.tzinfo is None:
            raise CommandError("--defer-until needs a time zone, e.g. 2026-11-22T10:00:00+00:00")

    async def main() -> int:
        async with connections.producer(settings) as producer:
            job_id = await producer.enqueue(
                args.name,
                _payload(args.payload),
                key=args.key,
                defer_until=defer_until,
                defer_by=args.defer_by,
            )
        print(job_id)
        return 0

    return _run(main())


def cmd_jobs(args: argparse.Namespace, settings: Settings) -> int:
    if args.json_schema:
        from jobfleet.json_schema import render

        sys.stdout.write(render())
        return 0

    from workers.scheduler import load_schedules

    crons = {s.name: s.cron.expression for s in load_schedules(settings.schedules_file)}
    rows = [
        {
            "name": s.name,
            "queue": s.queue.rsplit(":", 1)[-1],
            "kind": s.kind,
            "schedule": crons.get(s.name, ""),
            "timeout_s": s.timeout_s,
            "max_tries": s.max_tries,
            "payload": ", ".join(s.payload.model_fields) or "-",
            "description": s.description,
        }
        for s in JOBS
    ]
    if args.json:
        print(wire.encode(rows).decode())
        return 0
    columns = ("name", "queue", "schedule", "timeout_s", "max_tries", "payload", "description")
    widths = {c: max(len(c), *(len(str(r[c])) for r in rows)) for c in columns}
    print("  ".join(c.upper().ljust(widths[c]) for c in columns).rstrip())
    for r in rows:
        print("  ".join(str(r[c]).ljust(widths[c]) for c in columns).rstrip())
    return 0


def cmd_db_init(args: argparse.Namespace, settings: Settings) -> int:
    from cli import database

    targets = [t for t in ("pinteach", "pickatale") if getattr(args, t)] or ["pinteach", "pickatale"]
    return _run(database.init(settings, targets))


def cmd_db_check(args: argparse.Namespace, settings: Settings) -> int:
    from cli import database

    return _run(database.check(settings))


def cmd_failed(args: argparse.Namespace, settings: Settings) -> int:
    from cli import failed

    return _run(failed.main(args, settings))


def cmd_audit(args: argparse.Namespace, settings: Settings) -> int:
    from ops.audit import EXIT_CRASHED
    from ops.audit import main as audit

    try:
        return _run(audit(settings, args))
    except Exception as e:  # exit 1 means violations: a script must tell an audit that did not finish
        print(f"jobfleet audit: could not finish: {one_line(e)}", file=sys.stderr)
        return EXIT_CRASHED


def cmd_dashboard(args: argparse.Namespace, settings: Settings) -> int:
    from ops.dashboard.serve import UnsafeAddress, serve
    from workers.logging import configure

    configure(settings.log_level, settings.log_format)
    try:
        return serve(settings, args.host, args.port)
    except UnsafeAddress as e:
        print(f"jobfleet: {e}", file=sys.stderr)
        return EXIT_USAGE


def cmd_status(args: argparse.Namespace, settings: Settings) -> int:
    from ops import status

    return _run(status.main(settings, as_json=args.json, failed_limit=args.failed))


def cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    from cli import demo

    return demo.main(args, settings)


# Parser ----------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="jobfleet",
        description="The job fleet of PinTeach and Pickatale. Configuration comes from JOBFLEET_* "
        "environment variables (see the README).",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(
        name: str, handler: Callable[..., int], help: str, parent: Any = sub
    ) -> argparse.ArgumentParser:
        p = parent.add_parser(name, help=help, description=help)
        p.set_defaults(handler=handler)
        return p

    p = command(
        "worker",
        cmd_worker,
        "Run a worker process: one worker per queue, the scheduler, the outbox relay and a heartbeat",
    )
    p.add_argument(
        "--queue",
        action="append",
        metavar="Q",
        help=f"queue to serve, repeatable: {', '.join(keys.QUEUE_ALIASES)} (default: all)",
    )
    p.add_argument(
        "--concurrency", type=int, metavar="N", help="jobs run at once per queue (JOBFLEET_WORKER_MAX_JOBS)"
    )
    p.add_argument("--burst", action="store_true", help="exit once the queues are empty")
    p.add_argument(
        "--no-scheduler", action="store_true", help="do not enqueue periodic sweeps from this process"
    )
    p.add_argument(
        "--no-outbox",
        action="store_true",
        help="do not relay PinTeach's job_outbox from this process (JOBFLEET_OUTBOX_RELAY_ENABLED)",
    )

    p = command(
        "probe",
        cmd_probe,
        "Container probe of this machine's worker process, from its heartbeat file (JOBFLEET_HEALTH_FILE)",
    )
    p.add_argument(
        "mode",
        choices=["live", "ready"],
        help="live: the heartbeat loop runs; ready: its health record in Redis is current",
    )

    p = command(
        "run", cmd_run, "Run one job in this process now and print its JSON summary (exit 1 on failure)"
    )
    p.add_argument("name", help="job name, e.g. sessions.auto_complete (see `jobfleet jobs`)")
    p.add_argument("--payload", metavar="JSON", help="the job's payload as a JSON object")

    p = command("enqueue", cmd_enqueue, "Enqueue a job through the producer library and print its id")
    p.add_argument("name", help="job name")
    p.add_argument("--payload", metavar="JSON", help="the job's payload as a JSON object")
    p.add_argument("--key", help="idempotency key: one job per key while it is queued, running or kept")
    p.add_argument("--defer-until", metavar="ISO8601", help="run at this time (with a time zone)")
    p.add_argument("--defer-by", type=float, metavar="SECONDS", help="run after this many seconds")

    p = command("jobs", cmd_jobs, "List the job catalog: names, queues, schedules, timeouts")
    output = p.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true", help="print JSON instead of a table")
    output.add_argument(
        "--json-schema",
        action="store_true",
        help="print a JSON Schema of every job's payload and of the wire document (for producers "
        "in other languages)",
    )

    db = command("db", lambda *_: 0, "Create or check the shared databases' schema")
    db_sub = db.add_subparsers(dest="db_command", required=True, metavar="COMMAND")
    p = command(
        "init", cmd_db_init, "Create the schema in empty development or test databases from the DDL", db_sub
    )
    p.add_argument("--pinteach", action="store_true", help="only PinTeach (PostgreSQL)")
    p.add_argument("--pickatale", action="store_true", help="only Pickatale (MySQL/MariaDB)")
    command(
        "check",
        cmd_db_check,
        "Report every table, column or enum value the fleet uses that is missing",
        db_sub,
    )

    failed = command("failed", cmd_failed, "List, show, retry or delete jobs in the failure record")
    f_sub = failed.add_subparsers(dest="failed_command", required=True, metavar="COMMAND")
    p = command("list", cmd_failed, "List failed jobs, newest first", f_sub)
    p.add_argument("--limit", type=int, default=20)
    p.add_argument("--json", action="store_true")
    p = command("show", cmd_failed, "Show one failed job with its traceback", f_sub)
    p.add_argument("job_id")
    for name, help in (
        ("retry", "Enqueue failed jobs again"),
        ("delete", "Delete failed jobs from the record"),
    ):
        p = command(name, cmd_failed, help, f_sub)
        group = p.add_mutually_exclusive_group(required=True)
        group.add_argument("job_id", nargs="?")
        group.add_argument("--all", action="store_true")

    p = command(
        "audit",
        cmd_audit,
        "Check the fleet's invariants on the live databases (read-only; exit 1 on a violation)",
    )
    p.add_argument("--json", action="store_true", help="one JSON object per violation")
    p.add_argument("--skip-pickatale", action="store_true", help="check PinTeach only")

    p = command(
        "dashboard",
        cmd_dashboard,
        "Serve the web dashboard (queues, jobs, failures, schedules, workers, domain health, /metrics)",
    )
    p.add_argument("--host", help="address to listen on (JOBFLEET_DASHBOARD_HOST, default 127.0.0.1)")
    p.add_argument("--port", type=int, help="port (JOBFLEET_DASHBOARD_PORT, default 8765)")

    p = command("status", cmd_status, "Print the queues, failed jobs and schedules as tables")
    p.add_argument("--json", action="store_true", help="print one JSON document instead of tables")
    p.add_argument("--failed", type=int, default=10, metavar="N", help="newest failed jobs to list (10)")

    p = command(
        "demo",
        cmd_demo,
        "Create demo databases with realistic data, run a worker that sweeps them, a trickle of jobs "
        "from a pretend backend, and the dashboard (Ctrl-C stops everything)",
    )
    p.add_argument("--no-dashboard", action="store_true", help="run the worker and the trickle only")
    p.add_argument(
        "--port", type=int, default=8765, help="dashboard port on 127.0.0.1 (a free one if it is taken)"
    )
    p.add_argument(
        "--name",
        default="jobfleet_demo",
        help="the demo's PostgreSQL database; its Pickatale databases take NAME_ as prefix (jobfleet_demo)",
    )
    p.add_argument("--redis-db", type=int, default=9, metavar="N", help="the demo's Redis database (9)")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
    except ConfigError as e:
        print(f"jobfleet: configuration error: {e}", file=sys.stderr)
        return EXIT_USAGE
    try:
        return args.handler(args, settings)
    except (CommandError, UnknownJob, ValueError, LookupError) as e:
        print(f"jobfleet: {e}", file=sys.stderr)
        return EXIT_FAILURE
    except Exception as e:
        if (reason := server_away(e)) is None:
            raise
        print(f"jobfleet: {reason}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        return 130
