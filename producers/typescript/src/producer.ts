/**
 * The producer: validate a job against the catalog and put it in Redis in one atomic step, with
 * the Python producer's semantics (jobfleet/producer.py): the same job ids, documents, queues and
 * expiry, idempotency by key, and cancel of a job that has not started.
 *
 *   const producer = Producer.fromUrl("redis://127.0.0.1:6379/0");
 *   const id = await producer.enqueue("messages.deliver", { message_id: mid }, { key: mid, deferUntil: at });
 *   await producer.cancel(id);
 *   await producer.close();
 *
 * Behind Redis Sentinel: `Producer.fromUrl("redis+sentinel://h1:26379,h2:26379/mymaster/0")`. With
 * `durableReplicas: 1` an enqueue returns only once a replica holds the job (Redis `WAIT`): Redis
 * replicates asynchronously, so without it a job acknowledged just before a failover can vanish.
 */

import { Redis, type RedisOptions } from "ioredis";

import { WIRE, type JobName } from "./catalog.generated.js";
import { NotReplicated, ProducerUnavailable } from "./errors.js";
import { enqueueArgs, prepare, type Job, type PayloadArgs } from "./jobs.js";
import { enqueueInTransaction, type TransactionSql } from "./outbox.js";
import { parseTarget, sentinelOptions, type SentinelOptions } from "./target.js";

type Args = (string | number)[];

interface Scripts {
  jobfleetEnqueue(...args: Args): Promise<number>;
  jobfleetCancel(...args: Args): Promise<number>;
}

/** What an ioredis pipeline can queue for us. */
interface ScriptPipeline {
  jobfleetEnqueue(...args: Args): unknown;
}

export interface DurableOptions {
  /** replicas that must hold each job before an enqueue returns (0: do not wait) */
  durableReplicas?: number;
  /** how long to wait for them (seconds, default 1) */
  durableTimeoutS?: number;
}

export interface ProducerOptions extends DurableOptions, SentinelOptions {
  /** ioredis options over the producer's own (maxRetriesPerRequest 1, connectTimeout 5 s) */
  redis?: RedisOptions;
}

function unavailable(failure: string, error: unknown): ProducerUnavailable {
  const reason = error instanceof Error ? error.message : String(error);
  const refused = error instanceof Error && error.name === "ReplyError";
  return new ProducerUnavailable(`${failure}: ${refused ? "Redis refused it" : "Redis is unreachable"} (${reason})`, {
    cause: error,
  });
}

export class Producer {
  private readonly scripts: Redis & Scripts;
  readonly durableReplicas: number;
  readonly durableTimeoutS: number;

  /**
   * Use the given ioredis client (its options decide how long a call waits for a Redis that is
   * away; `fromUrl` picks short ones). The scripts are defined on it as `jobfleetEnqueue` and
   * `jobfleetCancel`.
   */
  constructor(
    readonly redis: Redis,
    { durableReplicas = 0, durableTimeoutS = 1 }: DurableOptions = {},
  ) {
    // The Python producer's own scripts (from the schema): one job, created only if neither a
    // queued/running job nor a kept result has its id; cancel of a job that has not started.
    redis.defineCommand("jobfleetEnqueue", { numberOfKeys: 3, lua: WIRE.scripts.enqueue });
    redis.defineCommand("jobfleetCancel", { numberOfKeys: 2 + WIRE.queues.length, lua: WIRE.scripts.cancel });
    this.scripts = redis as Redis & Scripts;
    this.durableReplicas = durableReplicas;
    this.durableTimeoutS = durableTimeoutS;
  }

  /**
   * A producer with its own connection, for a `redis://` or `redis+sentinel://` URL (or a plain URL
   * with `sentinels` and `master`). A call made while Redis is away fails with ProducerUnavailable
   * after one reconnect attempt, instead of waiting in ioredis' offline queue; after Redis is back,
   * the next call reconnects by itself.
   */
  static fromUrl(url: string, options: ProducerOptions = {}): Producer {
    const { redis: redisOptions = {}, sentinels, master, ...durable } = options;
    const target = parseTarget(url, { sentinels, master });
    const own: RedisOptions = { maxRetriesPerRequest: 1, connectTimeout: 5_000 };
    const redis = target.url
      ? new Redis(target.url, { ...own, ...redisOptions })
      : new Redis({ ...own, ...sentinelOptions(target), ...redisOptions });
    // Connection errors reach the caller as ProducerUnavailable on the call that needs Redis;
    // without a listener ioredis would also print each reconnect failure.
    redis.on("error", () => {});
    return new Producer(redis, durable);
  }

  async close(): Promise<void> {
    await this.redis.quit().catch(() => this.redis.disconnect());
  }

  /**
   * Enqueue one job and return its id (`{job}:{key}`, or random hex without a key). With a key, a
   * second enqueue while the first job is queued, running or its result kept returns the same id
   * and adds nothing. Throws UnknownJob, InvalidPayload or InvalidJob before anything reaches Redis,
   * ProducerUnavailable when Redis does not take the job (NotReplicated: durable, too few replicas).
   */
  async enqueue<J extends JobName>(name: J, ...[payload, options]: PayloadArgs<J>): Promise<string> {
    const nowMs = Date.now();
    const job = prepare(name, payload, options ?? {}, nowMs);
    const failure = `job ${JSON.stringify(name)} was not enqueued`;
    if (this.durableReplicas) {
      await this.pipelined([enqueueArgs(job, nowMs)], failure, `job ${JSON.stringify(job.jobId)}`);
      return job.jobId;
    }
    try {
      await this.scripts.jobfleetEnqueue(...enqueueArgs(job, nowMs));
    } catch (error) {
      throw unavailable(failure, error);
    }
    return job.jobId;
  }

  /** Validate every job first (nothing is sent if one is refused), then enqueue them all through one pipeline. */
  async enqueueMany(jobs: Iterable<Job>): Promise<string[]> {
    const nowMs = Date.now();
    const prepared = [...jobs].map(({ name, payload, ...options }) => prepare(name, payload, options, nowMs));
    if (prepared.length === 0) return [];
    const what = `${prepared.length} jobs`;
    await this.pipelined(
      prepared.map((job) => enqueueArgs(job, nowMs)),
      `${what} were not enqueued`,
      what,
    );
    return prepared.map((job) => job.jobId);
  }

  /**
   * Send the scripts in one pipeline; when durable, WAIT on the same connection (it counts the
   * replicas that acknowledged this connection's writes).
   */
  private async pipelined(calls: Args[], failure: string, what: string): Promise<void> {
    const pipeline = this.redis.pipeline();
    for (const args of calls) (pipeline as unknown as ScriptPipeline).jobfleetEnqueue(...args);
    const timeoutMs = Math.trunc(this.durableTimeoutS * 1000);
    if (this.durableReplicas) pipeline.call("WAIT", this.durableReplicas, timeoutMs);
    let replies: [Error | null, unknown][] | null;
    try {
      replies = await pipeline.exec();
    } catch (error) {
      throw unavailable(failure, error);
    }
    const error = replies === null ? new Error("the pipeline was discarded") : replies.find(([e]) => e)?.[0];
    if (error) throw unavailable(failure, error);
    const acked = Number(replies![calls.length]?.[1]);
    if (this.durableReplicas && acked < this.durableReplicas) {
      throw new NotReplicated(
        `${what} reached the Redis master but ${acked} of ${this.durableReplicas} replica(s) confirmed ` +
          `within ${this.durableTimeoutS} s: a failover now could lose it; enqueue again with the same key`,
      );
    }
  }

  /**
   * Cancel a job that has not started yet (a deferred one, typically): true if it was removed;
   * false if it is running, finished or unknown. After a cancel the same key can be enqueued anew.
   */
  async cancel(jobId: string): Promise<boolean> {
    const keys = [WIRE.keyPrefixes.inProgress + jobId, WIRE.keyPrefixes.job + jobId, ...WIRE.queues];
    try {
      return (await this.scripts.jobfleetCancel(...keys, jobId)) > 0;
    } catch (error) {
      throw unavailable(`job ${JSON.stringify(jobId)} was not cancelled`, error);
    }
  }

  /** {@link enqueueInTransaction}, for callers that hold a producer anyway. */
  enqueueInTransaction<J extends JobName>(tx: TransactionSql, name: J, ...args: PayloadArgs<J>): Promise<string> {
    return enqueueInTransaction(tx, name, ...args);
  }
}
