// Behind Redis Sentinel, and the durable mode: a private master, a replica and a Sentinel on
// loopback (like tests/chaos/servers.py's SentinelGroup); the shared Redis is never touched here.

import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { after, before, describe, it } from "node:test";

import { NotReplicated, parseTarget, Producer, RedisTargetError } from "../src/index.js";
import { SentinelGroup } from "./support/redis.js";
import { PYTHON_BIN, REPO_DIR, waitFor } from "./support/servers.js";

describe("Redis targets, as the Python side reads them", () => {
  const urls: [string, { sentinels?: string; master?: string }][] = [
    ["redis://127.0.0.1:6379/3", {}],
    ["redis+sentinel://s1:26380,s2,[::1]:26381/mymaster/2", {}],
    ["redis+sentinel://:p%40ss@s1:26379/mymaster", {}],
    ["redis+sentinel://user:pa:ss@s1:26379/my%20master/0", {}],
    ["redis://:secret@ignored:6379/4", { sentinels: "a:1,b:2", master: "m" }],
  ];

  it("parses every form to the same target", () => {
    const python = spawnSync(
      PYTHON_BIN,
      [
        "-c",
        `
import json, sys
from jobfleet.redis_target import RedisTarget
out = []
for url, options in json.load(sys.stdin):
    t = RedisTarget.parse(url, **options)
    out.append({"url": t.url, "sentinels": [{"host": h, "port": p} for h, p in t.sentinels],
                "master": t.master, "db": t.db, "username": t.username, "password": t.password})
print(json.dumps(out))
`,
      ],
      { cwd: REPO_DIR, input: JSON.stringify(urls), encoding: "utf8" },
    );
    assert.equal(python.status, 0, python.stderr);
    const expected = JSON.parse(python.stdout) as Record<string, unknown>[];
    urls.forEach(([url, options], i) => {
      const ours = parseTarget(url, options);
      const e = expected[i]!;
      assert.deepEqual(
        {
          url: ours.url ?? null,
          sentinels: ours.sentinels,
          master: ours.master ?? null,
          db: ours.db,
          username: ours.username ?? null,
          password: ours.password ?? null,
        },
        e.url ? { ...e, db: 0 } : e, // a plain URL's database is ioredis' to read
        url,
      );
    });
  });

  it("refuses what it cannot use, in one line", () => {
    assert.throws(() => parseTarget("redis+sentinel://s1:26379"), /names no master/);
    assert.throws(() => parseTarget("redis+sentinel://s1:port/m"), /port that is not a number/);
    assert.throws(() => parseTarget("redis+sentinel:///m"), RedisTargetError);
    assert.throws(() => parseTarget("redis://h/0", { master: "m" }), /needs both/);
  });
});

describe("behind Sentinel", () => {
  const group = new SentinelGroup();

  before(() => group.start(1));
  after(() => group.stop());

  it("enqueues through the master Sentinel names, durably: the replica holds the job", async () => {
    const producer = Producer.fromUrl(group.url(), { durableReplicas: 1 });
    const replica = group.client(group.ports[1]!);
    try {
      const jobId = await producer.enqueue("fleet.noop", {}, { key: "durable" });
      assert.notEqual(await replica.get(`arq:job:${jobId}`), null);
      assert.deepEqual(await producer.enqueueMany([{ name: "fleet.noop", key: "many" }]), ["fleet.noop:many"]);
      assert.notEqual(await replica.zscore("jobfleet:queue:default", "fleet.noop:many"), null);
    } finally {
      replica.disconnect();
      await producer.close();
    }
  });

  it("says NotReplicated when too few replicas confirm, and the same key then adds nothing", async () => {
    const producer = Producer.fromUrl(group.url(), { durableReplicas: 2, durableTimeoutS: 0.2 });
    const master = group.client(group.ports[0]!);
    try {
      await assert.rejects(
        producer.enqueue("fleet.noop", {}, { key: "two-replicas" }),
        (e: unknown) =>
          e instanceof NotReplicated &&
          e.message ===
            'job "fleet.noop:two-replicas" reached the Redis master but 1 of 2 replica(s) confirmed within 0.2 s: a failover now could lose it; enqueue again with the same key',
      );
      const document = await master.get("arq:job:fleet.noop:two-replicas");
      assert.notEqual(document, null);
      await assert.rejects(producer.enqueue("fleet.noop", {}, { key: "two-replicas" }), NotReplicated);
      assert.equal(await master.get("arq:job:fleet.noop:two-replicas"), document);
    } finally {
      master.disconnect();
      await producer.close();
    }
  });

  it("follows a failover to the promoted replica", async () => {
    const producer = Producer.fromUrl(group.url(), { redis: { maxRetriesPerRequest: 20 } });
    try {
      await producer.enqueue("fleet.noop", {}, { key: "before" });
      group.kill(group.ports[0]!);
      // the Sentinel promotes the replica after down-after-milliseconds; until then calls fail
      const jobId = await waitFor(
        "an enqueue on the promoted replica",
        () => producer.enqueue("fleet.noop", {}, { key: "after" }).catch(() => undefined),
        30_000,
      );
      const promoted = group.client(group.ports[1]!);
      try {
        assert.equal((await promoted.info("replication")).includes("role:master"), true);
        assert.notEqual(await promoted.get(`arq:job:${jobId}`), null);
        assert.notEqual(await promoted.get("arq:job:fleet.noop:before"), null);
      } finally {
        promoted.disconnect();
      }
    } finally {
      await producer.close();
    }
  });
});
