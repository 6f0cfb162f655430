"""Bare arq, for comparison: the same two jobs as fleet.noop and fleet.sleep, nothing around them.

``python -m ops.bench.arq_worker --redis URL --loop uvloop --max-jobs 100 --poll-delay 0.01 --json``
"""

import argparse
import asyncio

import orjson
from arq.connections import RedisSettings
from arq.worker import Worker, func

QUEUE = "arq:bench"


async def noop(ctx: dict) -> dict:
    return {}


async def sleep(ctx: dict, ms: int) -> dict:
    await asyncio.sleep(ms / 1000)
    return {"slept_ms": ms}


async def serve(args: argparse.Namespace) -> None:
    options = {"job_serializer": orjson.dumps, "job_deserializer": orjson.loads} if args.json else {}
    worker = Worker(
        [func(noop, name="noop"), func(sleep, name="sleep")],
        queue_name=QUEUE,
        redis_settings=RedisSettings.from_dsn(args.redis),
        max_jobs=args.max_jobs,
        poll_delay=args.poll_delay,
        handle_signals=False,
        **options,
    )
    await worker.async_run()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--redis", required=True)
    parser.add_argument("--loop", choices=("asyncio", "uvloop"), default="asyncio")
    parser.add_argument("--max-jobs", type=int, default=10)  # arq's defaults
    parser.add_argument("--poll-delay", type=float, default=0.5)
    parser.add_argument("--json", action="store_true", help="JSON instead of arq's default pickle")
    args = parser.parse_args()
    if args.loop == "uvloop":
        import uvloop

        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(serve(args))
    else:
        asyncio.run(serve(args))


if __name__ == "__main__":
    main()
