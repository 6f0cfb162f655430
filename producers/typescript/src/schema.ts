/**
 * A validator for the subset of JSON Schema that `jobfleet jobs --json-schema` emits for payloads.
 *
 * It checks a value and returns it as the Python side's model would dump it (defaults filled in,
 * UUIDs in canonical form), so that a document written from TypeScript is the one Python writes.
 * The generator refuses a schema with a keyword outside SUPPORTED, so a new kind of payload field
 * fails at generation time instead of passing unchecked.
 */

export interface Schema {
  type?: "object" | "string" | "integer" | "number" | "boolean" | "null" | "array";
  properties?: Record<string, Schema>;
  required?: readonly string[];
  additionalProperties?: boolean;
  anyOf?: readonly Schema[];
  $ref?: string;
  const?: string | number | boolean | null;
  enum?: readonly (string | number | boolean | null)[];
  format?: "uuid";
  pattern?: string;
  minLength?: number;
  maxLength?: number;
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: number;
  exclusiveMaximum?: number;
  minItems?: number;
  maxItems?: number;
  items?: Schema;
  default?: unknown;
  title?: string;
  description?: string;
}

/** Every keyword the validator understands; annotations (title, description, default) included. */
export const SUPPORTED: ReadonlySet<string> = new Set([
  "type",
  "properties",
  "required",
  "additionalProperties",
  "anyOf",
  "$ref",
  "const",
  "enum",
  "format",
  "pattern",
  "minLength",
  "maxLength",
  "minimum",
  "maximum",
  "exclusiveMinimum",
  "exclusiveMaximum",
  "minItems",
  "maxItems",
  "items",
  "default",
  "title",
  "description",
]);

export interface Problem {
  /** dotted path of the field ("" for the payload itself) */
  path: string;
  message: string;
}

type Defs = Readonly<Record<string, Schema>>;

// The forms pydantic's UUID accepts: hyphenated, 32 hex digits, braced, and urn:uuid:; any case.
const UUID_FORMS = [
  /^([0-9a-f]{8})-([0-9a-f]{4})-([0-9a-f]{4})-([0-9a-f]{4})-([0-9a-f]{12})$/i,
  /^([0-9a-f]{8})([0-9a-f]{4})([0-9a-f]{4})([0-9a-f]{4})([0-9a-f]{12})$/i,
  /^\{([0-9a-f]{8})-([0-9a-f]{4})-([0-9a-f]{4})-([0-9a-f]{4})-([0-9a-f]{12})\}$/i,
  /^urn:uuid:([0-9a-f]{8})-([0-9a-f]{4})-([0-9a-f]{4})-([0-9a-f]{4})-([0-9a-f]{12})$/i,
];

function canonicalUuid(value: string): string | undefined {
  for (const form of UUID_FORMS) {
    const match = form.exec(value);
    if (match) return match.slice(1).join("-").toLowerCase();
  }
  return undefined;
}

// A surrogate outside a pair (with the u flag a pair is one code point and does not match). Python
// cannot encode such a string, so neither side takes it. (String#isWellFormed is Node 20+.)
const LONE_SURROGATE = /\p{Cs}/u;

export function isWellFormed(value: string): boolean {
  return !LONE_SURROGATE.test(value);
}

/** Characters as Python and PostgreSQL count them: code points, not UTF-16 units. */
export function charCount(value: string): number {
  let count = 0;
  for (const _ of value) count++;
  return count;
}

function typeOf(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "array";
  if (typeof value === "number") return Number.isInteger(value) ? "integer" : "number";
  return typeof value;
}

function fitsType(schemaType: string, value: unknown): boolean {
  const actual = typeOf(value);
  return actual === schemaType || (schemaType === "number" && actual === "integer");
}

const patterns = new Map<string, RegExp>();
function compiled(pattern: string): RegExp {
  let regex = patterns.get(pattern);
  if (!regex) {
    regex = new RegExp(pattern, "u");
    patterns.set(pattern, regex);
  }
  return regex;
}

/**
 * Check `value` against `schema`; returns the normalised value, or pushes what is wrong onto
 * `problems` (and returns undefined).
 */
export function check(schema: Schema, value: unknown, defs: Defs, path: string, problems: Problem[]): unknown {
  const fail = (message: string): undefined => {
    problems.push({ path, message });
    return undefined;
  };
  if (schema.$ref !== undefined) {
    const target = defs[schema.$ref.replace("#/$defs/", "")];
    if (!target) return fail(`unknown schema ${schema.$ref}`);
    return check(target, value, defs, path, problems);
  }
  if (schema.anyOf) {
    // The first branch that takes the value wins; when none does, report the branch of the value's
    // own type (its constraint is what failed), else the list of types accepted.
    const branches = schema.anyOf;
    for (const branch of branches) {
      const trial: Problem[] = [];
      const result = check(branch, value, defs, path, trial);
      if (trial.length === 0) return result;
    }
    const ofType = branches.find((b) => b.type !== undefined && fitsType(b.type, value));
    if (ofType) return check(ofType, value, defs, path, problems);
    const types = branches.map((b) => b.type ?? b.$ref ?? "?").join(" or ");
    return fail(`must be ${types}, not ${typeOf(value)}`);
  }
  if ("const" in schema && value !== schema.const) return fail(`must be ${JSON.stringify(schema.const)}`);
  if (schema.enum && !schema.enum.includes(value as never)) {
    return fail(`must be one of ${schema.enum.map((v) => JSON.stringify(v)).join(", ")}`);
  }
  if (schema.type !== undefined && !fitsType(schema.type, value)) {
    return fail(`must be ${/^[aeiou]/.test(schema.type) ? "an" : "a"} ${schema.type}, not ${typeOf(value)}`);
  }
  switch (typeOf(value)) {
    case "object":
      return checkObject(schema, value as Record<string, unknown>, defs, path, problems);
    case "string":
      return checkString(schema, value as string, fail);
    case "integer":
    case "number":
      return checkNumber(schema, value as number, fail);
    case "array":
      return checkArray(schema, value as unknown[], defs, path, problems);
    default:
      return value;
  }
}

function checkObject(
  schema: Schema,
  value: Record<string, unknown>,
  defs: Defs,
  path: string,
  problems: Problem[],
): Record<string, unknown> | undefined {
  const at = (name: string) => (path ? `${path}.${name}` : name);
  const properties = schema.properties ?? {};
  const before = problems.length;
  const result: Record<string, unknown> = {};
  // Fields in the model's order, as pydantic dumps them; defaults filled in.
  for (const [name, property] of Object.entries(properties)) {
    if (Object.hasOwn(value, name) && value[name] !== undefined) {
      result[name] = check(property, value[name], defs, at(name), problems);
    } else if (schema.required?.includes(name)) {
      problems.push({ path: at(name), message: "field required" });
    } else if ("default" in property) {
      result[name] = structuredClone(property.default);
    }
  }
  for (const name of Object.keys(value)) {
    if (Object.hasOwn(properties, name) || value[name] === undefined) continue;
    if (schema.additionalProperties === false) {
      problems.push({ path: at(name), message: "extra field not permitted" });
    } else {
      result[name] = value[name];
    }
  }
  return problems.length === before ? result : undefined;
}

function checkString(schema: Schema, value: string, fail: (message: string) => undefined): string | undefined {
  if (!isWellFormed(value)) return fail("must be valid text (it holds a lone surrogate)");
  const length = charCount(value);
  if (schema.minLength !== undefined && length < schema.minLength) {
    return fail(`must have at least ${schema.minLength} characters`);
  }
  if (schema.maxLength !== undefined && length > schema.maxLength) {
    return fail(`must have at most ${schema.maxLength} characters`);
  }
  if (schema.pattern !== undefined && !compiled(schema.pattern).test(value)) {
    return fail(`must match ${schema.pattern}`);
  }
  if (schema.format === "uuid") {
    const uuid = canonicalUuid(value);
    return uuid ?? fail("must be a UUID");
  }
  return value;
}

function checkNumber(schema: Schema, value: number, fail: (message: string) => undefined): number | undefined {
  if (!Number.isFinite(value)) return fail("must be a finite number");
  if (schema.minimum !== undefined && value < schema.minimum) return fail(`must be at least ${schema.minimum}`);
  if (schema.maximum !== undefined && value > schema.maximum) return fail(`must be at most ${schema.maximum}`);
  if (schema.exclusiveMinimum !== undefined && value <= schema.exclusiveMinimum) {
    return fail(`must be greater than ${schema.exclusiveMinimum}`);
  }
  if (schema.exclusiveMaximum !== undefined && value >= schema.exclusiveMaximum) {
    return fail(`must be less than ${schema.exclusiveMaximum}`);
  }
  return value;
}

function checkArray(
  schema: Schema,
  value: unknown[],
  defs: Defs,
  path: string,
  problems: Problem[],
): unknown[] | undefined {
  if (schema.minItems !== undefined && value.length < schema.minItems) {
    problems.push({ path, message: `must have at least ${schema.minItems} items` });
    return undefined;
  }
  if (schema.maxItems !== undefined && value.length > schema.maxItems) {
    problems.push({ path, message: `must have at most ${schema.maxItems} items` });
    return undefined;
  }
  const items = schema.items ?? {};
  return value.map((item, i) => check(items, item, defs, `${path}.${i}`, problems));
}
