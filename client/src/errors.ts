import { type ServiceError, status } from '@grpc/grpc-js';

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
] as const;

export type SessionErrorCode = (typeof sessionErrorCodes)[number];

/**
 * The one error type the client throws for a failed call. `message` is the
 * server's message (it names the offending field); `cause` keeps the gRPC
 * status, the codec error or the abort reason for logs.
 */
export class SessionError extends Error {
  override readonly name = 'SessionError';
  readonly code: SessionErrorCode;

  constructor(code: SessionErrorCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.code = code;
  }
}

/**
 * Maps a gRPC status to a code. The contract uses only some statuses; the
 * others, which a proxy, a mismatched server or grpc-js itself can produce, go
 * to the nearest code rather than to UNKNOWN so callers can still act on them.
 */
export function codeFromStatus(code: status): SessionErrorCode {
  switch (code) {
    case status.NOT_FOUND:
      return 'NOT_FOUND';
    case status.ABORTED:
    case status.ALREADY_EXISTS:
    case status.FAILED_PRECONDITION:
      return 'CONFLICT';
    case status.INVALID_ARGUMENT:
    case status.OUT_OF_RANGE:
      return 'INVALID_ARGUMENT';
    case status.RESOURCE_EXHAUSTED:
      return 'RESOURCE_EXHAUSTED';
    case status.UNAVAILABLE:
      return 'UNAVAILABLE';
    case status.DEADLINE_EXCEEDED:
      return 'DEADLINE_EXCEEDED';
    case status.CANCELLED:
      return 'CANCELLED';
    case status.UNAUTHENTICATED:
      return 'UNAUTHENTICATED';
    case status.PERMISSION_DENIED:
      return 'PERMISSION_DENIED';
    case status.INTERNAL:
    case status.UNIMPLEMENTED:
    case status.DATA_LOSS:
      return 'INTERNAL';
    default:
      return 'UNKNOWN';
  }
}

export function fromServiceError(error: ServiceError): SessionError {
  return new SessionError(codeFromStatus(error.code), error.details || error.message, {
    cause: error,
  });
}

export function abortedError(signal: AbortSignal): SessionError {
  return new SessionError('CANCELLED', 'the call was aborted by its AbortSignal', {
    cause: signal.reason,
  });
}
