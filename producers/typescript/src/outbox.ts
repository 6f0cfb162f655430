/**
 * Enqueue inside the backend's own PostgreSQL transaction: the job becomes a row of `job_outbox`
 * (PinTeach migration 0080), committed or rolled back with the rest of the transaction; the fleet's
 * relay turns each committed row into exactly one job. No Redis call is made here.
 *
 *   await sql.begin(async (tx) => {
 *     const [message] = await tx`INSERT INTO scheduled_messages ... RETURNING id, scheduled_for`;
 *     await enqueueInTransaction(tx, "messages.deliver", { message_id: message.id },
 *                                { key: message.id, deferUntil: message.scheduled_for });
 *   });
 */

import type { JSONValue, TransactionSql } from "postgres";

import type { JobName, TraceContext } from "./catalog.generated.js";
import { InvalidJob, JobfleetError } from "./errors.js";
import { prepare, type EnqueueOptions, type PayloadArgs } from "./jobs.js";

export type { TransactionSql };

/** The columns of one `job_outbox` row. */
export interface OutboxRow {
  job: JobName;
  payload: Record<string, unknown>;
  job_key: string | null;
  run_at: Date | null;
  trace_context: TraceContext | null;
}

/**
 * The outbox row for a job, validated exactly as `enqueue` validates (UnknownJob, InvalidPayload,
 * InvalidJob), for callers that insert it themselves, e.g. with Drizzle:
 * `await tx.insert(jobOutbox).values(outboxRow("messages.deliver", { message_id }, { key: message_id }))`.
 */
export function outboxRow(name: string, payload: unknown, options: EnqueueOptions = {}): OutboxRow {
  const job = prepare(name, payload, options, Date.now());
  return {
    job: job.name,
    payload: job.payload,
    job_key: job.key,
    run_at: job.deferred ? new Date(job.scoreMs) : null,
    trace_context: job.traceContext ?? null,
  };
}

/** The id the relay gives the job of an outbox row: `{job}:{job_key}`, else `{job}:outbox-{row id}`. */
export function outboxJobId(row: Pick<OutboxRow, "job" | "job_key">, rowId: string | number | bigint): string {
  return row.job_key ? `${row.job}:${row.job_key}` : `${row.job}:outbox-${rowId}`;
}

const UNDEFINED_TABLE = "42P01";

/**
 * Write the job's outbox row through the caller's transaction (`sql.begin(async (tx) => ...)`) and
 * return the id the job will have. Nothing reaches Redis: after commit the fleet's relay enqueues
 * the job; after a rollback there is no row and never a job.
 */
export async function enqueueInTransaction<J extends JobName>(
  tx: TransactionSql,
  name: J,
  ...[payload, options]: PayloadArgs<J>
): Promise<string> {
  if (typeof (tx as { savepoint?: unknown }).savepoint !== "function") {
    // A plain `sql` would commit the row on its own, which is the dual write this exists to avoid.
    throw new InvalidJob("enqueueInTransaction needs the transaction of sql.begin(async (tx) => ...), not sql");
  }
  const row = outboxRow(name, payload, options);
  const traceContext = row.trace_context === null ? null : tx.json(row.trace_context as unknown as JSONValue);
  let inserted: { id: string }[];
  try {
    inserted = await tx<{ id: string }[]>`
      INSERT INTO job_outbox (job, payload, job_key, run_at, trace_context)
      VALUES (${row.job}, ${tx.json(row.payload as JSONValue)}, ${row.job_key}, ${row.run_at}, ${traceContext})
      RETURNING id`;
  } catch (error) {
    if ((error as { code?: string }).code === UNDEFINED_TABLE) {
      throw new JobfleetError(
        `job ${JSON.stringify(name)} was not enqueued: this database has no job_outbox table (PinTeach migration 0080)`,
        { cause: error },
      );
    }
    throw error;
  }
  const [first] = inserted;
  if (first === undefined) throw new JobfleetError("INSERT INTO job_outbox returned no row");
  return outboxJobId(row, first.id);
}
