/**
 * The service's stable error codes. The transport maps each to one gRPC status;
 * messages name the field at fault and never carry a session key.
 */
export const ErrorCode = {
  InvalidArgument: 'INVALID_ARGUMENT',
  TooLarge: 'TOO_LARGE',
  NotFound: 'NOT_FOUND',
  VersionConflict: 'VERSION_CONFLICT',
  StoreFull: 'STORE_FULL',
  StoreUnavailable: 'STORE_UNAVAILABLE',
  StoreTimeout: 'STORE_TIMEOUT',
  /** The caller went away before the store started its work (never seen by a live caller). */
  Cancelled: 'CANCELLED',
  /** The caller's deadline passed, or left too little time, before the store started its work. */
  DeadlineExceeded: 'DEADLINE_EXCEEDED',
  Unauthenticated: 'UNAUTHENTICATED',
  PermissionDenied: 'PERMISSION_DENIED',
  /** An idempotency key repeated with a different request (idempotency.ts). */
  IdempotencyKeyReused: 'IDEMPOTENCY_KEY_REUSED',
  Internal: 'INTERNAL',
} as const;

export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

export class SessionError extends Error {
  override readonly name = 'SessionError';

  constructor(
    readonly code: ErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export const invalidArgument = (field: string, problem: string) =>
  new SessionError(ErrorCode.InvalidArgument, `${field}: ${problem}`);

export const tooLarge = (field: string, problem: string) =>
  new SessionError(ErrorCode.TooLarge, `${field}: ${problem}`);

/** SESSION_OWNER_LIMIT=refuse: the owner holds as many live sessions as it may. */
export const ownerLimitReached = (held: number, limit: number) =>
  tooLarge(
    'owner',
    `holds ${held} live sessions; the limit is ${limit} (SESSION_MAX_PER_OWNER, SESSION_OWNER_LIMIT=refuse)`,
  );

export const notFound = () =>
  new SessionError(ErrorCode.NotFound, 'session_key: no such session (absent or expired)');

export const versionConflict = (expected: number, actual: number) =>
  new SessionError(
    ErrorCode.VersionConflict,
    `expected_version: is ${expected} but the stored version is ${actual}`,
  );
