// The producer against the real Redis: wire layout, queues, ids, idempotency, deferral, cancel,
// bulk, trace context, and the error when Redis does not take the job.

import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { createServer } from "node:net";
import { after, before, beforeEach, describe, it } from "node:test";

import { InvalidJob, InvalidPayload, Producer, ProducerUnavailable, UnknownJob, WIRE, type Job } from "../src/index.js";
import { databases, Redis, type Databases } from "./support/servers.js";

const TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

describe("producer", () => {
  let dbs: Databases;
  let redis: Redis;
  let producer: Producer;

  before(async () => {
    dbs = await databases();
    redis = new Redis(dbs.redisUrl);
    producer = Producer.fromUrl(dbs.redisUrl);
  });
  after(async () => {
    await producer.close();
    redis.disconnect();
    await dbs.close();
  });
  beforeEach(async () => {
    await redis.flushdb();
  });

  it("writes plain JSON in arq's layout to the job's queue", async () => {
    const messageId = randomUUID();
    const before = Date.now();
    const jobId = await producer.enqueue("messages.deliver", { message_id: messageId });
    assert.match(jobId, /^[0-9a-f]{32}$/);
    const raw = await redis.get(`arq:job:${jobId}`);
    assert.equal(
      raw,
      `{"t":null,"f":"messages.deliver","a":[],"k":{"message_id":"${messageId}"},"et":${JSON.parse(raw!).et}}`,
    );
    const et = JSON.parse(raw!).et as number;
    assert.ok(et >= before && et <= Date.now());
    assert.equal(Number(await redis.zscore("jobfleet:queue:default", jobId)), et);
    // expiry: run time plus arq's extra day
    const ttl = await redis.pttl(`arq:job:${jobId}`);
    assert.ok(ttl > WIRE.expiresExtraMs - 60_000 && ttl <= WIRE.expiresExtraMs, `ttl ${ttl}`);

    const sessionJob = await producer.enqueue("calendar.sync_session", { session_id: randomUUID() });
    assert.notEqual(await redis.zscore("jobfleet:queue:calendar", sessionJob), null);
    const sweep = await producer.enqueue("telemetry.purge");
    assert.notEqual(await redis.zscore("jobfleet:queue:sweeps", sweep), null);
    // the model's defaults are written, as pydantic dumps them
    assert.deepEqual(JSON.parse((await redis.get(`arq:job:${sweep}`))!).k, { policy: null });
  });

  it("writes UUIDs as the Python side dumps them", async () => {
    const id = "6F9619FF-8B86-D011-B42D-00C04FC964FF";
    const jobId = await producer.enqueue("messages.deliver", { message_id: id });
    assert.deepEqual(JSON.parse((await redis.get(`arq:job:${jobId}`))!).k, { message_id: id.toLowerCase() });
  });

  it("refuses a bad payload, naming the job and the field, before anything reaches Redis", async () => {
    await assert.rejects(
      producer.enqueue("messages.deliver", { message_id: "not-a-uuid" }),
      (e: unknown) =>
        e instanceof InvalidPayload &&
        e.job === "messages.deliver" &&
        e.fields.join() === "message_id" &&
        e.message === 'invalid payload for job "messages.deliver": message_id: must be a UUID',
    );
    const extra = { message_id: randomUUID(), extra_field: 1 } as unknown as { message_id: string };
    await assert.rejects(producer.enqueue("messages.deliver", extra), /extra_field: extra field not permitted/);
    await assert.rejects(
      producer.enqueue("messages.deliver", {} as { message_id: string }),
      /message_id: field required/,
    );
    await assert.rejects(producer.enqueue("fleet.sleep", { ms: 60_001 }), /ms: must be at most 60000/);
    await assert.rejects(producer.enqueue("fleet.sleep", { ms: 1.5 }), /ms: must be an integer, not number/);
    await assert.rejects(producer.enqueue("telemetry.purge", { policy: "x".repeat(101) }), /at most 100 characters/);
    await assert.rejects(
      producer.enqueue("messages.send" as "fleet.noop"),
      (e: unknown) =>
        e instanceof UnknownJob &&
        e.message.startsWith('unknown job "messages.send"; known jobs: calendar.sync_pending'),
    );
    assert.equal(await redis.dbsize(), 0);
  });

  it("refuses keys over 200 characters (as Python counts them) and an unusable deferral", async () => {
    const messageId = randomUUID();
    const payload = { message_id: messageId };
    await assert.rejects(producer.enqueue("messages.deliver", payload, { key: "k".repeat(201) }), (e: unknown) => {
      return e instanceof InvalidJob && /is 201 characters; the limit is 200: a key is an id/.test(e.message);
    });
    // 200 code points, 400 UTF-16 units: accepted, as in Python
    assert.equal(
      await producer.enqueue("messages.deliver", payload, { key: "😀".repeat(200) }),
      `messages.deliver:${"😀".repeat(200)}`,
    );
    await assert.rejects(producer.enqueue("messages.deliver", payload, { key: "\ud800" }), /not valid text/);
    const both = { deferUntil: new Date(), deferBy: 5 };
    await assert.rejects(producer.enqueue("messages.deliver", payload, both), /give deferUntil or deferBy, not both/);
    await assert.rejects(producer.enqueue("messages.deliver", payload, { deferUntil: new Date("nope") }), /valid Date/);
    await assert.rejects(
      producer.enqueue("messages.deliver", payload, { deferBy: Number.NaN }),
      /finite number of seconds/,
    );
    assert.equal(await redis.zcard("jobfleet:queue:default"), 1);
  });

  it("makes one job per key while it is queued, running or its result kept", async () => {
    const messageId = randomUUID();
    const first = await producer.enqueue("messages.deliver", { message_id: messageId }, { key: messageId });
    const second = await producer.enqueue("messages.deliver", { message_id: messageId }, { key: messageId });
    assert.equal(first, `messages.deliver:${messageId}`);
    assert.equal(second, first);
    assert.equal(await redis.zcard("jobfleet:queue:default"), 1);

    // finished, its result kept: still one job
    const done = randomUUID();
    const jobId = `messages.deliver:${done}`;
    await redis.set(`arq:result:${jobId}`, "{}");
    assert.equal(await producer.enqueue("messages.deliver", { message_id: done }, { key: done }), jobId);
    assert.equal(await redis.exists(`arq:job:${jobId}`), 0);
    assert.equal(await redis.zscore("jobfleet:queue:default", jobId), null);
  });

  it("defers until a time or by seconds, and cancel frees the key", async () => {
    const messageId = randomUUID();
    const at = new Date(Date.now() + 2 * 3600_000);
    const jobId = await producer.enqueue(
      "messages.deliver",
      { message_id: messageId },
      { key: messageId, deferUntil: at },
    );
    assert.equal(Number(await redis.zscore("jobfleet:queue:default", jobId)), at.getTime());
    const ttl = await redis.pttl(`arq:job:${jobId}`);
    assert.ok(ttl > 2 * 3600_000 + WIRE.expiresExtraMs - 60_000, `ttl ${ttl}`);

    assert.equal(await producer.cancel(jobId), true);
    assert.equal(await redis.exists(`arq:job:${jobId}`), 0);
    assert.equal(await producer.cancel(jobId), false);

    const later = new Date(at.getTime() + 86_400_000);
    const again = await producer.enqueue(
      "messages.deliver",
      { message_id: messageId },
      { key: messageId, deferUntil: later },
    );
    assert.equal(again, jobId);
    assert.equal(Number(await redis.zscore("jobfleet:queue:default", jobId)), later.getTime());

    const byId = await producer.enqueue("fleet.noop", {}, { deferBy: 90.5 });
    const et = JSON.parse((await redis.get(`arq:job:${byId}`))!).et as number;
    assert.equal(Number(await redis.zscore("jobfleet:queue:default", byId)), et + 90_500);
  });

  it("does not cancel a running job", async () => {
    const jobId = await producer.enqueue("fleet.noop");
    await redis.set(`arq:in-progress:${jobId}`, "1");
    assert.equal(await producer.cancel(jobId), false);
    assert.equal(await redis.exists(`arq:job:${jobId}`), 1);
  });

  it("enqueues many through one pipeline, after validating them all", async () => {
    const services = [randomUUID(), randomUUID(), randomUUID()];
    const jobs: Job[] = services.map((id) => ({ name: "waitlist.offer_next", payload: { service_id: id }, key: id }));
    const bad: Job[] = [...jobs, { name: "fleet.sleep", payload: { ms: -1 } }];
    await assert.rejects(producer.enqueueMany(bad), InvalidPayload);
    assert.equal(await redis.dbsize(), 0);

    const ids = await producer.enqueueMany([...jobs, { name: "fleet.noop", deferBy: 60 }]);
    assert.deepEqual(
      ids.slice(0, 3),
      services.map((id) => `waitlist.offer_next:${id}`),
    );
    assert.equal(await redis.zcard("jobfleet:queue:default"), 4);
    assert.deepEqual(await producer.enqueueMany(jobs), ids.slice(0, 3));
    assert.equal(await redis.zcard("jobfleet:queue:default"), 4);
    assert.deepEqual(await producer.enqueueMany([]), []);
  });

  it("writes a W3C trace context as tc, and leaves out one it cannot use", async () => {
    const tc = async (options: { traceparent?: string; tracestate?: string }) => {
      const jobId = await producer.enqueue("fleet.noop", {}, options);
      return JSON.parse((await redis.get(`arq:job:${jobId}`))!).tc as unknown;
    };
    assert.deepEqual(await tc({ traceparent: TRACEPARENT, tracestate: "congo=t61rcWkgMzE" }), {
      traceparent: TRACEPARENT,
      tracestate: "congo=t61rcWkgMzE",
    });
    assert.deepEqual(await tc({ traceparent: TRACEPARENT }), { traceparent: TRACEPARENT });
    assert.equal(await tc({}), undefined);
    // a broken trace context must not cost the job: the job is enqueued without it
    for (const traceparent of ["00-xyz", TRACEPARENT.toUpperCase(), `${TRACEPARENT}-00`]) {
      assert.equal(await tc({ traceparent, tracestate: "a=b" }), undefined);
    }
    assert.equal(await tc({ tracestate: "a=b" }), undefined);
    assert.equal(await redis.zcard("jobfleet:queue:default"), 7);
  });

  it("says so with ProducerUnavailable when Redis does not take the job", async () => {
    // a port nothing listens on: taken, then released
    const port = await new Promise<number>((done) => {
      const server = createServer().listen(0, "127.0.0.1", () => {
        const address = server.address() as { port: number };
        server.close(() => done(address.port));
      });
    });
    const away = Producer.fromUrl(`redis://127.0.0.1:${port}/0`);
    try {
      await assert.rejects(
        away.enqueue("fleet.noop"),
        (e: unknown) =>
          e instanceof ProducerUnavailable &&
          /^job "fleet.noop" was not enqueued: Redis is unreachable/.test(e.message),
      );
      await assert.rejects(
        away.enqueueMany([{ name: "fleet.noop" }]),
        /1 jobs were not enqueued: Redis is unreachable/,
      );
      await assert.rejects(away.cancel("fleet.noop:x"), /was not cancelled: Redis is unreachable/);
    } finally {
      await away.close();
    }
  });

  it("says so when Redis refuses the job", async () => {
    // a queue key of the wrong type: the script's ZADD is refused
    await redis.set("jobfleet:queue:calendar", "not a sorted set");
    await assert.rejects(
      producer.enqueue("calendar.sync_session", { session_id: randomUUID() }),
      (e: unknown) =>
        e instanceof ProducerUnavailable && /was not enqueued: Redis refused it \(.*WRONGTYPE/.test(e.message),
    );
  });
});
