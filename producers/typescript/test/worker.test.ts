// A job enqueued from TypeScript runs in a real Python worker (`jobfleet worker`) against a
// PostgreSQL database made from PinTeach's DDL; the same key from both languages is one job.

import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { after, before, describe, it } from "node:test";

import { Producer } from "../src/index.js";
import {
  databases,
  jobfleet,
  postgres,
  Redis,
  seedMessage,
  startWorker,
  waitFor,
  type Databases,
  type Worker,
} from "./support/servers.js";

interface Result {
  s: boolean;
  r: unknown;
  f: string;
  k: Record<string, unknown>;
}

describe("a TypeScript job in a Python worker", () => {
  let dbs: Databases;
  let sql: postgres.Sql;
  let redis: Redis;
  let producer: Producer;
  let worker: Worker;

  before(async () => {
    dbs = await databases();
    sql = postgres(dbs.pgDsn, { max: 2, onnotice: () => {} });
    redis = new Redis(dbs.redisUrl);
    producer = Producer.fromUrl(dbs.redisUrl);
    worker = startWorker(dbs.env);
  });
  after(async () => {
    await worker?.stop();
    await producer?.close();
    redis?.disconnect();
    await sql?.end();
    await dbs?.close();
  });

  const result = (jobId: string) =>
    waitFor(
      () => `the result of ${jobId} (worker output: ${worker.output().slice(-2000)})`,
      async () => {
        const raw = await redis.get(`arq:result:${jobId}`);
        return raw === null ? undefined : (JSON.parse(raw) as Result);
      },
      60_000,
    );

  const delivered = async (messageId: string) => {
    const rows = await sql<{ status: string; contact_logs: number }[]>`
      SELECT m.status, (SELECT count(*)::int FROM contact_log c WHERE c.student_id = m.student_id) AS contact_logs
      FROM scheduled_messages m WHERE m.id = ${messageId}`;
    return rows[0];
  };

  it("delivers a scheduled message", async () => {
    const messageId = await seedMessage(sql);
    const jobId = await producer.enqueue("messages.deliver", { message_id: messageId }, { key: messageId });
    assert.equal(jobId, `messages.deliver:${messageId}`);

    const outcome = await result(jobId);
    assert.equal(outcome.s, true, JSON.stringify(outcome.r));
    assert.deepEqual(outcome.r, { delivered: 1 });
    assert.deepEqual(outcome.k, { message_id: messageId });
    assert.deepEqual(await delivered(messageId), { status: "sent", contact_logs: 1 });
  });

  it("refuses before Redis a payload the worker would record as failed", async () => {
    // the worker would record it as failed; the producer does not let it reach Redis at all
    await assert.rejects(producer.enqueue("fleet.sleep", { ms: 70_000 }), /ms: must be at most 60000/);
    assert.equal(await redis.zcard("jobfleet:queue:default"), 0);
  });

  for (const first of ["python", "typescript"] as const) {
    it(`makes one job of the same key from both languages (${first} first)`, async () => {
      const messageId = await seedMessage(sql);
      const payload = { message_id: messageId };
      // deferred by a minute, so that both enqueues meet a queued job
      const python = () => {
        const run = jobfleet(
          dbs.env,
          "enqueue",
          "messages.deliver",
          "--payload",
          JSON.stringify(payload),
          "--key",
          messageId,
          "--defer-by",
          "60",
        );
        assert.equal(run.status, 0, run.stderr);
        return run.stdout.trim();
      };
      const typescript = () => producer.enqueue("messages.deliver", payload, { key: messageId, deferBy: 60 });

      const ids = first === "python" ? [python(), await typescript()] : [await typescript(), python()];
      const jobId = `messages.deliver:${messageId}`;
      assert.deepEqual(ids, [jobId, jobId]);
      assert.equal(await redis.zcount("jobfleet:queue:default", "-inf", "+inf"), 1);
      const document = JSON.parse((await redis.get(`arq:job:${jobId}`))!);
      assert.deepEqual(document.k, payload);

      // bring it forward and let it run: one delivery
      await redis.zadd("jobfleet:queue:default", Date.now(), jobId);
      const outcome = await result(jobId);
      assert.deepEqual(outcome.r, { delivered: 1 });
      assert.deepEqual(await delivered(messageId), { status: "sent", contact_logs: 1 });
      // the result is kept: the key is still one job
      assert.equal(await producer.enqueue("messages.deliver", payload, { key: messageId }), jobId);
      assert.equal(python(), jobId);
      assert.equal(await redis.exists(`arq:job:${jobId}`), 0);
    });
  }

  it("runs many jobs enqueued in one pipeline", async () => {
    const keys = Array.from({ length: 20 }, () => randomUUID());
    const ids = await producer.enqueueMany(keys.map((id) => ({ name: "fleet.sleep", payload: { ms: 1 }, key: id })));
    for (const jobId of ids) assert.equal((await result(jobId)).s, true);
  });
});
