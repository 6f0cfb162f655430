"""Malformed entries in Redis and fuzzed producer payloads: each is refused with a clear error or
recorded as failed with one, and the worker keeps running and still does good work afterwards.

tests/workers/test_runtime.py covers a payload of the wrong shape, an unknown job and bytes that
are not JSON; this adds the rest of what a faulty producer (or an attacker with Redis access) can
write, a real worker process to show it keeps running, and hypothesis to fuzz both sides.
"""

import asyncio
import json
import time
import uuid

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from redis.asyncio import Redis

from jobfleet import keys, wire
from jobfleet.catalog import CATALOG, UnknownJob
from jobfleet.producer import MAX_KEY_CHARS, InvalidPayload, Job, Producer
from tests.chaos.processes import start_worker, stop_worker, wait_for_result
from workers.failures import FailureRecord
from workers.fleet import Fleet


def document(name: object, payload: object, **fields: object) -> bytes:
    """A job document as any JSON library writes it (integers of any size included)."""
    doc = {"t": None, "f": name, "a": [], "k": payload, "et": wire.now_ms(), **fields}
    return json.dumps(doc, allow_nan=False).encode()


# id -> (what is stored under arq:job:{id}, or None for nothing; what the failure record must say)
MALFORMED = {
    "json-list": (b"[1, 2]", "DeserializationError: unable to deserialize job"),
    "json-string": (b'"fleet.noop"', "DeserializationError: unable to deserialize job"),
    "no-payload": (b'{"t": null, "f": "fleet.noop", "a": [], "et": 1}', "DeserializationError"),
    "nan": (b'{"t": null, "f": "fleet.noop", "a": [], "k": {"x": NaN}, "et": 1}', "DeserializationError"),
    "empty-document": (b"", "JobExecutionFailed: job expired"),
    "no-document": (None, "JobExecutionFailed: job expired"),
    "name-not-a-string": (
        document(5, {}),
        "DeserializationError: unable to deserialize job: job document field 'f' must be a string",
    ),
    "positional-args": (
        document("fleet.noop", {}, a=["x"]),
        "Permanent: job 'fleet.noop' takes its payload as the document's 'k' object",
    ),
    "extra-field": (
        document("messages.deliver", {"message_id": str(uuid.uuid4()), "body": "hi"}),
        "InvalidPayload: invalid payload for job 'messages.deliver': body: Extra inputs are not permitted",
    ),
    "not-a-uuid": (
        document("calendar.sync_session", {"session_id": "42"}),
        "InvalidPayload: invalid payload for job 'calendar.sync_session': session_id:",
    ),
    "huge-integer": (
        b'{"t": null, "f": "fleet.sleep", "a": [], "k": {"ms": 1000000000000000000000000}, "et": 1}',
        "InvalidPayload: invalid payload for job 'fleet.sleep': ms:",
    ),
    "oversized": (
        document("fleet.noop", {"blob": "x" * (2 * wire.MAX_JOB_BYTES)}),
        "InvalidPayload: invalid payload for job 'fleet.noop': blob: Extra inputs are not permitted",
    ),
}


async def wait_for_failures(redis: Redis, job_ids: list[str], timeout_s: float) -> dict[str, dict]:
    record = FailureRecord(redis)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = {job_id: await record.get(job_id) for job_id in job_ids}
        if all(found.values()):
            return found
        await asyncio.sleep(0.1)
    missing = [job_id for job_id, f in found.items() if not f]
    raise AssertionError(f"not in the failure record after {timeout_s} s: {missing}")


async def test_malformed_entries_are_recorded_and_the_worker_process_goes_on(env, redis: Redis, tmp_path):
    log = tmp_path / "worker.log"
    worker = await start_worker({**env, "JOBFLEET_LOG_LEVEL": "INFO"}, log, "default", "calendar")
    try:
        now = wire.now_ms()
        for job_id, (raw, _) in MALFORMED.items():
            if raw is not None:
                await redis.set(keys.job_key_prefix + job_id, raw)
            queue = keys.QUEUE_CALENDAR if job_id == "not-a-uuid" else keys.QUEUE_DEFAULT
            await redis.zadd(queue, {job_id: now})
        failures = await wait_for_failures(redis, list(MALFORMED), timeout_s=30)

        good = await Producer(redis).enqueue("fleet.sleep", {"ms": 1})
        assert (await wait_for_result(redis, good))["s"] is True
        assert worker.returncode is None
    finally:
        code = await stop_worker(worker)
    assert code == 0, log.read_text()[-3000:]
    for job_id, (_, error) in MALFORMED.items():
        assert failures[job_id]["error"].startswith(error), (job_id, failures[job_id]["error"])
        assert failures[job_id]["tries"] == 1, "a malformed entry is never retried"
    for job_id in ("json-list", "nan"):
        assert failures[job_id]["raw"], "what could not be read is kept for ops to see"
    oversized = failures["oversized"]["payload"]
    assert oversized["_truncated"] is True and oversized["bytes"] > wire.MAX_JOB_BYTES
    assert len(oversized["preview"]) <= 2000, "the record keeps a preview, not the whole document"
    assert await redis.zcard(keys.FAILED_INDEX) == len(MALFORMED)
    assert await redis.zcard(keys.QUEUE_DEFAULT) == 0, "no malformed entry is left behind in the queue"


async def run_for(settings, seconds: float) -> None:
    fleet = Fleet(settings, [keys.QUEUE_DEFAULT], scheduler=False)
    task = asyncio.create_task(fleet.run())
    await asyncio.sleep(seconds)
    fleet.stop()
    await asyncio.wait_for(task, 30)


@pytest.mark.parametrize("field", ["t", "et"])
async def test_a_document_that_crashes_arqs_worker_does_not_stop_the_queue(settings, redis: Redis, field):
    # arq compares "t" and divides "et" outside its error handling: the arq worker dies on them,
    # and the fleet must build a new one so that the queue keeps moving
    await redis.set(keys.job_key_prefix + "poison", document("fleet.noop", {}, **{field: "x"}))
    await redis.zadd(keys.QUEUE_DEFAULT, {"poison": wire.now_ms()})
    fleet = Fleet(settings, [keys.QUEUE_DEFAULT], scheduler=False)
    task = asyncio.create_task(fleet.run())
    try:
        await asyncio.sleep(0.5)  # the poison is taken first
        good = await Producer(redis).enqueue("fleet.noop")
        assert (await wait_for_result(redis, good, timeout_s=20))["s"] is True
        assert not task.done(), "the worker process is still running"
    finally:
        fleet.stop()
        await asyncio.wait_for(task, 30)


@pytest.mark.parametrize(
    "raw",
    [
        document("fleet.noop", [1, 2]),
        document("fleet.noop", "x"),
        document("fleet.noop", {}, t="x"),
        document("fleet.noop", {}, et="x"),
    ],
    ids=["payload-a-list", "payload-a-string", "try-a-string", "enqueue-time-a-string"],
)
async def test_every_malformed_document_lands_in_the_failure_record(settings, redis: Redis, raw):
    await redis.set(keys.job_key_prefix + "bad", raw)
    await redis.zadd(keys.QUEUE_DEFAULT, {"bad": wire.now_ms()})
    await run_for(settings, 1.5)
    failure = await FailureRecord(redis).get("bad")
    assert failure is not None and "deserialize" in failure["error"]


# Fuzzing ---------------------------------------------------------------------------------------


def json_values(floats: st.SearchStrategy) -> st.SearchStrategy:
    return st.recursive(
        st.none() | st.booleans() | st.integers() | floats | st.text(max_size=30),
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
        max_leaves=12,
    )


def payloads(values: st.SearchStrategy) -> st.SearchStrategy:
    """Payloads near the models' shapes (their field names, with well- and ill-typed values), and
    anything at all."""
    near_shape = st.fixed_dictionaries(
        {},
        optional={
            name: st.uuids().map(str) | values
            for name in ("session_id", "service_id", "message_id", "request_id")
        }
        | {"policy": st.none() | st.text(max_size=120) | values, "ms": st.integers() | values},
    )
    return near_shape | st.dictionaries(st.text(max_size=20), values, max_size=5)


names = st.sampled_from(sorted(CATALOG)) | st.text(max_size=30)


keys_ = (
    st.none()
    | st.text(max_size=60)
    | st.text(min_size=MAX_KEY_CHARS - 5, max_size=MAX_KEY_CHARS + 50)
    | st.text(st.characters(codec=None, categories=["Cs", "Ll"]), min_size=1, max_size=5)  # lone surrogates
)


@hypothesis_settings(max_examples=400, deadline=None)
@given(name=names, payload=payloads(json_values(st.floats())), key=keys_)
def test_fuzzed_producer_payloads_are_taken_whole_or_refused_clearly(name, payload, key):
    producer = Producer(Redis())  # prepare validates and encodes; it never talks to Redis
    try:
        _, args, job_id = producer.prepare(Job(name, payload, key), wire.now_ms())
    except UnknownJob as e:
        assert name not in CATALOG and f"unknown job {name!r}" in str(e)
        return
    except InvalidPayload as e:
        assert str(e).startswith(f"invalid payload for job {name!r}: ") and e.fields
        return
    except ValueError as e:
        assert str(e).startswith((f"payload for job {name!r} is ", f"key for job {name!r} is ")), str(e)
        return
    document = wire.decode(args[0])
    assert document["f"] == name and len(args[0]) <= wire.MAX_JOB_BYTES
    # what the worker will read validates to the same payload the producer accepted
    spec = CATALOG[name]
    assert spec.payload.model_validate(document["k"]) == spec.payload.model_validate(payload)
    assert job_id == (f"{name}:{key}" if key else job_id)
    assert key is None or (len(key) <= MAX_KEY_CHARS and job_id.encode()), "a key is a short id, in text"


@hypothesis_settings(
    max_examples=10,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    entries=st.lists(
        st.tuples(
            st.sampled_from(["fleet.noop", "messages.deliver", "waitlist.offer_next"]),
            # NaN is not JSON: a document holding one is covered above ("nan")
            payloads(json_values(st.floats(allow_nan=False, allow_infinity=False))),
        ),
        min_size=1,
        max_size=8,
    )
)
async def test_fuzzed_documents_in_redis_run_or_are_recorded(settings, redis: Redis, entries):
    # written as a producer in another language would, with no validation on the way in
    await redis.flushdb()
    ids = [f"fuzz-{i}" for i in range(len(entries))]
    for job_id, (name, payload) in zip(ids, entries, strict=True):
        await redis.set(keys.job_key_prefix + job_id, document(name, payload))
        await redis.zadd(keys.QUEUE_DEFAULT, {job_id: wire.now_ms()})
    good = await Producer(redis).enqueue("fleet.noop")

    await Fleet(settings, [keys.QUEUE_DEFAULT], burst=True, scheduler=False).run()

    record = FailureRecord(redis)
    for job_id, (name, _) in zip(ids, entries, strict=True):
        failure = await record.get(job_id)
        if failure is None:
            result = wire.decode(await redis.get(keys.result_key_prefix + job_id))
            assert result["s"] is True and name == "fleet.noop"
        else:
            assert failure["job"] == name and failure["tries"] == 1
            assert failure["error"].startswith(
                (f"InvalidPayload: invalid payload for job {name!r}: ", "NotFound: ")
            )
    assert wire.decode(await redis.get(keys.result_key_prefix + good))["s"] is True
