import { z } from 'zod';
import { invalidArgument } from '../errors.ts';
import type { StoredSession } from '../service.ts';

/**
 * The proto3 JSON mapping of the contract's messages: lowerCamelCase names
 * (the original snake_case names are accepted too), bytes as base64 (standard
 * or URL-safe), int64 as a decimal string (a JSON number is accepted).
 */

const base64 = z
  .string()
  .regex(/^[A-Za-z0-9+/_-]*={0,2}$/, 'expected base64')
  .transform((text) => Buffer.from(text, 'base64'));

const int64 = z.union([
  z.number().int(),
  z
    .string()
    .regex(/^-?\d{1,19}$/, 'expected an integer')
    .transform(Number),
]);

const bytesMap = z
  .record(z.string(), base64)
  .transform((record) => new Map(Object.entries(record)));

export const SetSessionBody = z.strictObject({
  session_key: z.string().default(''),
  fleet_list_request: base64.default(Buffer.alloc(0)),
  fleet_list_response: base64.default(Buffer.alloc(0)),
  attributes: bytesMap.default(new Map()),
  ttl_seconds: int64.default(0),
});

export const UpdateSessionBody = z.strictObject({
  fleet_list_request: base64.optional(),
  fleet_list_response: base64.optional(),
  set_attributes: bytesMap.default(new Map()),
  remove_attributes: z.array(z.string()).default([]),
  expected_version: int64.optional(),
  ttl_seconds: int64.default(0),
});

export const TouchSessionBody = z.strictObject({ ttl_seconds: int64.default(0) });

const snakeCase = (name: string) => name.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);

/** Parses a JSON body against a schema; a failure names the field in the contract's spelling. */
export function parseBody<T>(schema: z.ZodType<T>, body: unknown): T {
  const fields =
    body !== null && typeof body === 'object' && !Array.isArray(body)
      ? Object.fromEntries(Object.entries(body).map(([name, value]) => [snakeCase(name), value]))
      : body;
  const parsed = schema.safeParse(fields ?? {});
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0];
  const field = issue?.path[0] === undefined ? 'body' : String(issue.path[0]);
  throw invalidArgument(field, issue?.message ?? 'invalid');
}

export function sessionJson(session: StoredSession) {
  const attributes: Record<string, string> = {};
  for (const [name, value] of session.attributes) attributes[name] = value.toString('base64');
  return {
    sessionKey: session.sessionKey,
    fleetListRequest: session.fleetListRequest.toString('base64'),
    fleetListResponse: session.fleetListResponse.toString('base64'),
    attributes,
    ttlSeconds: String(session.ttlSeconds),
    expiresAtUnixMs: String(session.expiresAtMs),
    version: String(session.version),
    createdAtUnixMs: String(session.createdAtMs),
  };
}
