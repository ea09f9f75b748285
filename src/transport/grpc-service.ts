import {
  status as grpcStatus,
  Metadata,
  type ServerUnaryCall,
  type sendUnaryData,
  type UntypedServiceImplementation,
} from '@grpc/grpc-js';
import type { Authenticator, SessionMethod } from '../auth.ts';
import type { CallScope } from '../call-scope.ts';
import type { Logger } from '../logger.ts';
import type { Metrics } from '../metrics.ts';
import { givenRequestId, requestId } from '../request-id.ts';
import type { SessionService, StoredSession } from '../service.ts';
import type {
  GetSessionMessage,
  SessionDataMessage,
  SessionKeyMessage,
  TouchSessionMessage,
  UpdateSessionMessage,
} from './proto.ts';
import { statusName, toStatus } from './status.ts';

type Handler<Req> = (request: Req, scope: CallScope) => Promise<object>;

export interface CallContext {
  readonly logger: Logger;
  readonly metrics: Metrics;
  readonly auth: Authenticator;
}

/** The `authorization` metadata values as strings (binary values count as malformed). */
function authorization(metadata: Metadata): string[] {
  return metadata.get('authorization').map((value) => (typeof value === 'string' ? value : ''));
}

/**
 * Binds each RPC to the service. The handler never throws: every failure,
 * expected or not, becomes a status, and only unexpected ones are logged,
 * with the call's request id: the caller's x-request-id (echoed), or one
 * generated for a failure and returned in its trailers.
 */
function unary<Req>(
  method: SessionMethod,
  context: CallContext,
  handle: Handler<Req>,
  touch: (request: Req) => boolean = () => false,
) {
  return (call: ServerUnaryCall<Req, object>, callback: sendUnaryData<object>) => {
    const started = performance.now();
    // Echo the caller's id; a failure also gets a generated one (as on the lean transport).
    const given = givenRequestId(call.metadata.get('x-request-id')[0]);
    const finish = (code: grpcStatus) =>
      context.metrics.observeCall(
        'grpc',
        method,
        statusName(code),
        (performance.now() - started) / 1000,
      );
    let result: Promise<object>;
    try {
      context.auth.check(authorization(call.metadata), method, touch(call.request));
      result = handle(call.request, scopeOf(call));
    } catch (error) {
      result = Promise.reject(error);
    }
    result.then(
      (response) => {
        finish(grpcStatus.OK);
        if (given) {
          const echo = new Metadata();
          echo.set('x-request-id', given);
          call.sendMetadata(echo);
        }
        callback(null, response);
      },
      (error: unknown) => {
        const status = toStatus(error);
        const id = given ?? requestId(undefined);
        if (status.code === grpcStatus.INTERNAL) {
          context.logger.error({ err: error, method, requestId: id }, 'call failed');
        }
        status.metadata = new Metadata();
        status.metadata.set('x-request-id', id);
        finish(status.code);
        callback(status);
      },
    );
  };
}

/** The call as the store sees it: its deadline, and whether its client has gone. */
function scopeOf(call: ServerUnaryCall<unknown, object>): CallScope {
  const deadline = call.getDeadline();
  const deadlineMs = deadline instanceof Date ? deadline.getTime() : deadline;
  return {
    deadlineMs: Number.isFinite(deadlineMs) ? deadlineMs : Number.POSITIVE_INFINITY,
    get cancelled() {
      return call.cancelled;
    },
  };
}

/** protobufjs decodes a map entry sent without its value as [] rather than an empty Buffer. */
function toMap(record: Record<string, Buffer>): Map<string, Buffer> {
  return new Map(
    Object.entries(record).map(([name, value]) => [
      name,
      Buffer.isBuffer(value) ? value : Buffer.from(value),
    ]),
  );
}

function sessionMessage(session: StoredSession) {
  return {
    session_key: session.sessionKey,
    fleet_list_request: session.fleetListRequest,
    fleet_list_response: session.fleetListResponse,
    attributes: Object.fromEntries(session.attributes),
    ttl_seconds: session.ttlSeconds,
    expires_at_unix_ms: session.expiresAtMs,
    version: session.version,
    created_at_unix_ms: session.createdAtMs,
  };
}

export function sessionManagerHandlers(
  service: SessionService,
  context: CallContext,
): UntypedServiceImplementation {
  return {
    SetSession: unary<SessionDataMessage>('SetSession', context, async (request, scope) => {
      const stored = await service.set(
        {
          sessionKey: request.session_key,
          fleetListRequest: request.fleet_list_request,
          fleetListResponse: request.fleet_list_response,
          attributes: toMap(request.attributes),
          ttlSeconds: request.ttl_seconds,
        },
        scope,
      );
      return {
        session_key: stored.sessionKey,
        expires_at_unix_ms: stored.expiresAtMs,
        version: stored.version,
      };
    }),
    GetSession: unary<GetSessionMessage>(
      'GetSession',
      context,
      async (request, scope) =>
        sessionMessage(await service.get(request.session_key, request.touch, scope)),
      (request) => request.touch,
    ),
    UpdateSession: unary<UpdateSessionMessage>('UpdateSession', context, async (request, scope) => {
      const updated = await service.update(
        {
          sessionKey: request.session_key,
          ...(request.fleet_list_request && { fleetListRequest: request.fleet_list_request }),
          ...(request.fleet_list_response && { fleetListResponse: request.fleet_list_response }),
          ...(request.expected_version !== undefined && {
            expectedVersion: request.expected_version,
          }),
          setAttributes: toMap(request.set_attributes),
          removeAttributes: request.remove_attributes,
          ttlSeconds: request.ttl_seconds,
        },
        scope,
      );
      return sessionMessage(updated);
    }),
    TouchSession: unary<TouchSessionMessage>('TouchSession', context, async (request, scope) => ({
      expires_at_unix_ms: await service.touch(request.session_key, request.ttl_seconds, scope),
    })),
    ConsumeSession: unary<SessionKeyMessage>('ConsumeSession', context, async (request, scope) =>
      sessionMessage(await service.consume(request.session_key, scope)),
    ),
    DeleteSession: unary<SessionKeyMessage>('DeleteSession', context, async (request, scope) => ({
      deleted: await service.delete(request.session_key, scope),
    })),
    RotateSessionKey: unary<SessionKeyMessage>(
      'RotateSessionKey',
      context,
      async (request, scope) => {
        const rotated = await service.rotate(request.session_key, scope);
        return {
          session_key: rotated.sessionKey,
          expires_at_unix_ms: rotated.expiresAtMs,
          version: rotated.version,
        };
      },
    ),
  };
}
