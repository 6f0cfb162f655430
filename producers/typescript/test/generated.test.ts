// The committed types and validators are what the catalog gives: schema/jobfleet.schema.json is the
// output of `jobfleet jobs --json-schema` now, and src/catalog.generated.ts is generated from it.

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";

import { generate, OUTPUT_FILE, SCHEMA_FILE } from "../scripts/generate.js";
import { JOBS } from "../src/index.js";
import { jobfleet } from "./support/servers.js";

describe("generated from the catalog", () => {
  const schemaText = readFileSync(SCHEMA_FILE, "utf8");

  it("commits the schema the catalog gives today", () => {
    const run = jobfleet(process.env, "jobs", "--json-schema");
    assert.equal(run.status, 0, run.stderr);
    assert.ok(
      run.stdout === schemaText,
      "schema/jobfleet.schema.json is not `jobfleet jobs --json-schema`: run `npm run generate` and commit",
    );
  });

  it("commits the types and validators the schema gives", () => {
    assert.ok(
      generate(schemaText) === readFileSync(OUTPUT_FILE, "utf8"),
      "src/catalog.generated.ts is stale: run `npm run generate` and commit",
    );
  });

  it("names every job of the catalog with its queue", () => {
    const run = jobfleet(process.env, "jobs", "--json");
    const catalog = JSON.parse(run.stdout) as { name: string; queue: string }[];
    assert.deepEqual(
      Object.entries(JOBS).map(([name, job]) => [name, job.queue]),
      catalog.map((job) => [job.name, `jobfleet:queue:${job.queue}`]),
    );
  });

  it("refuses a schema keyword the validator does not implement", () => {
    const schema = JSON.parse(schemaText);
    schema.$defs.Sleep.properties.ms.multipleOf = 5;
    assert.throws(
      () => generate(JSON.stringify(schema)),
      /\$defs\.Sleep\.properties\.ms: keyword "multipleOf" is not supported/,
    );
    const dated = JSON.parse(schemaText);
    dated.$defs.MessageRef.properties.message_id.format = "date-time";
    assert.throws(() => generate(JSON.stringify(dated)), /format "date-time" is not supported/);
  });
});
