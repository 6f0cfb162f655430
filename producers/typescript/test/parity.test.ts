// Same semantics as the Python producer, checked against it: the same jobs and payloads go through
// jobfleet/producer.py's `prepare` and through ours, with the same clock; what one refuses the other
// refuses, and what both take gives the same Redis keys, document bytes, expiry and score.

import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { describe, it } from "node:test";

import { InvalidJob, InvalidPayload, UnknownJob } from "../src/errors.js";
import { enqueueArgs, prepare, traceContext, type EnqueueOptions } from "../src/jobs.js";
import { PYTHON_BIN, REPO_DIR } from "./support/servers.js";

interface Case {
  name: string;
  payload: unknown;
  key?: string;
  deferUntil?: string;
  deferBy?: number;
}

const PYTHON = `
import json, sys
from datetime import datetime
from redis.asyncio import Redis
from jobfleet.producer import Job, Producer

producer = Producer(Redis())
request = json.load(sys.stdin)
out = []
for case in request["cases"]:
    defer_until = datetime.fromisoformat(case["deferUntil"]) if case.get("deferUntil") else None
    job = Job(case["name"], case["payload"], case.get("key"), defer_until, case.get("deferBy"))
    try:
        keys, args, job_id = producer.prepare(job, request["now_ms"])
    except Exception as e:
        out.append({"error": type(e).__name__})
        continue
    document, expires_ms, score, job_id = args
    out.append({"call": [*keys, document.decode(), expires_ms, score, job_id]})
print(json.dumps(out))
`;

const UUID = "6f9619ff-8b86-d011-b42d-00c04fc964ff";

const CASES: Case[] = [
  { name: "messages.deliver", payload: { message_id: UUID }, key: UUID },
  { name: "messages.deliver", payload: { message_id: UUID.toUpperCase() }, key: "m1" },
  { name: "messages.deliver", payload: { message_id: UUID.replaceAll("-", "") }, key: "m2" },
  { name: "messages.deliver", payload: { message_id: `{${UUID}}` }, key: "m3" },
  { name: "messages.deliver", payload: { message_id: `urn:uuid:${UUID}` }, key: "m4" },
  { name: "messages.deliver", payload: { message_id: `${UUID.slice(0, 8)}${UUID.slice(9)}` }, key: "m5" },
  { name: "messages.deliver", payload: { message_id: ` ${UUID}` }, key: "m6" },
  { name: "messages.deliver", payload: { message_id: UUID.slice(0, 35) }, key: "m7" },
  { name: "messages.deliver", payload: { message_id: 5 }, key: "m8" },
  { name: "messages.deliver", payload: {}, key: "m9" },
  { name: "messages.deliver", payload: { message_id: UUID, other: 1 }, key: "m10" },
  { name: "messages.deliver", payload: { message_id: UUID }, key: "k".repeat(200) },
  { name: "messages.deliver", payload: { message_id: UUID }, key: "k".repeat(201) },
  { name: "messages.deliver", payload: { message_id: UUID }, key: "ø".repeat(200) },
  { name: "messages.deliver", payload: { message_id: UUID }, key: "ø".repeat(201) },
  { name: "messages.deliver", payload: { message_id: UUID }, key: "d1", deferUntil: "2030-01-02T03:04:05+00:00" },
  { name: "messages.deliver", payload: { message_id: UUID }, key: "d2", deferUntil: "2030-01-02T05:04:05+02:00" },
  { name: "messages.deliver", payload: { message_id: UUID }, key: "d3", deferUntil: "2001-01-01T00:00:00+00:00" },
  { name: "messages.deliver", payload: { message_id: UUID }, key: "d4", deferBy: 90.5 },
  { name: "messages.deliver", payload: { message_id: UUID }, key: "d5", deferBy: -3 },
  {
    name: "messages.deliver",
    payload: { message_id: UUID },
    key: "d6",
    deferBy: 5,
    deferUntil: "2030-01-02T03:04:05+00:00",
  },
  { name: "calendar.sync_session", payload: { session_id: UUID }, key: UUID },
  { name: "waitlist.offer_next", payload: { service_id: UUID }, key: UUID },
  { name: "gdpr.erase", payload: { request_id: UUID }, key: UUID },
  { name: "telemetry.purge", payload: {}, key: "t1" },
  { name: "telemetry.purge", payload: { policy: null }, key: "t2" },
  { name: "telemetry.purge", payload: { policy: "telemetry.events" }, key: "t3" },
  { name: "telemetry.purge", payload: { policy: "é".repeat(100) }, key: "t4" },
  { name: "telemetry.purge", payload: { policy: "é".repeat(101) }, key: "t5" },
  { name: "telemetry.purge", payload: { policy: 7 }, key: "t6" },
  { name: "telemetry.purge", payload: { policy: "\ud800" }, key: "t7" },
  { name: "telemetry.purge", payload: { policy: "😀" }, key: "\udc00" },
  { name: "fleet.sleep", payload: { ms: 0 }, key: "s1" },
  { name: "fleet.sleep", payload: { ms: 60000 }, key: "s2" },
  { name: "fleet.sleep", payload: { ms: 60001 }, key: "s3" },
  { name: "fleet.sleep", payload: { ms: -1 }, key: "s4" },
  { name: "fleet.sleep", payload: { ms: 2.5 }, key: "s5" },
  { name: "fleet.sleep", payload: { ms: null }, key: "s6" },
  { name: "fleet.noop", payload: {}, key: "n1" },
  { name: "fleet.noop", payload: { x: 1 }, key: "n2" },
  { name: "sessions.auto_complete", payload: {}, key: "2026-12-01T12:00" },
  { name: "messages.send", payload: {}, key: "u1" },
];

// Where pydantic's lax mode takes what JSON Schema describes as something else, the TypeScript
// side is stricter: these are refused here and taken there, and no other case may differ.
const STRICTER_HERE: Case[] = [
  { name: "fleet.sleep", payload: { ms: "5" }, key: "x1" },
  { name: "fleet.sleep", payload: { ms: true }, key: "x2" },
];

const ERROR_CLASSES: Record<string, string> = {
  [InvalidPayload.name]: "InvalidPayload",
  [UnknownJob.name]: "UnknownJob",
  [InvalidJob.name]: "ValueError",
};

function python(cases: Case[], nowMs: number): ({ call: (string | number)[] } | { error: string })[] {
  const result = spawnSync(PYTHON_BIN, ["-c", PYTHON], {
    cwd: REPO_DIR,
    input: JSON.stringify({ cases, now_ms: nowMs }),
    encoding: "utf8",
  });
  assert.equal(result.status, 0, result.stderr);
  return JSON.parse(result.stdout);
}

function typescript(c: Case, nowMs: number): { call: (string | number)[] } | { error: string } {
  const options: EnqueueOptions = { key: c.key, deferBy: c.deferBy };
  if (c.deferUntil) options.deferUntil = new Date(c.deferUntil);
  try {
    return { call: enqueueArgs(prepare(c.name, c.payload, options, nowMs), nowMs) };
  } catch (e) {
    const name = e instanceof Error ? e.constructor.name : String(e);
    return { error: ERROR_CLASSES[name] ?? name };
  }
}

describe("parity with the Python producer", () => {
  const nowMs = Date.now();

  it("refuses the same jobs and writes the same keys, documents, expiry and score", () => {
    const expected = python(CASES, nowMs);
    CASES.forEach((c, i) => {
      assert.deepEqual(typescript(c, nowMs), expected[i], `case ${i}: ${JSON.stringify(c).slice(0, 120)}`);
    });
  });

  it("is stricter only where pydantic coerces", () => {
    const expected = python(STRICTER_HERE, nowMs);
    STRICTER_HERE.forEach((c, i) => {
      assert.ok("call" in expected[i]!, `Python takes ${JSON.stringify(c.payload)}`);
      assert.deepEqual(typescript(c, nowMs), { error: "InvalidPayload" });
    });
  });

  it("makes random ids of 32 hex digits without a key, as uuid4().hex", () => {
    const [call] = python([{ name: "fleet.noop", payload: {} }], nowMs);
    const ours = typescript({ name: "fleet.noop", payload: {} }, nowMs);
    for (const result of [call!, ours]) {
      assert.ok("call" in result);
      assert.match(String(result.call[6]), /^[0-9a-f]{32}$/);
    }
  });
});

describe("trace context parity with the workers' reader (jobfleet.wire.trace_context)", () => {
  const TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
  const contexts: { traceparent?: string; tracestate?: string }[] = [
    { traceparent: TRACEPARENT },
    { traceparent: TRACEPARENT, tracestate: "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7" },
    { traceparent: TRACEPARENT, tracestate: "" },
    { traceparent: `01${TRACEPARENT.slice(2)}` },
    { traceparent: TRACEPARENT.toUpperCase() },
    { traceparent: `${TRACEPARENT}-00` },
    { traceparent: "00-xyz", tracestate: "a=b" },
    { tracestate: "a=b" },
    {},
  ];

  it("keeps and drops the same contexts", () => {
    const result = spawnSync(
      PYTHON_BIN,
      [
        "-c",
        "import json, sys\nfrom jobfleet import wire\nprint(json.dumps([wire.trace_context(c) for c in json.load(sys.stdin)]))",
      ],
      { cwd: REPO_DIR, input: JSON.stringify(contexts), encoding: "utf8" },
    );
    assert.equal(result.status, 0, result.stderr);
    const expected = JSON.parse(result.stdout) as unknown[];
    contexts.forEach((context, i) => {
      assert.deepEqual(traceContext(context) ?? null, expected[i], JSON.stringify(context));
    });
  });
});
