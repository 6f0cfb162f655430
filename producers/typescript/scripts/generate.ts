/**
 * Generate src/catalog.generated.ts (payload types, the schemas the validator checks, each job's
 * queue, the wire constants) from schema/jobfleet.schema.json, the output of
 * `jobfleet jobs --json-schema`.
 *
 *   node dist/scripts/generate.js            write the file
 *   node dist/scripts/generate.js --check    exit 1 if the committed file is not what the schema gives
 *   ... --schema PATH                        read the schema from PATH ("-": standard input)
 */

import { readFileSync, writeFileSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";

import { SUPPORTED, type Schema } from "../src/schema.js";

interface JobEntry {
  queue: string;
  kind: string;
  payload: string;
  description: string;
}

interface CatalogSchema {
  $defs: Record<string, Schema>;
  "x-jobfleet": {
    jobs: Record<string, JobEntry>;
    queues: string[];
    key_prefixes: { job: string; result: string; in_progress: string };
    max_key_chars: number;
    max_job_bytes: number;
    expires_extra_ms: number;
    scripts: { enqueue: string; cancel: string };
  };
}

const PACKAGE_DIR = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
export const SCHEMA_FILE = join(PACKAGE_DIR, "schema", "jobfleet.schema.json");
export const OUTPUT_FILE = join(PACKAGE_DIR, "src", "catalog.generated.ts");

class UnsupportedSchema extends Error {}

/** Refuse any keyword the validator does not implement: it would pass unchecked. */
function assertSupported(schema: Schema, where: string): void {
  for (const keyword of Object.keys(schema)) {
    if (!SUPPORTED.has(keyword)) {
      throw new UnsupportedSchema(`${where}: keyword ${JSON.stringify(keyword)} is not supported by src/schema.ts`);
    }
  }
  if (schema.format !== undefined && schema.format !== "uuid") {
    throw new UnsupportedSchema(`${where}: format ${JSON.stringify(schema.format)} is not supported`);
  }
  for (const [name, property] of Object.entries(schema.properties ?? {})) {
    assertSupported(property, `${where}.properties.${name}`);
  }
  schema.anyOf?.forEach((branch, i) => assertSupported(branch, `${where}.anyOf[${i}]`));
  if (schema.items) assertSupported(schema.items, `${where}.items`);
}

const IDENTIFIER = /^[A-Za-z_$][A-Za-z0-9_$]*$/;
const propertyName = (name: string) => (IDENTIFIER.test(name) ? name : JSON.stringify(name));
const refName = (ref: string) => ref.replace("#/$defs/", "");

function tsType(schema: Schema, indent: string): string {
  if (schema.$ref) return refName(schema.$ref);
  if (schema.anyOf) return schema.anyOf.map((b) => tsType(b, indent)).join(" | ");
  if (schema.const !== undefined) return JSON.stringify(schema.const);
  if (schema.enum) return schema.enum.map((v) => JSON.stringify(v)).join(" | ");
  switch (schema.type) {
    case "string":
      return "string";
    case "integer":
    case "number":
      return "number";
    case "boolean":
      return "boolean";
    case "null":
      return "null";
    case "array":
      return schema.maxItems === 0 ? "[]" : `${tsType(schema.items ?? {}, indent)}[]`;
    case "object":
      return objectType(schema, indent);
    default:
      return "unknown";
  }
}

function doc(schema: Schema, indent: string): string {
  const notes = [schema.description, schema.format === "uuid" ? "a UUID" : undefined].filter(Boolean);
  // one line, and no "*/" that would end the comment early
  const text = notes.join("; ").replace(/\s+/g, " ").replaceAll("*/", "*\\/");
  return text ? `${indent}/** ${text} */\n` : "";
}

function objectType(schema: Schema, indent: string): string {
  const properties = Object.entries(schema.properties ?? {});
  if (properties.length === 0) {
    return schema.additionalProperties === false ? "Record<string, never>" : "Record<string, unknown>";
  }
  const inner = `${indent}  `;
  const lines = properties.map(([name, property]) => {
    const optional = schema.required?.includes(name) ? "" : "?";
    return `${doc(property, inner)}${inner}${propertyName(name)}${optional}: ${tsType(property, inner)};`;
  });
  return `{\n${lines.join("\n")}\n${indent}}`;
}

export function generate(schemaText: string): string {
  const schema = JSON.parse(schemaText) as CatalogSchema;
  const meta = schema["x-jobfleet"];
  for (const [name, def] of Object.entries(schema.$defs)) assertSupported(def, `$defs.${name}`);
  for (const [name, job] of Object.entries(meta.jobs)) {
    if (!schema.$defs[refName(job.payload)]) {
      throw new UnsupportedSchema(`job ${name}: payload ${job.payload} is not in $defs`);
    }
  }
  const types = Object.entries(schema.$defs).map(
    ([name, def]) => `${doc(def, "")}export type ${name} = ${tsType(def, "")};\n`,
  );
  const payloads = Object.entries(meta.jobs).map(
    ([name, job]) =>
      `  /** ${job.description} (queue ${job.queue}) */\n  ${JSON.stringify(name)}: ${refName(job.payload)};`,
  );
  const jobs = Object.fromEntries(
    Object.entries(meta.jobs).map(([name, job]) => [name, { queue: job.queue, payload: refName(job.payload) }]),
  );
  const wire = {
    queues: meta.queues,
    keyPrefixes: {
      job: meta.key_prefixes.job,
      result: meta.key_prefixes.result,
      inProgress: meta.key_prefixes.in_progress,
    },
    maxKeyChars: meta.max_key_chars,
    maxJobBytes: meta.max_job_bytes,
    expiresExtraMs: meta.expires_extra_ms,
    scripts: meta.scripts,
  };
  return [
    "// Generated by scripts/generate.ts from schema/jobfleet.schema.json (`jobfleet jobs --json-schema`).",
    "// Do not edit: change jobfleet/catalog.py or jobfleet/payloads.py, then `npm run generate`.",
    "",
    'import type { Schema } from "./schema.js";',
    "",
    ...types,
    "/** Every job of the catalog and the payload it takes. */",
    "export interface Payloads {",
    ...payloads,
    "}",
    "",
    "export type JobName = keyof Payloads;",
    "",
    "/** Each job's queue (a Redis sorted set) and payload schema (a key of DEFS). */",
    `export const JOBS: { readonly [J in JobName]: { readonly queue: string; readonly payload: string } } = ${JSON.stringify(jobs, null, 2)};`,
    "",
    "/** The payload models and the wire document, as JSON Schema. */",
    `export const DEFS: Readonly<Record<string, Schema>> = ${JSON.stringify(schema.$defs, null, 2)};`,
    "",
    "/** Redis key prefixes, queues, the limits the Python producer enforces and its Lua scripts. */",
    `export const WIRE = ${JSON.stringify(wire, null, 2)} as const;`,
    "",
  ].join("\n");
}

function main(argv: string[]): number {
  const check = argv.includes("--check");
  const at = argv.indexOf("--schema");
  const source = at >= 0 ? argv[at + 1] : SCHEMA_FILE;
  if (source === undefined) {
    console.error("generate: --schema needs a path (or - for standard input)");
    return 2;
  }
  let output: string;
  try {
    output = generate(readFileSync(source === "-" ? 0 : source, "utf8"));
  } catch (e) {
    console.error(`generate: ${source}: ${e instanceof Error ? e.message : String(e)}`);
    return 1;
  }
  const target = relative(process.cwd(), OUTPUT_FILE);
  if (!check) {
    writeFileSync(OUTPUT_FILE, output);
    console.log(`generate: wrote ${target}`);
    return 0;
  }
  let committed = "";
  try {
    committed = readFileSync(OUTPUT_FILE, "utf8");
  } catch {
    // a missing file differs like any other
  }
  if (committed === output) {
    console.log(`generate: ${target} matches the catalog`);
    return 0;
  }
  console.error(
    `generate: ${target} does not match the catalog's schema (${source}); run \`npm run generate\` in producers/typescript and commit the result`,
  );
  return 1;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  process.exitCode = main(process.argv.slice(2));
}
