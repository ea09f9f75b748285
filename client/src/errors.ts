/**
 * Every code a SessionError can carry. The list is part of the public API:
 * add codes, never rename or remove one (the README table is tested against it).
 */
export const sessionErrorCodes = [
  'NOT_FOUND',
  'CONFLICT',
  'INVALID_ARGUMENT',
  'RESOURCE_EXHAUSTED',
  'UNAVAILABLE',
  'DEADLINE_EXCEEDED',
  'CANCELLED',
  'UNAUTHENTICATED',
  'PERMISSION_DENIED',
  'INTERNAL',
  'UNKNOWN',
  'INVALID_PAYLOAD',
  'IDEMPOTENCY_KEY_REUSED',
] as const;

export type SessionErrorCode = (typeof sessionErrorCodes)[number];

export interface SessionErrorOptions {
  /** What the transport, the codec or the abort reported. */
  cause?: unknown;
  /** The server's x-request-id for the failed call. */
  requestId?: string | undefined;
}

/**
 * The one error type the client throws for a failed call. `message` is the
 * server's message when the server answered (it names the offending field),
 * or the client's own account of what went wrong; `cause` keeps the
 * transport's error, the codec error or the abort reason for logs.
 */
export class SessionError extends Error {
  override readonly name = 'SessionError';
  readonly code: SessionErrorCode;
  /**
   * The id the server logged the failed call under (its x-request-id), to
   * quote when asking its operators; undefined when no server answered.
   */
  readonly requestId: string | undefined;

  constructor(code: SessionErrorCode, message: string, options?: SessionErrorOptions) {
    super(message, options);
    this.code = code;
    this.requestId = options?.requestId;
  }
}

/** gRPC status codes by number (grpc/doc/statuscodes.md). */
const GRPC_CODES: readonly SessionErrorCode[] = [
  'UNKNOWN', // 0, OK: never a failure
  'CANCELLED',
  'UNKNOWN',
  'INVALID_ARGUMENT',
  'DEADLINE_EXCEEDED',
  'NOT_FOUND',
  'CONFLICT', // ALREADY_EXISTS
  'PERMISSION_DENIED',
  'RESOURCE_EXHAUSTED',
  'IDEMPOTENCY_KEY_REUSED', // FAILED_PRECONDITION: the server sends it for nothing else
  'CONFLICT', // ABORTED
  'INVALID_ARGUMENT', // OUT_OF_RANGE
  'INTERNAL', // UNIMPLEMENTED
  'INTERNAL',
  'UNAVAILABLE',
  'INTERNAL', // DATA_LOSS
  'UNAUTHENTICATED',
];

/**
 * Maps a gRPC status to a code. The contract uses only some statuses; the
 * others, which a proxy, a mismatched server or the transport itself can
 * produce, go to the nearest code rather than to UNKNOWN so callers can
 * still act on them.
 */
export function codeFromStatus(code: number): SessionErrorCode {
  return code === 0 ? 'UNKNOWN' : (GRPC_CODES[code] ?? 'UNKNOWN');
}

/** A failed call as either transport reports it. */
export interface CallFailure {
  readonly code: number;
  readonly details: string;
}

/**
 * A SessionError for a failed call. When the server sent the status, its
 * message is the server's (it names the field at fault); otherwise the
 * client says what happened in its own words, and the transport's text stays
 * in `cause`.
 */
export function fromCallFailure(
  failure: CallFailure & Error,
  fromServer: boolean,
  target: string,
  requestId?: string,
): SessionError {
  const code = codeFromStatus(failure.code);
  const message =
    fromServer && failure.details !== '' ? failure.details : clientMessage(code, target);
  return new SessionError(code, message, { cause: failure, requestId });
}

function clientMessage(code: SessionErrorCode, target: string): string {
  switch (code) {
    case 'UNAVAILABLE':
      return `the session service (${target}) could not be reached, or the connection to it was lost before the call completed`;
    case 'DEADLINE_EXCEEDED':
      return 'the session service did not answer before the deadline';
    case 'CANCELLED':
      return 'the call was cancelled';
    case 'RESOURCE_EXHAUSTED':
      return `the answer from ${target} is larger than the client accepts`;
    case 'UNAUTHENTICATED':
      return `${target} refused the call's credentials`;
    case 'PERMISSION_DENIED':
      return `${target} does not allow this call`;
    default:
      return `${target} did not answer as a sessionmanager gRPC server should`;
  }
}

export function abortedError(signal: AbortSignal): SessionError {
  return new SessionError('CANCELLED', 'the call was aborted by its AbortSignal', {
    cause: signal.reason,
  });
}
