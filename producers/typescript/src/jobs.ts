/**
 * One job, checked and made ready for Redis or for the outbox: the same steps, in the same order,
 * as the Python producer's `prepare` (jobfleet/producer.py), so both languages refuse the same
 * jobs and write the same documents.
 */

import { randomUUID } from "node:crypto";

import { DEFS, JOBS, WIRE, type JobName, type Payloads, type TraceContext } from "./catalog.generated.js";
import { InvalidJob, InvalidPayload, UnknownJob } from "./errors.js";
import { charCount, check, isWellFormed, type Problem } from "./schema.js";

export interface EnqueueOptions {
  /**
   * Idempotency key (an id: a message id, a session id; at most 200 characters). The job id becomes
   * `{job}:{key}`, and while that job is queued, running or its result kept, enqueueing the same key
   * again returns the same id and adds nothing.
   */
  key?: string | undefined;
  /** Run at this time. */
  deferUntil?: Date | undefined;
  /** Run after this many seconds (like the Python producer's `defer_by`; fractions allowed). */
  deferBy?: number | undefined;
  /**
   * W3C `traceparent` of the request that enqueues the job, written to the job as `tc` (left out,
   * not refused, when it is not a valid traceparent).
   */
  traceparent?: string | undefined;
  /** W3C `tracestate`, with `traceparent` only. */
  tracestate?: string | undefined;
}

type EmptyPayload = Record<string, never>;

/** `enqueue(job, payload, options)`: the payload may be left out when the job's model needs nothing. */
export type PayloadArgs<J extends JobName> = EmptyPayload extends Payloads[J]
  ? [payload?: Payloads[J], options?: EnqueueOptions]
  : [payload: Payloads[J], options?: EnqueueOptions];

/** One job of `enqueueMany`. */
export type Job = {
  [J in JobName]: { name: J } & (EmptyPayload extends Payloads[J]
    ? { payload?: Payloads[J] }
    : { payload: Payloads[J] }) &
    EnqueueOptions;
}[JobName];

export interface PreparedJob {
  name: JobName;
  queue: string;
  jobId: string;
  /** null: no key */
  key: string | null;
  /** the payload as the job's model dumps it */
  payload: Record<string, unknown>;
  traceContext: TraceContext | undefined;
  /** the job document, JSON */
  document: string;
  /** time to run, ms since the epoch */
  scoreMs: number;
  /** whether a deferral was asked for (the outbox leaves run_at NULL otherwise) */
  deferred: boolean;
}

export function spec(name: string): { queue: string; payload: string } {
  if (!Object.hasOwn(JOBS, name)) throw new UnknownJob(name, Object.keys(JOBS));
  return JOBS[name as JobName];
}

/** The payload as the job's model dumps it, or InvalidPayload naming each bad field. */
export function validatePayload(name: string, payload: unknown): Record<string, unknown> {
  const schema = DEFS[spec(name).payload];
  if (!schema) throw new Error(`catalog.generated.ts has no schema for job ${name}: regenerate it`);
  const problems: Problem[] = [];
  const result = check(schema, payload ?? {}, DEFS, "", problems);
  if (problems.length > 0) throw new InvalidPayload(name, problems);
  return result as Record<string, unknown>;
}

function checkKey(name: string, key: string | undefined): void {
  if (key === undefined) return;
  if (typeof key !== "string") throw new InvalidJob(`key for job ${JSON.stringify(name)} must be a string`);
  const length = charCount(key);
  if (length > WIRE.maxKeyChars) {
    throw new InvalidJob(
      `key for job ${JSON.stringify(name)} is ${length} characters; the limit is ${WIRE.maxKeyChars}: a key is an id`,
    );
  }
  if (!isWellFormed(key)) {
    throw new InvalidJob(`key for job ${JSON.stringify(name)} is not valid text: it holds a lone surrogate`);
  }
}

export function jobIdFor(name: string, key: string | undefined): string {
  return key ? `${name}:${key}` : randomUUID().replaceAll("-", "");
}

/**
 * The trace context to write as `tc`, or none. A traceparent that is not W3C's is left out rather
 * than refused: a broken trace context must not cost the job (jobfleet.wire.trace_context, which
 * the workers read it with, drops what it cannot use the same way).
 */
export function traceContext(options: EnqueueOptions): TraceContext | undefined {
  const fits = (value: object) => {
    const problems: Problem[] = [];
    check({ $ref: "#/$defs/TraceContext" }, value, DEFS, "", problems);
    return problems.length === 0;
  };
  const { traceparent, tracestate } = options;
  if (traceparent === undefined || !fits({ traceparent })) return undefined;
  return tracestate !== undefined && fits({ traceparent, tracestate }) ? { traceparent, tracestate } : { traceparent };
}

function scoreMs(nowMs: number, options: EnqueueOptions): number {
  const { deferUntil, deferBy } = options;
  if (deferUntil !== undefined && deferBy !== undefined) throw new InvalidJob("give deferUntil or deferBy, not both");
  if (deferUntil !== undefined) {
    if (!(deferUntil instanceof Date) || Number.isNaN(deferUntil.getTime())) {
      throw new InvalidJob("deferUntil must be a valid Date");
    }
    return deferUntil.getTime();
  }
  if (deferBy !== undefined) {
    if (typeof deferBy !== "number" || !Number.isFinite(deferBy)) {
      throw new InvalidJob("deferBy must be a finite number of seconds");
    }
    return nowMs + Math.trunc(deferBy * 1000);
  }
  return nowMs;
}

export function prepare(name: string, payload: unknown, options: EnqueueOptions, nowMs: number): PreparedJob {
  const { queue } = spec(name);
  const dumped = validatePayload(name, payload);
  checkKey(name, options.key);
  const tc = traceContext(options);
  const jobId = jobIdFor(name, options.key);
  const document = JSON.stringify({ t: null, f: name, a: [], k: dumped, et: nowMs, ...(tc && { tc }) });
  const bytes = Buffer.byteLength(document);
  if (bytes > WIRE.maxJobBytes) {
    throw new InvalidJob(
      `payload for job ${JSON.stringify(name)} is ${bytes} bytes; the limit is ${WIRE.maxJobBytes}: a job carries ids, not documents`,
    );
  }
  return {
    name: name as JobName,
    queue,
    jobId,
    key: options.key || null,
    payload: dumped,
    traceContext: tc,
    document,
    scoreMs: scoreMs(nowMs, options),
    deferred: options.deferUntil !== undefined || options.deferBy !== undefined,
  };
}

/** KEYS and ARGV of the enqueue script (the Python producer's `prepare` returns the same lists). */
export function enqueueArgs(job: PreparedJob, nowMs: number): (string | number)[] {
  const expiresMs = Math.max(job.scoreMs - nowMs, 0) + WIRE.expiresExtraMs;
  return [
    WIRE.keyPrefixes.job + job.jobId,
    WIRE.keyPrefixes.result + job.jobId,
    job.queue,
    job.document,
    expiresMs,
    job.scoreMs,
    job.jobId,
  ];
}
