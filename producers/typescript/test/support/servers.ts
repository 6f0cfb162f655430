/**
 * Real servers for the tests, the way tests/services.py does it for the Python suite: a PostgreSQL
 * database made for this run from the project's DDL (db/schema/pinteach.sql), one of Redis's
 * numbered databases claimed for the run, and jobfleet worker processes; all dropped at the end.
 */

import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

import { Redis } from "ioredis";
import postgres, { type Sql, type TransactionSql } from "postgres";

// dist/test/support/servers.js -> the package, then the repository two levels up
export const PACKAGE_DIR = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..", "..");
export const REPO_DIR = resolve(PACKAGE_DIR, "..", "..");
/** The `jobfleet` command of the repository's virtual environment. */
export const JOBFLEET_BIN = process.env.JOBFLEET_BIN ?? join(REPO_DIR, ".venv", "bin", "jobfleet");
export const PYTHON_BIN = process.env.JOBFLEET_PYTHON ?? join(REPO_DIR, ".venv", "bin", "python");

const PG_ADMIN = process.env.JOBFLEET_TEST_PG ?? "postgresql://postgres@127.0.0.1:5432/postgres";
const REDIS_BASE = process.env.JOBFLEET_TEST_REDIS ?? "redis://127.0.0.1:6379";
const RUN_ID = randomBytes(4).toString("hex");
const DEMO_REDIS_DB = 9;

export interface Databases {
  pgDsn: string;
  redisUrl: string;
  /** The environment of a jobfleet process using these databases. */
  env: NodeJS.ProcessEnv;
  close(): Promise<void>;
}

async function createPgDatabase(name: string): Promise<string> {
  const admin = postgres(PG_ADMIN, { max: 1, onnotice: () => {} });
  try {
    await admin.unsafe(`CREATE DATABASE "${name}"`);
  } finally {
    await admin.end();
  }
  const dsn = `${PG_ADMIN.slice(0, PG_ADMIN.lastIndexOf("/"))}/${name}`;
  const db = postgres(dsn, { max: 1, onnotice: () => {} });
  try {
    // the DDL as PinTeach's owners made it: many statements, run as one simple query
    await db.unsafe(readFileSync(join(REPO_DIR, "db", "schema", "pinteach.sql"), "utf8"));
  } finally {
    await db.end();
  }
  return dsn;
}

async function dropPgDatabase(name: string): Promise<void> {
  const admin = postgres(PG_ADMIN, { max: 1, onnotice: () => {} });
  try {
    await admin.unsafe(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
  } finally {
    await admin.end();
  }
}

/** Claim a numbered Redis database no other run holds (the protocol of tests/services.py). */
async function claimRedisDb(): Promise<number> {
  const admin = new Redis(`${REDIS_BASE}/0`);
  try {
    const [, count] = (await admin.config("GET", "databases")) as [string, string];
    for (let index = 1; index < Number(count); index++) {
      if (index === DEMO_REDIS_DB) continue;
      if (await admin.set(`jobfleet:test-claim:${index}`, RUN_ID, "EX", 3 * 3600, "NX")) {
        const db = new Redis(`${REDIS_BASE}/${index}`);
        await db.flushdb();
        db.disconnect();
        return index;
      }
    }
    throw new Error(`all Redis databases 1-${Number(count) - 1} are claimed by other test runs`);
  } finally {
    admin.disconnect();
  }
}

async function releaseRedisDb(index: number): Promise<void> {
  const admin = new Redis(`${REDIS_BASE}/0`);
  const db = new Redis(`${REDIS_BASE}/${index}`);
  try {
    await db.flushdb();
    if ((await admin.get(`jobfleet:test-claim:${index}`)) === RUN_ID) await admin.del(`jobfleet:test-claim:${index}`);
  } finally {
    db.disconnect();
    admin.disconnect();
  }
}

export async function databases(): Promise<Databases> {
  const pgName = `jf_ts_test_${RUN_ID}`;
  const pgDsn = await createPgDatabase(pgName);
  const index = await claimRedisDb();
  const redisUrl = `${REDIS_BASE}/${index}`;
  return {
    pgDsn,
    redisUrl,
    env: {
      ...process.env,
      JOBFLEET_REDIS_URL: redisUrl,
      JOBFLEET_PINTEACH_DSN: pgDsn,
      JOBFLEET_LOG_LEVEL: "WARNING",
    },
    async close() {
      await releaseRedisDb(index);
      await dropPgDatabase(pgName);
    },
  };
}

/** Run the jobfleet command line to completion. */
export function jobfleet(
  env: NodeJS.ProcessEnv,
  ...args: string[]
): { status: number | null; stdout: string; stderr: string } {
  const result = spawnSync(JOBFLEET_BIN, args, { env, encoding: "utf8", timeout: 60_000 });
  if (result.error) throw result.error;
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

export interface Worker {
  /** what the worker wrote so far (for a failing test's message) */
  output(): string;
  stop(): Promise<void>;
}

/** A real Python worker process (`jobfleet worker`) serving the given queues, without the scheduler. */
export function startWorker(env: NodeJS.ProcessEnv, queues: string[] = ["default"]): Worker {
  const args = ["worker", "--no-scheduler", ...queues.flatMap((q) => ["--queue", q])];
  const child: ChildProcess = spawn(JOBFLEET_BIN, args, { env, stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  child.stdout?.on("data", (chunk: Buffer) => (output += chunk.toString()));
  child.stderr?.on("data", (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<void>((done) => child.once("exit", () => done()));
  return {
    output: () => output,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), 30_000);
      await exited;
      clearTimeout(timer);
    },
  };
}

/** Poll `probe` until it returns a value other than undefined, or fail after `timeoutMs` (liveness only). */
export async function waitFor<T>(
  what: string | (() => string),
  probe: () => Promise<T | undefined>,
  timeoutMs = 30_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${typeof what === "string" ? what : what()}`);
    }
    await new Promise((done) => setTimeout(done, 50));
  }
}

/** A teacher, a student and a pending scheduled message due now; returns the message id. */
export async function seedMessage(db: Sql | TransactionSql, scheduledFor = new Date()): Promise<string> {
  const sql = db as Sql; // the same tagged template either way
  const n = randomBytes(4).toString("hex");
  const [teacher] = await sql<{ id: string }[]>`
    INSERT INTO teachers (email, name, slug, timezone)
    VALUES (${`teacher-${n}@example.com`}, ${`Teacher ${n}`}, ${`teacher-${n}`}, 'Europe/Oslo') RETURNING id`;
  const [student] = await sql<{ id: string }[]>`
    INSERT INTO students (teacher_id, email, name, timezone, status)
    VALUES (${teacher!.id}, ${`student-${n}@example.com`}, ${`Student ${n}`}, 'Europe/Oslo', 'active') RETURNING id`;
  const [message] = await sql<{ id: string }[]>`
    INSERT INTO scheduled_messages (teacher_id, student_id, channel, body, scheduled_for)
    VALUES (${teacher!.id}, ${student!.id}, 'email', 'See you on Tuesday', ${scheduledFor}) RETURNING id`;
  return message!.id;
}

export const sleep = (ms: number) => new Promise((done) => setTimeout(done, ms));

export { postgres, Redis };
