import { invalidArgument } from '../errors.ts';

/**
 * The proto3 JSON mapping (protobuf.dev/programming-guides/json) of the
 * contract's field types, strict where the spec is and no laxer:
 * - a message is a JSON object; a field goes by its lowerCamelCase JSON name
 *   or its proto name, once; an unknown field is an error; null means the
 *   field's default;
 * - bytes are standard or URL-safe base64, with or without padding, and
 *   nothing else (no mixed alphabets, no stray padding, no non-zero trailing
 *   bits: RFC 4648 3.5 lets a decoder refuse them, and accepting them made
 *   plain text like "o-1" pass as bytes);
 * - int64 is a JSON number or a decimal string, within the int64 range;
 * - bool is true or false; a query flag is "true" or "false".
 * Every error is INVALID_ARGUMENT whose message starts with the proto field name.
 */

export interface FieldKind<T> {
  /** Reads a JSON value that is not null; throws INVALID_ARGUMENT naming `field`. */
  parse(value: unknown, field: string): T;
  /** The value of an absent (or null) field; undefined for a proto3 `optional` field. */
  readonly absent: T;
  /** JSON Schema of the accepted values (OpenAPI 3.1). */
  readonly schema: Readonly<Record<string, unknown>>;
  /** JSON Schema of the values this service writes, where it is narrower. */
  readonly outputSchema?: Readonly<Record<string, unknown>>;
}

/** A message's fields by JSON name, in the contract's order. */
export type JsonMessage = Readonly<Record<string, FieldKind<unknown>>>;

type OptionalKeys<M extends JsonMessage> = {
  [K in keyof M]: undefined extends M[K]['absent'] ? K : never;
}[keyof M];
type ValueOf<F> = F extends FieldKind<infer T> ? Exclude<T, undefined> : never;

/** A parsed message: fields by JSON name; a proto3 `optional` field is absent when not sent. */
export type Parsed<M extends JsonMessage> = {
  -readonly [K in Exclude<keyof M, OptionalKeys<M>>]: ValueOf<M[K]>;
} & { -readonly [K in OptionalKeys<M>]?: ValueOf<M[K]> };

const describe = (value: unknown) =>
  value === null ? 'null' : Array.isArray(value) ? 'an array' : `a ${typeof value}`;

export const string: FieldKind<string> = {
  parse(value, field) {
    if (typeof value !== 'string')
      throw invalidArgument(field, `expected a string, got ${describe(value)}`);
    return value;
  },
  absent: '',
  schema: { type: 'string' },
};

const STANDARD = /^[A-Za-z0-9+/]*$/;
const URL_SAFE = /^[A-Za-z0-9_-]*$/;
const BASE64_PATTERN = '^(?:[A-Za-z0-9+/]*|[A-Za-z0-9_-]*)={0,2}$';

/** The bytes `text` encodes in standard or URL-safe base64, padded or not; undefined for anything else. */
export function decodeBase64(text: string): Buffer | undefined {
  const unpadded = text.endsWith('==')
    ? text.slice(0, -2)
    : text.endsWith('=')
      ? text.slice(0, -1)
      : text;
  if (!STANDARD.test(unpadded) && !URL_SAFE.test(unpadded)) return undefined;
  const remainder = unpadded.length % 4;
  if (remainder === 1) return undefined;
  const padding = text.length - unpadded.length;
  if (padding !== 0 && padding !== 4 - remainder) return undefined;
  const bytes = Buffer.from(unpadded, 'base64');
  // Canonical only: re-encoding gives the same characters (unused bits zero).
  const canonical = bytes.toString(STANDARD.test(unpadded) ? 'base64' : 'base64url');
  if (!canonical.startsWith(unpadded) || canonical.length - unpadded.length > 2) return undefined;
  return bytes;
}

const base64Error = 'expected base64 (standard or URL-safe, padding optional)';

export const bytes: FieldKind<Buffer> = {
  parse(value, field) {
    if (typeof value !== 'string')
      throw invalidArgument(field, `${base64Error}, got ${describe(value)}`);
    const decoded = decodeBase64(value);
    if (!decoded) throw invalidArgument(field, `${base64Error}, got a string that is not`);
    return decoded;
  },
  absent: Buffer.alloc(0),
  schema: { type: 'string', contentEncoding: 'base64', pattern: BASE64_PATTERN },
  outputSchema: { type: 'string', contentEncoding: 'base64' },
};

const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;
const DECIMAL = /^-?\d{1,20}$/;

/** int64 as a JS number: exact up to 2^53, which every int64 this service keeps stays below. */
export const int64: FieldKind<number> = {
  parse(value, field) {
    if (typeof value === 'number') {
      if (!Number.isInteger(value))
        throw invalidArgument(field, `expected an integer, got ${value}`);
      if (BigInt(value) < INT64_MIN || BigInt(value) > INT64_MAX) {
        throw invalidArgument(field, 'out of the int64 range');
      }
      return value;
    }
    if (typeof value === 'string') {
      if (!DECIMAL.test(value)) {
        throw invalidArgument(field, 'expected an integer (a JSON number or a decimal string)');
      }
      const big = BigInt(value);
      if (big < INT64_MIN || big > INT64_MAX)
        throw invalidArgument(field, 'out of the int64 range');
      return Number(big);
    }
    throw invalidArgument(field, `expected an integer, got ${describe(value)}`);
  },
  absent: 0,
  schema: {
    oneOf: [
      { type: 'integer', format: 'int64' },
      { type: 'string', pattern: '^-?\\d+$' },
    ],
  },
  outputSchema: { type: 'string', pattern: '^-?\\d+$', description: 'int64 as a decimal string' },
};

export const bool: FieldKind<boolean> = {
  parse(value, field) {
    if (typeof value !== 'boolean')
      throw invalidArgument(field, `expected true or false, got ${describe(value)}`);
    return value;
  },
  absent: false,
  schema: { type: 'boolean' },
};

export const bytesMap: FieldKind<Map<string, Buffer>> = {
  parse(value, field) {
    if (value === null || typeof value !== 'object' || Array.isArray(value)) {
      throw invalidArgument(field, `expected an object of base64 values, got ${describe(value)}`);
    }
    const map = new Map<string, Buffer>();
    for (const [name, entry] of Object.entries(value)) {
      const decoded = typeof entry === 'string' ? decodeBase64(entry) : undefined;
      if (!decoded)
        throw invalidArgument(field, `the value of ${JSON.stringify(name)}: ${base64Error}`);
      map.set(name, decoded);
    }
    return map;
  },
  get absent() {
    return new Map<string, Buffer>();
  },
  schema: { type: 'object', additionalProperties: bytes.schema },
  outputSchema: { type: 'object', additionalProperties: bytes.outputSchema },
};

export const strings: FieldKind<string[]> = {
  parse(value, field) {
    if (!Array.isArray(value) || !value.every((item) => typeof item === 'string')) {
      throw invalidArgument(field, 'expected an array of strings');
    }
    return value;
  },
  get absent() {
    return [];
  },
  schema: { type: 'array', items: { type: 'string' } },
};

/** A repeated message field: a JSON array of objects, each read as `message`. */
export function repeated<M extends JsonMessage>(message: M): FieldKind<Parsed<M>[]> {
  return {
    parse(value, field) {
      if (!Array.isArray(value)) {
        throw invalidArgument(field, `expected an array of objects, got ${describe(value)}`);
      }
      return value.map((item) => parseMessage(message, item));
    },
    get absent() {
      return [];
    },
    schema: { type: 'array', items: messageSchema(message) },
    outputSchema: { type: 'array', items: messageSchema(message, true) },
  };
}

/** A proto3 `optional` field: absent unless sent (null counts as not sent). */
export function optional<T>(kind: FieldKind<T>): FieldKind<T | undefined> {
  return { ...kind, absent: undefined };
}

export const protoName = (jsonName: string) =>
  jsonName.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);

/** Parses a request body (a JSON value) as `message`. */
export function parseMessage<M extends JsonMessage>(message: M, body: unknown): Parsed<M> {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) {
    throw invalidArgument('body', `expected a JSON object, got ${describe(body)}`);
  }
  const byName = new Map<string, string>();
  for (const jsonName of Object.keys(message)) {
    byName.set(jsonName, jsonName);
    byName.set(protoName(jsonName), jsonName);
  }
  const given = new Map<string, unknown>();
  for (const [name, value] of Object.entries(body)) {
    const jsonName = byName.get(name);
    if (jsonName === undefined)
      throw invalidArgument('body', `unknown field ${JSON.stringify(name)}`);
    if (given.has(jsonName)) {
      throw invalidArgument(
        protoName(jsonName),
        'given twice (by its JSON name and its proto name)',
      );
    }
    given.set(jsonName, value);
  }
  const parsed: Record<string, unknown> = {};
  for (const [jsonName, kind] of Object.entries(message)) {
    const value = given.get(jsonName);
    const result =
      value === undefined || value === null ? kind.absent : kind.parse(value, protoName(jsonName));
    if (result !== undefined) parsed[jsonName] = result;
  }
  return parsed as Parsed<M>;
}

/** Reads query flags (bool fields): each at most once, "true" or "false"; any other parameter is an error. */
export function parseFlags<const Names extends string>(
  names: readonly Names[],
  query: URLSearchParams,
): Record<Names, boolean> {
  const flags = Object.fromEntries(names.map((name) => [name, false])) as Record<Names, boolean>;
  const seen = new Set<string>();
  for (const [name, value] of query) {
    if (!(names as readonly string[]).includes(name)) {
      throw invalidArgument('query', `unknown parameter ${JSON.stringify(name)}`);
    }
    if (seen.has(name)) throw invalidArgument(name, 'given more than once');
    seen.add(name);
    if (value !== 'true' && value !== 'false') {
      throw invalidArgument(name, `expected true or false, got ${JSON.stringify(value)}`);
    }
    flags[name as Names] = value === 'true';
  }
  return flags;
}

/** JSON Schema of a message: of what a request may send, or (`output`) of what a reply holds, every field present. */
export function messageSchema(message: JsonMessage, output = false): Record<string, unknown> {
  const properties = Object.fromEntries(
    Object.entries(message).map(([name, kind]) => [
      name,
      output ? (kind.outputSchema ?? kind.schema) : kind.schema,
    ]),
  );
  return output
    ? { type: 'object', required: Object.keys(message), properties }
    : { type: 'object', additionalProperties: false, properties };
}
