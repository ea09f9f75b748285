/**
 * The gRPC status codes (grpc/doc/statuscodes.md), the one list every
 * transport uses, with the HTTP status the JSON API answers each with beside
 * it. The HTTP column is google.api's mapping (grpc-gateway's), except
 * RESOURCE_EXHAUSTED: here it always means "too large" (a session over
 * SESSION_MAX_BYTES, a body over the limit, a full memory store), so 413;
 * and FAILED_PRECONDITION: here it only means an idempotency key repeated
 * with a different request, which the IETF Idempotency-Key draft answers
 * with 422.
 * The third column is the name grpc-go's codes.Code.String() gives, which
 * go-grpc-prometheus writes as grpc_code, and which gRPC dashboards expect.
 */
const STATUSES = [
  ['OK', 200, 'OK'],
  ['CANCELLED', 499, 'Canceled'],
  ['UNKNOWN', 500, 'Unknown'],
  ['INVALID_ARGUMENT', 400, 'InvalidArgument'],
  ['DEADLINE_EXCEEDED', 504, 'DeadlineExceeded'],
  ['NOT_FOUND', 404, 'NotFound'],
  ['ALREADY_EXISTS', 409, 'AlreadyExists'],
  ['PERMISSION_DENIED', 403, 'PermissionDenied'],
  ['RESOURCE_EXHAUSTED', 413, 'ResourceExhausted'],
  ['FAILED_PRECONDITION', 422, 'FailedPrecondition'],
  ['ABORTED', 409, 'Aborted'],
  ['OUT_OF_RANGE', 400, 'OutOfRange'],
  ['UNIMPLEMENTED', 501, 'Unimplemented'],
  ['INTERNAL', 500, 'Internal'],
  ['UNAVAILABLE', 503, 'Unavailable'],
  ['DATA_LOSS', 500, 'DataLoss'],
  ['UNAUTHENTICATED', 401, 'Unauthenticated'],
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

/** The status code's name as grpc-go spells it (OK, NotFound ...), for the grpc_code label. */
export function goStatusName(code: number): string {
  return STATUSES[code]?.[2] ?? 'Unknown';
}
