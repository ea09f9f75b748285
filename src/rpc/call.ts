import type { Authenticator, AuthorizationValue } from '../auth.ts';
import { type CallScope, claimedScope } from '../call-scope.ts';
import { ErrorCode, SessionError } from '../errors.ts';
import { claimOf, idempotencyKey } from '../idempotency.ts';
import type { Logger } from '../logger.ts';
import type { GrpcType, MethodMetrics, Metrics, Transport } from '../metrics.ts';
import type { SessionService } from '../service.ts';
import { Status, statusName } from '../wire/grpc-status.ts';
import { ProtobufError } from '../wire/protobuf.ts';
import type { RpcMethod } from './methods.ts';

const STATUS_BY_CODE: Record<ErrorCode, number> = {
  [ErrorCode.InvalidArgument]: Status.INVALID_ARGUMENT,
  [ErrorCode.TooLarge]: Status.RESOURCE_EXHAUSTED,
  [ErrorCode.StoreFull]: Status.RESOURCE_EXHAUSTED,
  [ErrorCode.NotFound]: Status.NOT_FOUND,
  [ErrorCode.VersionConflict]: Status.ABORTED,
  [ErrorCode.StoreUnavailable]: Status.UNAVAILABLE,
  [ErrorCode.StoreTimeout]: Status.UNAVAILABLE,
  [ErrorCode.Cancelled]: Status.CANCELLED,
  [ErrorCode.DeadlineExceeded]: Status.DEADLINE_EXCEEDED,
  [ErrorCode.Unauthenticated]: Status.UNAUTHENTICATED,
  [ErrorCode.PermissionDenied]: Status.PERMISSION_DENIED,
  // The request can never succeed under this key, and repeating it will not
  // help: the caller must send a new key. ABORTED (a conflict worth retrying
  // at a higher level) and ALREADY_EXISTS (about the resource, not the
  // request) say less.
  [ErrorCode.IdempotencyKeyReused]: Status.FAILED_PRECONDITION,
  [ErrorCode.Internal]: Status.INTERNAL,
};

export interface CallStatus {
  readonly code: number;
  readonly details: string;
}

/** The one place an error becomes a status: domain errors by their code, a malformed message as INVALID_ARGUMENT, anything else INTERNAL. */
export function statusOf(error: unknown): CallStatus {
  if (error instanceof SessionError)
    return { code: STATUS_BY_CODE[error.code], details: error.message };
  if (error instanceof ProtobufError) {
    return {
      code: Status.INVALID_ARGUMENT,
      details: error.field === undefined ? `request: ${error.message}` : error.message,
    };
  }
  return { code: Status.INTERNAL, details: 'internal error' };
}

/** The status of a call whose caller stopped waiting before it finished. */
export const abandoned = (scope: CallScope): number =>
  Date.now() >= scope.deadlineMs ? Status.DEADLINE_EXCEEDED : Status.CANCELLED;

/** A method as one transport serves it: what it records its calls under. */
export interface ServedMethod {
  readonly transport: Transport;
  readonly service: string;
  readonly method: string;
  readonly metrics: MethodMetrics;
}

export interface CallWrapperDependencies {
  readonly service: SessionService;
  readonly auth: Authenticator;
  readonly metrics: Metrics;
  readonly logger: Logger;
}

/**
 * The call wrapper every transport goes through: auth, then the service,
 * then metrics, the status and the log lines with the request id. Each
 * transport calls `admit` on the credentials before it reads the request,
 * `run` with the decoded request, and `record` once when the call has ended.
 */
export class CallWrapper {
  readonly #service: SessionService;
  readonly #auth: Authenticator;
  readonly #metrics: Metrics;
  readonly #logger: Logger;
  /** Read once: with the level above debug, the access log costs one branch per call. */
  readonly #accessLog: boolean;

  constructor(deps: CallWrapperDependencies) {
    this.#service = deps.service;
    this.#auth = deps.auth;
    this.#metrics = deps.metrics;
    this.#logger = deps.logger;
    this.#accessLog = deps.logger.isLevelEnabled('debug');
  }

  /** What a transport records a method's calls under. */
  serve(transport: Transport, service: string, method: string, grpcType?: GrpcType): ServedMethod {
    const grpc = transport === 'grpc' && grpcType ? { service, type: grpcType } : undefined;
    return { transport, service, method, metrics: this.#metrics.method(transport, method, grpc) };
  }

  /** The permission every call of the method needs, checked before its request is read. */
  admit(method: RpcMethod, authorization: AuthorizationValue): void {
    this.#auth.check(authorization, method.name);
  }

  /**
   * The service call, after the permission this particular request needs
   * (GetSession with touch: write). A write with an idempotency key (the
   * header's value) runs under its claim, scoped to the caller's token.
   */
  run<Req, Res>(
    method: RpcMethod<Req, Res>,
    request: Req,
    authorization: AuthorizationValue,
    scope: CallScope,
    idempotencyHeader?: string | readonly string[],
  ): Promise<Res> {
    if (method.touches?.(request)) this.#auth.check(authorization, method.name, true);
    const key = method.idempotent ? idempotencyKey(idempotencyHeader) : undefined;
    if (key === undefined) return method.call(this.#service, request, scope);
    const claim = claimOf(this.#auth.caller(authorization), key, method.name, request);
    return method.call(this.#service, request, claimedScope(scope, claim));
  }

  /**
   * One ended call: its metrics, the access line at debug (method, code,
   * duration, request id; never a session key), and an error line with the
   * cause when `error` (what the call threw) became INTERNAL: a bug. A
   * protocol violation the server refused itself has no cause to log.
   */
  record(
    served: ServedMethod,
    code: number,
    seconds: number,
    requestId: string | undefined,
    error?: unknown,
  ): void {
    served.metrics.finished(code, seconds);
    if (code === Status.INTERNAL && error !== undefined) {
      this.#logger.error(
        { err: error, transport: served.transport, method: served.method, requestId },
        'call failed',
      );
    }
    if (this.#accessLog) {
      this.#logger.debug(
        {
          transport: served.transport,
          rpcService: served.service,
          method: served.method,
          code: statusName(code),
          ms: Math.round(seconds * 1e6) / 1e3,
          requestId,
        },
        'call',
      );
    }
  }
}
