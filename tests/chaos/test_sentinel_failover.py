"""Redis Sentinel: kill -9 the master under a steady producer and two workers; both follow the
failover to the promoted replica by themselves.

Servers: a master, two replicas and three Sentinels, private on loopback (tests/chaos/servers.py).
The producer enqueues durably (WAIT for one replica), so every job it was told was enqueued is on a
replica too; a job it could not confirm is reported to it (NotReplicated or ProducerUnavailable)
and enqueued again with the same key, as a backend would. Figures (time for the producer and the
workers to carry on) are printed: run with ``-s`` to read them.
"""

import asyncio
import socket
import time

import pytest

from jobfleet import keys, wire
from jobfleet.connect import connect
from jobfleet.producer import Producer, ProducerUnavailable
from jobfleet.redis_target import RedisTarget
from tests.chaos.processes import log_events, start_worker, stop_worker
from tests.chaos.servers import SentinelGroup

BEFORE_S = 5
AFTER_S = 15
RATE_PER_S = 20


async def produce(producer: Producer, stop_at: float, acked: dict[str, float], refused: list[float]) -> None:
    i = 0
    while time.monotonic() < stop_at:
        key = f"p{i}"
        while True:  # the same key until Redis confirms it: a retry adds nothing if it got there
            try:
                acked[await producer.enqueue("fleet.noop", key=key)] = time.time()
                break
            except ProducerUnavailable:
                refused.append(time.time())
                await asyncio.sleep(0.1)
        i += 1
        await asyncio.sleep(1 / RATE_PER_S)


async def results(redis, job_ids: list[str]) -> dict[str, dict]:
    async with redis.pipeline(transaction=False) as pipe:
        for job_id in job_ids:
            pipe.get(keys.result_key_prefix + job_id)
        raw = await pipe.execute()
    return {job_id: wire.decode(r) for job_id, r in zip(job_ids, raw, strict=True) if r}


@pytest.mark.slow
async def test_workers_and_producer_follow_a_failover(env, tmp_path):
    with SentinelGroup(replicas=2) as group:
        await asyncio.to_thread(group.wait_for_replicas, 2)
        url = group.url()
        schedules = tmp_path / "schedules.toml"
        schedules.write_text('["fleet.noop"]\ncron = "* * * * * *"\n')  # a tick every second
        worker_env = {
            **env,
            "JOBFLEET_REDIS_URL": url,
            "JOBFLEET_SCHEDULES_FILE": str(schedules),
            "JOBFLEET_HEALTH_INTERVAL_S": "1",
            "JOBFLEET_SHUTDOWN_GRACE_S": "5",
            "JOBFLEET_LOG_LEVEL": "INFO",
        }
        logs = [tmp_path / f"worker-{i}.log" for i in range(2)]
        workers = [await start_worker(worker_env, log, "default", scheduler=True) for log in logs]
        producer = Producer.from_url(url, durable_replicas=1, durable_timeout_s=1)
        redis = connect(RedisTarget.parse(url))
        acked: dict[str, float] = {}
        refused: list[float] = []
        try:
            started = time.monotonic()
            producing = asyncio.create_task(produce(producer, started + BEFORE_S + AFTER_S, acked, refused))
            await asyncio.sleep(BEFORE_S)
            old_port = await asyncio.to_thread(group.kill_master)
            killed_at = time.time()
            await producing
            assert all(w.returncode is None for w in workers), "the workers outlive the failover"
            assert group.master_port() != old_port, "Sentinel promoted a replica"

            ran: dict[str, dict] = {}
            deadline = time.monotonic() + 60
            while len(ran) < len(acked) and time.monotonic() < deadline:
                ran |= await results(redis, [j for j in acked if j not in ran])
                await asyncio.sleep(0.5)
            tick_ids = [
                k.decode().removeprefix(keys.result_key_prefix)
                async for k in redis.scan_iter(match=keys.result_key_prefix + "fleet.noop:tick-*")
            ]
            ticks = await results(redis, tick_ids)
        finally:
            codes = [await stop_worker(w) for w in workers]
            await producer.close()
            await redis.aclose()

    lost = sorted(set(acked) - set(ran))
    assert not lost, f"{len(lost)} job(s) confirmed to the producer never ran: {lost[:5]}"
    assert codes == [0, 0], "both workers stop cleanly"
    after = [r for j, r in ran.items() if acked[j] > killed_at]
    assert after, "the producer enqueued after the failover"
    producer_back_s = min(acked[j] for j in ran if acked[j] > killed_at) - killed_at
    first_start_s = min(r["st"] for r in after) / 1000 - killed_at
    ticks_after = [t for t in ticks.values() if t["st"] / 1000 > killed_at + 1]
    assert ticks_after, "schedules kept running on the promoted master"
    lost_events = [e for log in logs for e in log_events(log) if e["event"] == "worker_redis_lost"]
    assert lost_events, "the workers noticed the failover (and logged it)"
    print(
        f"\nfailover: {len(acked)} jobs confirmed, all ran; {len(refused)} enqueue attempts reported "
        f"to the producer and retried; producer confirmed again {producer_back_s:.1f} s after the "
        f"kill; first job started on the new master {first_start_s:.1f} s after it; "
        f"{len(ticks_after)} ticks ran after it"
    )


class Silent:
    """A TCP port that accepts connections and never answers: a Sentinel that hangs."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]

    def close(self) -> None:
        self.sock.close()


@pytest.mark.slow
async def test_a_silent_sentinel_or_an_unknown_master_is_logged_and_retried(env, tmp_path):
    silent = Silent()
    with SentinelGroup(replicas=0, sentinels=1) as group:
        urls = {
            "silent": f"redis+sentinel://127.0.0.1:{silent.port}/jobfleet/0",
            "unknown master": group.url().replace(f"/{SentinelGroup.MASTER_NAME}/", "/nope/"),
        }
        try:
            for case, url in urls.items():
                producer = Producer.from_url(url)
                with pytest.raises(ProducerUnavailable, match=r"No master found for '(jobfleet|nope)'"):
                    await producer.enqueue("fleet.noop", key=case)
                await producer.close()

                log = tmp_path / f"{case}.log"
                worker = await start_worker({**env, "JOBFLEET_REDIS_URL": url}, log, "default")
                deadline = time.monotonic() + 60
                while time.monotonic() < deadline:
                    lost = [e for e in log_events(log) if e["event"] == "worker_redis_lost"]
                    if lost:
                        break
                    await asyncio.sleep(0.2)
                assert worker.returncode is None, f"{case}: the worker keeps running"
                assert await stop_worker(worker) == 0, log.read_text()[-2000:]
                assert lost, f"{case}: no worker_redis_lost line"
                assert "No master found" in lost[0]["error"] and "via Sentinel" in lost[0]["redis"], lost[0]
                assert lost[0]["reconnect_in_s"] > 0, "it tries again"
        finally:
            silent.close()
