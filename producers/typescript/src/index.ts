export { Producer, type DurableOptions, type ProducerOptions } from "./producer.js";
export { enqueueInTransaction, outboxJobId, outboxRow, type OutboxRow, type TransactionSql } from "./outbox.js";
export { validatePayload, type EnqueueOptions, type Job, type PayloadArgs } from "./jobs.js";
export {
  InvalidJob,
  InvalidPayload,
  JobfleetError,
  NotReplicated,
  ProducerUnavailable,
  RedisTargetError,
  UnknownJob,
} from "./errors.js";
export { parseTarget, type SentinelOptions, type Target } from "./target.js";
export type { Problem } from "./schema.js";
export * from "./catalog.generated.js";
