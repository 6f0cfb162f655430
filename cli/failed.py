"""``jobfleet failed``: the failure record from a terminal."""

import argparse
import sys

from jobfleet import wire
from jobfleet.connect import connect
from jobfleet.settings import Settings
from workers.failures import FailureRecord


async def main(args: argparse.Namespace, settings: Settings) -> int:
    redis = connect(settings.redis_target)
    record = FailureRecord(redis)
    try:
        match args.failed_command:
            case "list":
                failures = await record.page(0, args.limit)
                if args.json:
                    print(wire.encode(failures).decode())
                else:
                    print(f"{await record.count()} failed job(s), newest first")
                    for f in failures:
                        when, tries = f["failed_at"][:19], f["tries"]
                        print(f"{when}  {f['job']:<24} {f['job_id']:<50} tries={tries}  {f['error']}")
            case "show":
                failure = await record.get(args.job_id)
                if failure is None:
                    print(f"jobfleet: no failed job {args.job_id!r}", file=sys.stderr)
                    return 1
                traceback = failure.pop("traceback", None)
                print(wire.encode(failure).decode())
                if traceback:
                    print(traceback)
            case "retry" if args.all:
                retried, errors = await record.retry_all()
                print(f"retried {len(retried)} job(s)")
                for error in errors:
                    print(error, file=sys.stderr)
                return 1 if errors else 0
            case "retry":
                print(await record.retry(args.job_id))
            case "delete" if args.all:
                print(f"deleted {await record.delete_all()} failed job(s)")
            case "delete":
                if not await record.delete(args.job_id):
                    print(f"jobfleet: no failed job {args.job_id!r}", file=sys.stderr)
                    return 1
                print("deleted")
        return 0
    finally:
        await redis.aclose()
