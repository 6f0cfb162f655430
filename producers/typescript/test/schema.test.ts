// The validator of the JSON Schema subset, on the keywords today's catalog does not use yet (the
// parity test covers those it does, against pydantic): arrays of UUIDs, integer ids, enums, const.

import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { check, type Problem, type Schema } from "../src/schema.js";

function validate(schema: Schema, value: unknown): { value?: unknown; problems: Problem[] } {
  const problems: Problem[] = [];
  const result = check(schema, value, { Uuid: { type: "string", format: "uuid" } }, "", problems);
  return problems.length ? { problems } : { value: result, problems };
}

// the shapes pydantic gives `tuple[UUID, ...] | None = Field(None, min_length=1, max_length=3)`,
// `int = Field(ge=1)` and `Literal["a", "b"]`
const RUN: Schema = {
  type: "object",
  additionalProperties: false,
  properties: {
    teacher_ids: {
      anyOf: [{ type: "array", items: { $ref: "#/$defs/Uuid" }, minItems: 1, maxItems: 3 }, { type: "null" }],
      default: null,
    },
    request_id: { type: "integer", minimum: 1 },
    mode: { enum: ["a", "b"], type: "string" },
    version: { const: 2, default: 2 },
  },
  required: ["request_id", "mode"],
};

const UUID = "6f9619ff-8b86-d011-b42d-00c04fc964ff";

describe("the schema validator", () => {
  it("normalises arrays item by item and fills defaults", () => {
    assert.deepEqual(validate(RUN, { request_id: 1, mode: "a", teacher_ids: [UUID.toUpperCase()] }), {
      value: { teacher_ids: [UUID], request_id: 1, mode: "a", version: 2 },
      problems: [],
    });
    assert.deepEqual(validate(RUN, { request_id: 7, mode: "b" }).value, {
      teacher_ids: null,
      request_id: 7,
      mode: "b",
      version: 2,
    });
  });

  it("names each bad field", () => {
    const { problems } = validate(RUN, { request_id: 0, mode: "c", teacher_ids: [UUID, "x"], version: 3, extra: 1 });
    assert.deepEqual(problems, [
      { path: "teacher_ids.1", message: "must be a UUID" },
      { path: "request_id", message: "must be at least 1" },
      { path: "mode", message: 'must be one of "a", "b"' },
      { path: "version", message: "must be 2" },
      { path: "extra", message: "extra field not permitted" },
    ]);
    assert.deepEqual(validate(RUN, { request_id: 1, mode: "a", teacher_ids: [] }).problems, [
      { path: "teacher_ids", message: "must have at least 1 items" },
    ]);
    assert.deepEqual(validate(RUN, { request_id: 1, mode: "a", teacher_ids: [UUID, UUID, UUID, UUID] }).problems, [
      { path: "teacher_ids", message: "must have at most 3 items" },
    ]);
    assert.deepEqual(validate(RUN, { request_id: "1", mode: "a", teacher_ids: "x" }).problems, [
      { path: "teacher_ids", message: "must be array or null, not string" },
      { path: "request_id", message: "must be an integer, not string" },
    ]);
    assert.deepEqual(validate(RUN, []).problems, [{ path: "", message: "must be an object, not array" }]);
  });
});
