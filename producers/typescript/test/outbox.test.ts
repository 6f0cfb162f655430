// enqueueInTransaction: the outbox row goes through the caller's postgres.js transaction, so a
// rolled-back transaction never becomes a job and a committed one does (through the fleet's relay,
// which runs in every `jobfleet worker` process).

import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { after, before, beforeEach, describe, it } from "node:test";

import { enqueueInTransaction, InvalidJob, InvalidPayload, JobfleetError, outboxRow, Producer } from "../src/index.js";
import {
  databases,
  postgres,
  Redis,
  seedMessage,
  startWorker,
  waitFor,
  type Databases,
  type Worker,
} from "./support/servers.js";

const TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

class Rollback extends Error {}

interface OutboxRecord {
  id: string;
  job: string;
  payload: unknown;
  job_key: string | null;
  run_at: Date | null;
  trace_context: unknown;
}

describe("enqueueInTransaction", () => {
  let dbs: Databases;
  let sql: postgres.Sql;
  let redis: Redis;

  before(async () => {
    dbs = await databases();
    sql = postgres(dbs.pgDsn, { max: 4, onnotice: () => {} });
    redis = new Redis(dbs.redisUrl);
  });
  after(async () => {
    redis?.disconnect();
    await sql?.end();
    await dbs?.close();
  });

  /** Roll the transaction back after `work`. */
  const rolledBack = (work: (tx: postgres.TransactionSql) => Promise<unknown>) =>
    assert.rejects(
      sql.begin(async (tx) => {
        await work(tx);
        throw new Rollback();
      }),
      Rollback,
    );

  describe("the outbox row", () => {
    beforeEach(async () => {
      await sql`DELETE FROM job_outbox`;
    });

    it("is written in the caller's transaction, with the job id the relay will give it", async () => {
      const messageId = randomUUID();
      const runAt = new Date(Date.now() + 3600_000);
      const jobId = await sql.begin((tx) =>
        enqueueInTransaction(
          tx,
          "messages.deliver",
          { message_id: messageId.toUpperCase() },
          {
            key: messageId,
            deferUntil: runAt,
            traceparent: TRACEPARENT,
            tracestate: "congo=t61rcWkgMzE",
          },
        ),
      );
      assert.equal(jobId, `messages.deliver:${messageId}`);
      const rows = await sql<OutboxRecord[]>`SELECT id, job, payload, job_key, run_at, trace_context FROM job_outbox`;
      assert.equal(rows.length, 1);
      const { id, ...row } = rows[0]!;
      assert.deepEqual(row, {
        job: "messages.deliver",
        payload: { message_id: messageId },
        job_key: messageId,
        run_at: runAt,
        trace_context: { traceparent: TRACEPARENT, tracestate: "congo=t61rcWkgMzE" },
      });

      // without a key the id comes from the row; without a deferral run_at stays NULL (at once)
      const keyless = await sql.begin((tx) => enqueueInTransaction(tx, "telemetry.purge"));
      const [second] = await sql<OutboxRecord[]>`SELECT * FROM job_outbox WHERE id <> ${id}`;
      assert.equal(keyless, `telemetry.purge:outbox-${second!.id}`);
      assert.deepEqual(
        [second!.payload, second!.job_key, second!.run_at, second!.trace_context],
        [{ policy: null }, null, null, null],
      );
    });

    it("vanishes with a rolled-back transaction", async () => {
      await rolledBack((tx) => enqueueInTransaction(tx, "fleet.noop", {}, { key: "never" }));
      assert.equal((await sql`SELECT id FROM job_outbox`).length, 0);
    });

    it("is validated before the insert, leaving the transaction usable", async () => {
      await sql.begin(async (tx) => {
        await assert.rejects(
          enqueueInTransaction(tx, "messages.deliver", { message_id: "nope" }),
          (e: unknown) => e instanceof InvalidPayload && e.fields.join() === "message_id",
        );
        await assert.rejects(enqueueInTransaction(tx, "fleet.noop", {}, { key: "k".repeat(201) }), InvalidJob);
        await assert.rejects(
          enqueueInTransaction(tx, "fleet.noop", {}, { deferBy: 1, deferUntil: new Date() }),
          InvalidJob,
        );
        await enqueueInTransaction(tx, "fleet.noop", {}, { key: "after-the-refusals" });
      });
      assert.deepEqual(
        (await sql`SELECT job_key FROM job_outbox`).map((r) => r.job_key),
        ["after-the-refusals"],
      );
    });

    it("needs a transaction: plain sql would commit the row on its own", async () => {
      await assert.rejects(
        enqueueInTransaction(sql as unknown as postgres.TransactionSql, "fleet.noop"),
        /needs the transaction of sql.begin/,
      );
      assert.equal((await sql`SELECT id FROM job_outbox`).length, 0);
    });

    it("says so where the database has no job_outbox table", async () => {
      await rolledBack(async (tx) => {
        await tx`DROP TABLE job_outbox`;
        await assert.rejects(
          enqueueInTransaction(tx, "fleet.noop"),
          (e: unknown) =>
            e instanceof JobfleetError && /no job_outbox table \(PinTeach migration 0080\)/.test(e.message),
        );
      });
    });

    it("can be inserted by the caller's own query builder", () => {
      const at = new Date("2030-01-02T03:04:05Z");
      assert.deepEqual(outboxRow("fleet.sleep", { ms: 5 }, { key: "k", deferUntil: at }), {
        job: "fleet.sleep",
        payload: { ms: 5 },
        job_key: "k",
        run_at: at,
        trace_context: null,
      });
      assert.throws(() => outboxRow("fleet.sleep", { ms: -5 }), InvalidPayload);
    });
  });

  describe("with the relay of a running worker", () => {
    let worker: Worker;
    let producer: Producer;

    before(() => {
      worker = startWorker(dbs.env);
      producer = Producer.fromUrl(dbs.redisUrl);
    });
    after(async () => {
      await worker?.stop();
      await producer?.close();
    });

    const result = (jobId: string) =>
      waitFor(
        () =>
          `a result for ${jobId}: the committed outbox row did not become a job (is the outbox relay ` +
          `of issue 11 part 1 in this build? worker output: ${worker.output().slice(-2000)})`,
        async () => {
          const raw = await redis.get(`arq:result:${jobId}`);
          return raw === null ? undefined : (JSON.parse(raw) as { s: boolean; r: unknown });
        },
        60_000,
      );

    it("runs the job of a committed transaction, never that of a rolled-back one", async () => {
      // the backend's own write and its job, in one transaction each
      const book = (tx: postgres.TransactionSql) =>
        seedMessage(tx).then((messageId) =>
          enqueueInTransaction(
            tx,
            "messages.deliver",
            { message_id: messageId },
            { key: messageId, traceparent: TRACEPARENT },
          ),
        );
      let rolledBackJob = "";
      await rolledBack(async (tx) => {
        rolledBackJob = await book(tx);
      });
      const committedJob = await sql.begin(book);

      const outcome = await result(committedJob);
      assert.equal(outcome.s, true, JSON.stringify(outcome.r));
      assert.deepEqual(outcome.r, { delivered: 1 });
      const messageId = committedJob.slice("messages.deliver:".length);
      const [message] = await sql`SELECT status FROM scheduled_messages WHERE id = ${messageId}`;
      assert.equal(message!.status, "sent");

      // relayed after the rolled-back one would have been: it left no trace in Redis
      for (const prefix of ["arq:job:", "arq:result:", "arq:in-progress:"]) {
        assert.equal(await redis.exists(prefix + rolledBackJob), 0, prefix + rolledBackJob);
      }
      assert.equal((await sql`SELECT id FROM job_outbox`).length, 0, "relayed rows are deleted");
    });

    it("carries the deferral and the trace context into the job", async () => {
      const runAt = new Date(Date.now() + 3600_000);
      const options = {
        key: randomUUID(),
        deferUntil: runAt,
        traceparent: TRACEPARENT,
        tracestate: "congo=t61rcWkgMzE",
      };
      const jobId = await sql.begin((tx) => enqueueInTransaction(tx, "fleet.sleep", { ms: 1 }, options));
      const raw = await waitFor("the relayed job", async () => (await redis.get(`arq:job:${jobId}`)) ?? undefined);
      const document = JSON.parse(raw);
      assert.deepEqual(
        [document.f, document.k, document.tc],
        ["fleet.sleep", { ms: 1 }, { traceparent: TRACEPARENT, tracestate: "congo=t61rcWkgMzE" }],
      );
      assert.equal(Number(await redis.zscore("jobfleet:queue:default", jobId)), runAt.getTime());
      assert.equal(await producer.cancel(jobId), true);
    });

    it("makes one job of a key enqueued through the outbox and directly", async () => {
      const key = randomUUID();
      const direct = await producer.enqueue("fleet.sleep", { ms: 1 }, { key, deferBy: 3600 });
      const relayed = await sql.begin((tx) => enqueueInTransaction(tx, "fleet.sleep", { ms: 1 }, { key }));
      assert.equal(relayed, direct);
      await waitFor("the relay to take the row", async () =>
        (await sql`SELECT id FROM job_outbox`).length === 0 ? true : undefined,
      );
      assert.equal(await redis.zcount("jobfleet:queue:default", "-inf", "+inf"), 1);
      assert.ok(
        Number(await redis.zscore("jobfleet:queue:default", direct)) > Date.now() + 3000_000,
        "the first job stays",
      );
    });
  });
});
