// A Redis that goes away and comes back (a private server; the shared one is never stopped): the
// producer says so while it is away, and its next call after the restart reconnects by itself.

import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";

import { Producer, ProducerUnavailable } from "../src/index.js";
import { PrivateRedis } from "./support/redis.js";
import { Redis } from "./support/servers.js";

describe("a Redis restart", () => {
  const server = new PrivateRedis();
  before(() => server.start());
  after(() => server.remove());

  it("fails calls while Redis is away, and works again once it is back", async () => {
    const producer = Producer.fromUrl(server.url());
    try {
      assert.equal(await producer.enqueue("fleet.noop", {}, { key: "before" }), "fleet.noop:before");
      await server.stop();
      await assert.rejects(
        producer.enqueue("fleet.noop", {}, { key: "away" }),
        (e: unknown) => e instanceof ProducerUnavailable && /Redis is unreachable/.test(e.message),
      );
      await assert.rejects(producer.cancel("fleet.noop:before"), ProducerUnavailable);
      await server.start();
      // the first call after the restart: no error, no manual reconnect
      assert.equal(await producer.enqueue("fleet.noop", {}, { key: "after" }), "fleet.noop:after");
      const redis = new Redis(server.url());
      try {
        // the server kept no data: only the job enqueued after the restart is there
        assert.deepEqual(await redis.zrange("jobfleet:queue:default", 0, -1), ["fleet.noop:after"]);
      } finally {
        redis.disconnect();
      }
    } finally {
      await producer.close();
    }
  });
});
