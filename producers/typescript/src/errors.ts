/** The errors the producer raises; every one says what was refused and why, in one line. */

import type { Problem } from "./schema.js";

export class JobfleetError extends Error {
  override name = "JobfleetError";
}

/** A job name the catalog does not have. */
export class UnknownJob extends JobfleetError {
  override name = "UnknownJob";
  constructor(
    readonly job: string,
    known: readonly string[],
  ) {
    super(`unknown job ${JSON.stringify(job)}; known jobs: ${[...known].sort().join(", ")}`);
  }
}

/** A payload that does not fit its job's model; names the job and each bad field. */
export class InvalidPayload extends JobfleetError {
  override name = "InvalidPayload";
  readonly fields: string[];
  constructor(
    readonly job: string,
    readonly problems: readonly Problem[],
  ) {
    const text = problems.map((p) => `${p.path || "(payload)"}: ${p.message}`).join("; ");
    super(`invalid payload for job ${JSON.stringify(job)}: ${text}`);
    this.fields = problems.map((p) => p.path);
  }
}

/** A key, a deferral or a trace context that cannot be used, or a document over the size limit. */
export class InvalidJob extends JobfleetError {
  override name = "InvalidJob";
}

/** Redis did not take the job (or the cancel): nothing changed, the caller must retry or fail. */
export class ProducerUnavailable extends JobfleetError {
  override name = "ProducerUnavailable";
}

/**
 * Durable enqueue: the master took the job but too few replicas confirmed it in time, so a failover
 * now could lose it. Enqueue again with the same key: that adds nothing if it is there.
 */
export class NotReplicated extends ProducerUnavailable {
  override name = "NotReplicated";
}

/** A Redis URL or Sentinel address that cannot be used; the message says what is wrong. */
export class RedisTargetError extends JobfleetError {
  override name = "RedisTargetError";
}
