import { type Metadata, status } from '@grpc/grpc-js';
import { ErrorCode, SessionError } from '../errors.ts';

const STATUS_BY_CODE: Record<ErrorCode, status> = {
  [ErrorCode.InvalidArgument]: status.INVALID_ARGUMENT,
  [ErrorCode.TooLarge]: status.RESOURCE_EXHAUSTED,
  [ErrorCode.StoreFull]: status.RESOURCE_EXHAUSTED,
  [ErrorCode.NotFound]: status.NOT_FOUND,
  [ErrorCode.VersionConflict]: status.ABORTED,
  [ErrorCode.StoreUnavailable]: status.UNAVAILABLE,
  [ErrorCode.StoreTimeout]: status.UNAVAILABLE,
  [ErrorCode.Cancelled]: status.CANCELLED,
  [ErrorCode.DeadlineExceeded]: status.DEADLINE_EXCEEDED,
  [ErrorCode.Unauthenticated]: status.UNAUTHENTICATED,
  [ErrorCode.PermissionDenied]: status.PERMISSION_DENIED,
  [ErrorCode.Internal]: status.INTERNAL,
};

export interface StatusError {
  code: status;
  details: string;
  metadata?: Metadata;
}

/** The status code's name as gRPC spells it (OK, NOT_FOUND ...): the stable code callers see. */
export function statusName(code: status): string {
  return status[code] ?? 'UNKNOWN';
}

/** The one place a domain error becomes a gRPC status; anything unexpected is INTERNAL. */
export function toStatus(error: unknown): StatusError {
  if (error instanceof SessionError) {
    return { code: STATUS_BY_CODE[error.code], details: error.message };
  }
  return { code: status.INTERNAL, details: 'internal error' };
}
