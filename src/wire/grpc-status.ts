/**
 * The gRPC status codes (grpc/doc/statuscodes.md), the one list every
 * transport uses, with the HTTP status the JSON API answers each with beside
 * it. The HTTP column is google.api's mapping (grpc-gateway's), except
 * RESOURCE_EXHAUSTED: here it always means "too large" (a session over
 * SESSION_MAX_BYTES, a body over the limit, a full memory store), so 413.
 */
const STATUSES = [
  ['OK', 200],
  ['CANCELLED', 499],
  ['UNKNOWN', 500],
  ['INVALID_ARGUMENT', 400],
  ['DEADLINE_EXCEEDED', 504],
  ['NOT_FOUND', 404],
  ['ALREADY_EXISTS', 409],
  ['PERMISSION_DENIED', 403],
  ['RESOURCE_EXHAUSTED', 413],
  ['FAILED_PRECONDITION', 400],
  ['ABORTED', 409],
  ['OUT_OF_RANGE', 400],
  ['UNIMPLEMENTED', 501],
  ['INTERNAL', 500],
  ['UNAVAILABLE', 503],
  ['DATA_LOSS', 500],
  ['UNAUTHENTICATED', 401],
] as const;

export type StatusName = (typeof STATUSES)[number][0];

/** Code by name: `Status.NOT_FOUND` is 5. */
export const Status = Object.freeze(
  Object.fromEntries(STATUSES.map(([name], code) => [name, code])) as Record<StatusName, number>,
);

/** The status code's name as gRPC spells it (OK, NOT_FOUND ...); UNKNOWN for a code outside the list. */
export function statusName(code: number): StatusName {
  return STATUSES[code]?.[0] ?? 'UNKNOWN';
}

/** The HTTP status of a gRPC status code; 500 for a code outside the list. */
export function httpStatus(code: number): number {
  return STATUSES[code]?.[1] ?? 500;
}
